//! Pure types of the messaging domain. Nothing here does I/O or knows about actors, HTTP or
//! sockets; every other layer builds on these.

pub mod clock;
pub mod conversation;
pub mod events;
pub mod ids;
pub mod message;
pub mod rules;
pub mod user;

pub use ids::Id;
