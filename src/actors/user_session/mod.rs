//! `UserSession`: one per connected user. It owns that user's sockets (one per device), their
//! unread totals and their presence, and fans events out to every device.
//!
//! Socket tasks hand it the frames they decode; it routes them to conversation actors and never
//! waits for a conversation's answer (answers go straight to the socket's queue). A user is online
//! while any socket is attached; after the last one leaves, the session waits out a grace period
//! (so a page reload does not flap presence), then records `last_seen_at` and stops.
//!
//! Presence goes to the user's peers (the users they share a conversation with): read once from
//! the store when the session starts, then learned from the events it relays, so coming and going
//! costs no store scan. The unread total is kept as a running sum, not re-added per event.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

mod ledger;

use self::ledger::{peer_in, Peers, UnreadCounts};
use super::conversation::{ConversationMsg, SendRequest};
use crate::actors::outbox::{Outgoing, Replayed, Reply, SocketHandle, SocketReply};
use crate::domain::clock::now_ms;
use crate::domain::events::{ClientFrame, ServerEvent};
use crate::domain::message::{client_msg_id_ok, Attachment};
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::ApiError;
use crate::storage::SeqRange;

/// How many of the user's most recent conversations the session reads its peers from when it
/// starts, and how many peers it remembers: who hears this user come online or go offline.
const PRESENCE_FANOUT: usize = 200;
/// Messages read from the store per page of a `sync` replay.
const SYNC_PAGE: usize = 256;
/// A replay that cannot queue an event for this long gives up on the socket (1013).
const SYNC_STALL: Duration = Duration::from_secs(10);

pub struct UserSession;

pub enum SessionMsg {
    Attach {
        socket: SocketHandle,
        name: String,
        done: oneshot::Sender<()>,
    },
    Detach {
        socket: Id,
    },
    Deliver {
        event: Arc<Outgoing>,
        except: Option<Id>,
    },
    Unread {
        conversation: Id,
        count: u64,
    },
    /// A new message for its recipient together with their new unread count for its
    /// conversation: one hop instead of two, and both events land in each socket's queue back
    /// to back, so they usually leave in one write (one `send` syscall, one wake-up of the client).
    NewMessage {
        event: Arc<Outgoing>,
        conversation: Id,
        unread: u64,
    },
    Inbound {
        socket: Id,
        frame: ClientFrame,
        permit: OwnedSemaphorePermit,
        /// When the socket task read the frame: a send's ack latency starts here.
        received: std::time::Instant,
    },
    Disconnect {
        code: u16,
        reason: String,
    },
    GraceOver {
        generation: u64,
    },
    /// The peers of the user's most recent conversations, read once when the session started.
    PeersLoaded {
        peers: Vec<ExternalId>,
    },
}

pub struct SessionState {
    engine: EngineRef,
    user: ExternalId,
    name: String,
    sockets: Vec<SocketHandle>,
    unread: UnreadCounts,
    peers: Peers,
    /// Bumped on every attach; a grace timer only ends the session if nothing attached since.
    generation: u64,
}

