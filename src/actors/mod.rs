//! The actors: one per active conversation, one per connected user, and their supervisor.
//!
//! - [`conversation::ConversationActor`] owns a conversation's state (participants, next `seq`,
//!   unread counts, watermarks) and orders its writes; it is where `seq` comes from.
//! - [`user_session::UserSession`] owns one user's sockets and fans events out to them.
//! - [`registry::Registry`] finds or starts actors by id without a global lock.
//! - [`supervisor::Supervisor`] is every actor's parent; it forgets failed actors so the next
//!   request starts them afresh from the store.
//!
//! Actors never reach into HTTP or the socket layer: they push events into [`outbox`] queues.

pub mod conversation;
pub mod outbox;
pub mod registry;
pub mod supervisor;
pub mod user_session;
