//! A socket as the actors see it: a bounded queue of events and a way to close it.
//!
//! Actors never write to a socket themselves; they push an [`Outgoing`] event into its queue and
//! move on. The queue is bounded: a client that does not read its events fills it, and is then
//! closed with 1013 rather than allowed to grow the server's memory. It reconnects and `sync`s.
//!
//! The queue is `futures`' unbounded channel with an exact count beside it, not tokio's bounded
//! channel: tokio's allocates its shared state (two cache-padded halves, ~500 bytes) and a first
//! block of slots when it is made, ~800 bytes an idle socket held for nothing. `futures`' channel
//! is a linked queue of ~80 bytes plus one node per event waiting, and the count is the bound.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::mpsc;
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;

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
    tx: mpsc::UnboundedSender<Arc<Outgoing>>,
    control: Arc<Control>,
}

/// Why an event was not queued.
enum Rejected {
    /// No room; the event is handed back.
    Full(Arc<Outgoing>),
    /// The socket is gone.
    Gone,
}

/// What became of a replayed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replayed {
    Queued,
    /// The socket is gone.
    Gone,
    /// The client freed no room for the whole stall timeout.
    Stalled,
}

/// First and longest pause between two looks for room during a replay. Short enough that a
/// reading client is never kept waiting noticeably, long enough that a stalled one costs little.
const REPLAY_POLL_MIN: Duration = Duration::from_millis(1);
const REPLAY_POLL_MAX: Duration = Duration::from_millis(20);

/// What a socket's handles share with its task besides the queue. One small allocation: a
/// `watch` channel for the close and a second `Arc` for the flag cost ~400 bytes per idle socket.
struct Control {
    /// How many events the queue may hold.
    capacity: usize,
    /// Events pushed and not yet taken by the socket task. A sender counts an event before it
    /// pushes it and the task uncounts it after taking it, so this never reads below the queue's
    /// length and the bound is exact, however many senders push at once.
    queued: AtomicUsize,
    /// Why the socket must close. Set once: the first reason is the one the client gets.
    reason: OnceLock<CloseReason>,
    /// Wakes the socket task once `reason` is set (a stored permit if it is not waiting yet).
    wake: Notify,
    /// Set once the socket has been told to close for being slow, so it is counted once.
    slow: AtomicBool,
}

/// The socket task's side of a close request.
pub struct CloseSignal(Arc<Control>);

impl CloseSignal {
    /// Waits until the socket is asked to close, and answers why.
    pub async fn requested(&self) -> CloseReason {
        loop {
            // Checked before waiting, and a close that lands in between leaves a permit that
            // ends the wait at once, so no request is missed.
            if let Some(reason) = self.0.reason.get() {
                return reason.clone();
            }
            self.0.wake.notified().await;
        }
    }

    /// The close asked for so far, if any.
    pub fn reason(&self) -> Option<CloseReason> {
        self.0.reason.get().cloned()
    }
}

/// The receiving half, owned by the socket task.
pub struct SocketInbox {
    pub events: SocketEvents,
    pub close: CloseSignal,
}

/// The socket task's end of the event queue.
pub struct SocketEvents {
    rx: mpsc::UnboundedReceiver<Arc<Outgoing>>,
    control: Arc<Control>,
}

impl SocketEvents {
    /// The next event; `None` once every handle is gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Arc<Outgoing>> {
        let event = self.rx.recv().await.ok()?;
        self.control.queued.fetch_sub(1, Ordering::AcqRel);
        Some(event)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Arc<Outgoing>> {
        let event = self.rx.try_recv().ok()?;
        self.control.queued.fetch_sub(1, Ordering::AcqRel);
        Some(event)
    }