impl Actor for UserSession {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = (EngineRef, ExternalId);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (engine, user): (EngineRef, ExternalId),
    ) -> Result<Self::State, ActorProcessingErr> {
        let unread = UnreadCounts::new(engine.store.unread_counts(&user).await?);
        // Read off the connect path: the socket gets `ready` without waiting for this page, and
        // "online" goes out when it arrives (`PeersLoaded`).
        let (store_engine, store_user) = (engine.clone(), user.clone());
        tokio::spawn(async move {
            let peers = load_peers(&store_engine, &store_user).await;
            let _ = myself.send_message(SessionMsg::PeersLoaded { peers });
        });
        Ok(SessionState {
            name: user.to_string(),
            engine,
            user,
            sockets: Vec::new(),
            unread,
            peers: Peers::new(PRESENCE_FANOUT),
            generation: 0,
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state
            .engine
            .registry
            .forget_session(&state.user, myself.get_id());
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = tracing::debug_span!("session", user_id = %state.user);
        let _enter = span.enter();
        match msg {
            SessionMsg::Attach { socket, name, done } => {
                state.generation += 1;
                state.name = name;
                // The first few slots are grown one at a time: most users hold one or two
                // sockets, and a first push would reserve four (~220 bytes kept by every idle
                // session). Past that, doubling keeps many sockets linear.
                if state.sockets.len() < 4 {
                    state.sockets.reserve_exact(1);
                }
                state.sockets.push(socket);
                let _ = done.send(());
            }
            SessionMsg::Detach { socket } => {
                state.sockets.retain(|s| s.id != socket);
                if state.sockets.is_empty() {
                    let generation = state.generation;
                    let grace =
                        Duration::from_secs(state.engine.config.realtime.presence_grace_secs);
                    myself.send_after(grace, move || SessionMsg::GraceOver { generation });
                }
            }
            SessionMsg::GraceOver { generation } => {
                if state.sockets.is_empty() && generation == state.generation {
                    let seen = now_ms();
                    if let Err(e) = state.engine.store.set_last_seen(&state.user, seen).await {
                        tracing::warn!(error = %e, "could not record last_seen_at");
                    }
                    state
                        .engine
                        .registry
                        .forget_session(&state.user, myself.get_id());
                    state.announce_presence(false, Some(seen));
                    myself.stop(Some("offline".into()));
                }
            }
            SessionMsg::PeersLoaded { peers } => {
                state.peers.seed(peers);
                state.announce_presence(true, None);
            }
            SessionMsg::Deliver { event, except } => {
                state.learn_peer(&event.event);
                for s in &state.sockets {
                    if Some(s.id) != except {
                        s.push(event.clone());
                    }
                }
            }
            SessionMsg::Unread {
                conversation,
                count,
            } => {
                let ev = state.set_unread(conversation, count);
                for s in &state.sockets {
                    s.push(ev.clone());
                }
            }
            SessionMsg::NewMessage {
                event,
                conversation,
                unread,
            } => {
                state.learn_peer(&event.event);
                let ev = state.set_unread(conversation, unread);
                for s in &state.sockets {
                    // A socket that overflowed on the message is closed; its `unread` can go.
                    if s.push(event.clone()) {
                        s.push(ev.clone());
                    }
                }
            }
            SessionMsg::Disconnect { code, reason } => {
                for s in &state.sockets {
                    s.close(code, &reason);
                }
            }
            SessionMsg::Inbound {
                socket,
                frame,
                permit,
                received,
            } => {
                let Some(handle) = state.sockets.iter().find(|s| s.id == socket).cloned() else {
                    return Ok(());
                };
                // Boxed: ractor keeps the largest `handle` future inline in the actor's task for
                // as long as the actor lives, and routing a frame is the large one (~1.2 KiB). One
                // allocation per frame is cheaper than that on every idle connected user.
                Box::pin(state.inbound(handle, frame, permit, received)).await;
            }
        }
        Ok(())
    }
}

impl SessionState {
    /// Records the user's unread count for one conversation and makes the `unread` event for
    /// their devices. Counts are absolute and the total is kept here, because only this actor
    /// sees every conversation of the user: clients replace their badge, never add to it.
    fn set_unread(&mut self, conversation: Id, count: u64) -> Arc<Outgoing> {
        let total_unread = self.unread.set(conversation, count);
        Outgoing::new(ServerEvent::Unread {
            conversation_id: conversation,
            unread_count: count,
            total_unread,
        })
    }

    /// Remembers the other participant named by an event this session relays, so a
    /// conversation that started after the session did still hears its presence.
    fn learn_peer(&mut self, event: &ServerEvent) {
        if let Some(peer) = peer_in(event, &self.user) {
            self.peers.note(peer);
        }
    }

    /// Tells the user's peers that they came online or went offline. No store read: the peers
    /// are the ones loaded at start plus the ones learned since.
    fn announce_presence(&self, online: bool, last_seen_at: Option<i64>) {
        let ev = Outgoing::new(ServerEvent::Presence {
            user_id: self.user.clone(),
            online,
            last_seen_at,
        });
        for peer in self.peers.iter() {
            self.engine.registry.to_user(peer, ev.clone(), None);
        }
    }

    /// The attachments of a message this user sends to `conversation` (checked and linked, see
    /// `Attachments::link`); only for a conversation the user is in, so nobody can link files to
    /// a conversation of others.
    async fn link(&self, conversation: Id, ids: &[Id]) -> Result<Vec<Attachment>, ApiError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let record = self.engine.store.conversation_record(conversation).await?;
        if record.is_none_or(|r| r.side_of(&self.user).is_none()) {
            return Err(ApiError::conversation_not_found());
        }
        Ok(self
            .engine
            .attachments
            .link(&self.user, conversation, ids)
            .await?)
    }

    async fn inbound(
        &mut self,
        socket: SocketHandle,
        frame: ClientFrame,
        permit: OwnedSemaphorePermit,
        received: std::time::Instant,
    ) {
        let engine = self.engine.clone();
        match frame {
            ClientFrame::ChatMessage {
                conversation_id,
                text,
                client_msg_id,
                attachment_ids,
                reference,
            } => {
                let reply = SocketReply::new(socket.clone(), reference, Some(permit));
                if !client_msg_id_ok(client_msg_id.as_deref()) {
                    return reply.fail(&ApiError::invalid_client_msg_id());
                }
                let (text, flags) = match engine.moderate(text.unwrap_or_default()).await {
                    Ok(reviewed) => reviewed,
                    Err(e) => return reply.fail(&e),
                };
                let attachments = match self.link(conversation_id, &attachment_ids).await {
                    Ok(a) => a,
                    Err(e) => return reply.fail(&e),
                };
                let req = SendRequest {
                    sender: self.user.clone(),
                    sender_name: self.name.clone(),
                    text,
                    attachments,
                    flags,
                    client_msg_id,
                    origin: Some(socket.id),
                    reply: Reply::Socket(reply),
                    received,
                };
                engine
                    .to_conversation(conversation_id, ConversationMsg::Send(req))
                    .await;
            }
            ClientFrame::TypingStatus {
                conversation_id,
                is_typing,
            } => {
                let msg = ConversationMsg::Typing {
                    user: self.user.clone(),
                    is_typing,
                    reply: Reply::Socket(SocketReply::new(socket, None, Some(permit))),
                };
                engine.to_conversation(conversation_id, msg).await;
            }
            ClientFrame::MarkRead {
                conversation_id,
                up_to,
                reference,
            } => {
                let msg = ConversationMsg::MarkRead {
                    user: self.user.clone(),
                    up_to,
                    reply: Reply::Socket(SocketReply::new(socket, reference, Some(permit))),
                };
                engine.to_conversation(conversation_id, msg).await;
            }
            ClientFrame::Delivered {
                conversation_id,
                up_to,
                reference,
            } => {
                let msg = ConversationMsg::Delivered {
                    user: self.user.clone(),
                    up_to,
                    reply: Reply::Socket(SocketReply::new(socket, reference, Some(permit))),
                };
                engine.to_conversation(conversation_id, msg).await;
            }
            ClientFrame::Sync {
                conversation_id,
                after_seq,
                reference,
            } => {
                let user = self.user.clone();
                tokio::spawn(async move {
                    let reply = SocketReply::new(socket.clone(), reference, Some(permit));
                    replay(engine, socket, user, conversation_id, after_seq, reply).await;
                });
            }
            ClientFrame::Auth { .. } => {
                SocketReply::new(socket, None, Some(permit)).fail(&ApiError::bad_request(
                    "already_authenticated",
                    "this socket is already authenticated",
                ));
            }
            ClientFrame::Ping { reference } => {
                socket.event(ServerEvent::Pong { reference });
            }
        }
    }
}

