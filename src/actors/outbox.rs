//! A socket as the actors see it: a bounded queue of events and a way to close it.
//!
//! Actors never write to a socket themselves; they push an [`Outgoing`] event into its queue and
//! move on. The queue is bounded: a client that does not read its events fills it, and is then
//! closed with 1013 rather than allowed to grow the server's memory. It reconnects and `sync`s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};

use crate::domain::events::ServerEvent;
use crate::domain::message::Message;
use crate::domain::user::ExternalId;
use crate::domain::Id;
use crate::error::ApiError;
use crate::wire::{self, WireFormat};

/// An event on its way to one or more sockets, encoded at most once per wire format however
/// many sockets it goes to.
pub struct Outgoing {
    pub event: ServerEvent,
    json: OnceLock<Bytes>,
    msgpack: OnceLock<Bytes>,
}

impl Outgoing {
    pub fn new(event: ServerEvent) -> Arc<Self> {
        Arc::new(Outgoing {
            event,
            json: OnceLock::new(),
            msgpack: OnceLock::new(),
        })
    }

    pub fn encoded(&self, format: WireFormat) -> Bytes {
        let cell = match format {
            WireFormat::Json => &self.json,
            WireFormat::MessagePack => &self.msgpack,
        };
        cell.get_or_init(|| wire::encode(format, &self.event))
            .clone()
    }
}

/// Why the server closes a socket: a WebSocket close code and a reason for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: String,
}

/// WebSocket close codes the server uses.
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// The sending half of one socket's event queue. Cheap to clone; held by the user's session
/// actor and by replies in flight.
#[derive(Clone)]
pub struct SocketHandle {
    pub id: Id,
    pub user: ExternalId,
    tx: mpsc::Sender<Arc<Outgoing>>,
    close: Arc<watch::Sender<Option<CloseReason>>>,
    /// Set once the socket has been told to close for being slow, so it is counted once.
    slow: Arc<AtomicBool>,
}

/// The receiving half, owned by the socket task.
pub struct SocketInbox {
    pub events: mpsc::Receiver<Arc<Outgoing>>,
    pub close: watch::Receiver<Option<CloseReason>>,
}

impl SocketHandle {
    pub fn new(id: Id, user: ExternalId, capacity: usize) -> (SocketHandle, SocketInbox) {
        let (tx, events) = mpsc::channel(capacity.max(1));
        let (close_tx, close) = watch::channel(None);
        (
            SocketHandle {
                id,
                user,
                tx,
                close: Arc::new(close_tx),
                slow: Arc::new(AtomicBool::new(false)),
            },
            SocketInbox { events, close },
        )
    }

    /// Queues an event without waiting. A full queue closes the socket with 1013 and answers
    /// `false`, as does a socket that is gone.
    pub fn push(&self, event: Arc<Outgoing>) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.slow.swap(true, Ordering::AcqRel) {
                    tracing::warn!(user_id = %self.user, socket = %self.id, "socket too slow to read its events; closing");
                    self.close(
                        close_code::TRY_AGAIN_LATER,
                        "too slow to read events; reconnect and sync",
                    );
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues an event, waiting for room: for replays (`sync`) that a client asked for and reads
    /// at its own pace. Answers `false` if the socket is gone.
    pub async fn push_wait(&self, event: Arc<Outgoing>) -> bool {
        self.tx.send(event).await.is_ok()
    }

    pub fn event(&self, event: ServerEvent) -> bool {
        self.push(Outgoing::new(event))
    }

    pub fn error(&self, e: &ApiError, reference: Option<String>) -> bool {
        self.event(ServerEvent::Error {
            code: e.code,
            message: e.message.clone(),
            reference,
            retry_after: e.retry_after,
        })
    }

    pub fn close(&self, code: u16, reason: &str) {
        let _ = self.close.send(Some(CloseReason {
            code,
            reason: reason.to_string(),
        }));
    }

    /// Whether this socket was closed for being too slow (counted by the socket task).
    pub fn was_slow(&self) -> bool {
        self.slow.load(Ordering::Acquire)
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Where the answer to a request goes: back to an awaiting HTTP handler, or to the socket that
/// sent the frame. A socket reply that is dropped unanswered (its actor stopped under it) tells
/// the client to retry, so no frame goes unanswered.
pub enum Reply<T> {
    Caller(tokio::sync::oneshot::Sender<Result<T, ApiError>>),
    Socket(SocketReply),
}

pub struct SocketReply {
    pub socket: SocketHandle,
    pub reference: Option<String>,
    /// Holds one of the socket's in-flight slots until the frame is answered.
    pub permit: Option<OwnedSemaphorePermit>,
    answered: bool,
}

impl SocketReply {
    pub fn new(
        socket: SocketHandle,
        reference: Option<String>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        SocketReply {
            socket,
            reference,
            permit,
            answered: false,
        }
    }

    /// Marks the frame answered without sending anything (its answer is an event sent elsewhere).
    pub fn done(mut self) {
        self.answered = true;
    }

    pub fn fail(mut self, e: &ApiError) {
        self.answered = true;
        self.socket.error(e, self.reference.take());
    }

    pub fn ack(mut self, message: Message) {
        self.answered = true;
        self.socket.event(ServerEvent::Ack {
            reference: self.reference.take(),
            message,
        });
    }
}

impl Drop for SocketReply {
    fn drop(&mut self) {
        if !self.answered {
            self.socket.error(
                &ApiError::unavailable(
                    "the request was interrupted; retry it (client_msg_id makes a retry safe)",
                ),
                self.reference.take(),
            );
        }
    }
}

impl<T> Reply<T> {
    pub fn fail(self, e: ApiError) {
        match self {
            Reply::Caller(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::Socket(s) => s.fail(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_the_socket_with_1013() {
        let (h, mut inbox) = SocketHandle::new(Id(1), ExternalId::parse("u").unwrap(), 2);
        assert!(h.event(ServerEvent::Pong { reference: None }));
        assert!(h.event(ServerEvent::Pong { reference: None }));
        assert!(
            !h.event(ServerEvent::Pong { reference: None }),
            "third event must not fit"
        );
        assert!(h.was_slow());
        let reason = inbox.close.borrow_and_update().clone().unwrap();
        assert_eq!(reason.code, close_code::TRY_AGAIN_LATER);
    }

    #[test]
    fn an_unanswered_socket_reply_tells_the_client_to_retry() {
        let (h, mut inbox) = SocketHandle::new(Id(1), ExternalId::parse("u").unwrap(), 4);
        drop(SocketReply::new(h, Some("r9".into()), None));
        let ev = inbox.events.try_recv().unwrap();
        let json = String::from_utf8(ev.encoded(WireFormat::Json).to_vec()).unwrap();
        assert!(
            json.contains("\"ref\":\"r9\"") && json.contains("\"type\":\"error\""),
            "{json}"
        );
    }
}