    /// Events waiting (an upper bound while a push is under way).
    pub fn len(&self) -> usize {
        self.control.queued.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SocketHandle {
    pub fn new(id: Id, user: ExternalId, capacity: usize) -> (SocketHandle, SocketInbox) {
        let capacity = capacity.max(1);
        let (tx, rx) = mpsc::unbounded();
        let control = Arc::new(Control {
            capacity,
            queued: AtomicUsize::new(0),
            reason: OnceLock::new(),
            wake: Notify::new(),
            slow: AtomicBool::new(false),
        });
        (
            SocketHandle {
                id,
                user,
                tx,
                control: control.clone(),
            },
            SocketInbox {
                events: SocketEvents {
                    rx,
                    control: control.clone(),
                },
                close: CloseSignal(control),
            },
        )
    }

    /// Queues an event without waiting. A full queue closes the socket with 1013 and answers
    /// `false`, as does a socket that is gone.
    pub fn push(&self, event: Arc<Outgoing>) -> bool {
        match self.try_push(event) {
            Ok(()) => true,
            Err(Rejected::Full(_)) => {
                if !self.control.slow.swap(true, Ordering::AcqRel) {
                    tracing::warn!(user_id = %self.user, socket = %self.id, "socket too slow to read its events; closing");
                    self.close(
                        close_code::TRY_AGAIN_LATER,
                        "too slow to read events; reconnect and sync",
                    );
                }
                false
            }
            Err(Rejected::Gone) => false,
        }
    }

    /// Queues an event if the socket is there and the queue has room, or hands it back.
    fn try_push(&self, event: Arc<Outgoing>) -> Result<(), Rejected> {
        if self.tx.is_closed() {
            return Err(Rejected::Gone);
        }
        let control = &self.control;
        if control.queued.fetch_add(1, Ordering::AcqRel) >= control.capacity {
            control.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Rejected::Full(event));
        }
        self.tx.unbounded_send(event).map_err(|_| {
            control.queued.fetch_sub(1, Ordering::AcqRel);
            Rejected::Gone
        })
    }

    /// Free slots in the queue.
    fn room(&self) -> usize {
        let queued = self.control.queued.load(Ordering::Acquire);
        self.control.capacity.saturating_sub(queued)
    }

    /// Queues a replayed event (`sync`) without ever taking the last free slots: it waits until
    /// the queue has more than [`SocketHandle::replay_reserve`] free slots, so live events pushed
    /// meanwhile with [`SocketHandle::push`] always find room while the client keeps reading.
    ///
    /// It polls instead of waiting for room: a sender parked in a bounded channel's `send` is
    /// handed every slot the reader frees before any `try_send` sees it, which is what used to
    /// close a reader syncing under live traffic. A client that frees no room for `stall` is
    /// [`Replayed::Stalled`]; the caller closes it.
    pub async fn push_replay(&self, event: Arc<Outgoing>, stall: Duration) -> Replayed {
        let deadline = Instant::now() + stall;
        let mut pause = REPLAY_POLL_MIN;
        let mut event = event;
        loop {
            if self.tx.is_closed() {
                return Replayed::Gone;
            }
            if self.room() > self.replay_reserve() {
                match self.try_push(event) {
                    Ok(()) => return Replayed::Queued,
                    Err(Rejected::Gone) => return Replayed::Gone,
                    // A live event took the slot first; that is what the reserve is for.
                    Err(Rejected::Full(back)) => event = back,
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Replayed::Stalled;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(REPLAY_POLL_MAX);
        }
    }

    /// Free slots a replay leaves to live events: a quarter of the queue, at least one unless
    /// the queue has a single slot (then the replay could not move at all).
    pub fn replay_reserve(&self) -> usize {
        let capacity = self.control.capacity;
        (capacity / 4).max(1).min(capacity - 1)
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
        let _ = self.control.reason.set(CloseReason {
            code,
            reason: reason.to_string(),
        });
        self.control.wake.notify_one();
    }

    /// Whether this socket was closed for being too slow (counted by the socket task).
    pub fn was_slow(&self) -> bool {
        self.control.slow.load(Ordering::Acquire)
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

    #[tokio::test]
    async fn a_close_wakes_the_socket_task_whenever_it_comes_and_the_first_reason_stays() {
        let (h, inbox) = SocketHandle::new(Id(1), ExternalId::parse("u").unwrap(), 2);
        let waiting = tokio::spawn(async move {
            let reason = inbox.close.requested().await;
            (reason, inbox)
        });
        tokio::task::yield_now().await;
        h.close(close_code::POLICY, "token expired");
        h.close(close_code::NORMAL, "later");
        let (reason, inbox) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting task is woken")
            .unwrap();
        assert_eq!(
            (reason.code, reason.reason.as_str()),
            (1008, "token expired")
        );
        // Asked again (a write batch after the loop saw it), it answers at once, the same.
        let again = tokio::time::timeout(Duration::from_secs(5), inbox.close.requested())
            .await
            .expect("a close already requested is answered at once");
        assert_eq!(again.code, 1008);

        let (h, inbox) = SocketHandle::new(Id(2), ExternalId::parse("u").unwrap(), 2);
        h.close(close_code::GOING_AWAY, "before anyone waited");
        let early = tokio::time::timeout(Duration::from_secs(5), inbox.close.requested())
            .await
            .expect("a close requested before the wait is not missed");
        assert_eq!(early.code, 1001);
    }

    #[test]
    fn a_full_queue_closes_the_socket_with_1013() {
        let (h, inbox) = SocketHandle::new(Id(1), ExternalId::parse("u").unwrap(), 2);
        assert!(h.event(ServerEvent::Pong { reference: None }));
        assert!(h.event(ServerEvent::Pong { reference: None }));
        assert!(
            !h.event(ServerEvent::Pong { reference: None }),
            "third event must not fit"
        );
        assert!(h.was_slow());
        let reason = inbox.close.reason().unwrap();
        assert_eq!(reason.code, close_code::TRY_AGAIN_LATER);
    }

    #[test]
    fn pushes_from_many_threads_never_overfill_the_queue() {
        let (h, mut inbox) = SocketHandle::new(Id(1), ExternalId::parse("u").unwrap(), 64);
        let accepted: usize = std::thread::scope(|s| {
            let pushers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).filter(|_| h.push(pong())).count()))
                .collect();
            pushers.into_iter().map(|p| p.join().unwrap()).sum()
        });
        assert_eq!(accepted, 64, "exactly the capacity is accepted");
        assert_eq!(inbox.events.len(), 64);
        let mut taken = 0;
        while inbox.events.try_recv().is_some() {
            taken += 1;
        }
        assert_eq!((taken, inbox.events.len()), (64, 0));
        assert!(h.was_slow(), "the overflow closed the socket");
    }

    fn pong() -> Arc<Outgoing> {
        Outgoing::new(ServerEvent::Pong { reference: None })
    }

    #[tokio::test]
    async fn a_replay_leaves_the_reserve_to_live_events() {
        let (h, inbox) = SocketHandle::new(Id(1), ExternalId::parse("u").unwrap(), 8);
        assert_eq!(h.replay_reserve(), 2);
        let stall = Duration::from_millis(50);
        for i in 0..6 {
            assert_eq!(
                h.push_replay(pong(), stall).await,
                Replayed::Queued,
                "event {i}"
            );
        }
        assert_eq!(
            h.push_replay(pong(), stall).await,
            Replayed::Stalled,
            "the seventh would eat into the reserve"
        );
        assert!(
            h.push(pong()) && h.push(pong()),
            "live events fit the reserve"
        );
        assert!(!h.was_slow());
        assert!(inbox.close.reason().is_none());
        assert_eq!(inbox.events.len(), 8);
    }

    #[tokio::test]
    async fn a_replay_moves_at_the_readers_pace() {
        let (h, mut inbox) = SocketHandle::new(Id(1), ExternalId::parse("u").unwrap(), 4);
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while inbox.events.recv().await.is_some() {
                n += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            n
        });
        for i in 0..100 {
            let r = h.push_replay(pong(), Duration::from_secs(5)).await;
            assert_eq!(r, Replayed::Queued, "event {i}");
        }
        drop(h);
        assert_eq!(reader.await.unwrap(), 100);
    }

    #[tokio::test]
    async fn a_replay_to_a_closed_socket_stops() {
        let (h, inbox) = SocketHandle::new(Id(1), ExternalId::parse("u").unwrap(), 1);
        assert_eq!(h.replay_reserve(), 0, "a one-slot queue keeps no reserve");
        drop(inbox);
        let r = h.push_replay(pong(), Duration::from_secs(5)).await;
        assert_eq!(r, Replayed::Gone);
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