/// Replays every message of a conversation after `after_seq`, in order, then `synced`. Reads the
/// store page by page and waits for room in the socket's queue, so a large backlog streams at the
/// client's pace instead of piling up in memory. It never takes the queue's last free slots
/// ([`SocketHandle::push_replay`]): live events keep flowing during the replay, and a client that
/// reads does not get closed as slow because the replay filled its queue.
async fn replay(
    engine: EngineRef,
    socket: SocketHandle,
    user: ExternalId,
    conversation: Id,
    after_seq: i64,
    reply: SocketReply,
) {
    let doc = match engine.store.get_conversation(conversation).await {
        Ok(Some(doc)) => doc,
        Ok(None) => return reply.fail(&ApiError::conversation_not_found()),
        Err(e) => return reply.fail(&e.into()),
    };
    if doc.record.side_of(&user).is_none() {
        return reply.fail(&ApiError::conversation_not_found());
    }
    let last = doc.state.last_seq;
    let after = match u64::try_from(after_seq) {
        Ok(a) if a <= last => a,
        _ => {
            return reply.fail(&ApiError::unprocessable(
                "invalid_sync",
                format!("after_seq must be between 0 and the last seq ({last})"),
            ))
        }
    };
    let mut cursor = after;
    while cursor < last {
        let range = SeqRange {
            after: Some(cursor),
            before: Some(last + 1),
        };
        let page = match engine
            .store
            .list_messages(conversation, range, SYNC_PAGE, false)
            .await
        {
            Ok(p) => p,
            Err(e) => return reply.fail(&e.into()),
        };
        let Some(end) = page.last().map(|m| m.seq) else {
            break;
        };
        for m in page {
            let status = doc.status_of(&m);
            let ev = Outgoing::new(ServerEvent::ChatMessage {
                message: m.view(status),
            });
            match socket.push_replay(ev, SYNC_STALL).await {
                Replayed::Queued => {}
                Replayed::Gone => return reply.done(),
                Replayed::Stalled => {
                    socket.close(
                        super::outbox::close_code::TRY_AGAIN_LATER,
                        "too slow to read the replay; reconnect and sync",
                    );
                    return reply.done();
                }
            }
        }
        cursor = end;
    }
    let reference = reply.reference.clone();
    reply.done();
    socket.event(ServerEvent::Synced {
        conversation_id: conversation,
        last_seq: cursor.max(after),
        reference,
    });
}

/// The other participants of the user's most recent conversations, most recent first. Presence
/// is best effort: a store error leaves the session with the peers it learns from events.
async fn load_peers(engine: &EngineRef, user: &ExternalId) -> Vec<ExternalId> {
    match engine
        .store
        .list_conversations(user, None, None, PRESENCE_FANOUT)
        .await
    {
        Ok(Ok(page)) => page
            .items
            .iter()
            .filter_map(|doc| {
                let side = doc.record.side_of(user)?;
                Some(doc.record.user(side.other()).clone())
            })
            .collect(),
        Ok(Err(_)) => Vec::new(),
        Err(e) => {
            tracing::warn!(user_id = %user, error = %e, "could not read conversations for presence");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests;
