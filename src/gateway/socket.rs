//! A socket's life: authenticate, attach to the user's session, then pump frames both ways in a
//! task of its own for as long as the socket is open.
//!
//! Reading is throttled by a per-socket budget of frames in flight (`limits.socket_inflight`):
//! when a client has that many frames unanswered, the task stops reading until answers go out, and
//! TCP pushes back on the client. That bounds what one socket can put into the actors' mailboxes.
//! Writing takes events from the socket's bounded queue; a client too slow to read is closed
//! with 1013 (see `actors::outbox`).
//!
//! The socket task also owns the socket's credentials: it closes the socket with 1008
//! `token expired` when the token's `exp` (plus [`LEEWAY_SECS`]) passes, and answers an `auth`
//! frame on an open socket itself (a token refresh), so credentials never reach the session
//! actor. A refresh must be for the same user; it moves the deadline and is answered with `ready`
//! carrying the same `session_id`.
//!
//! A compatibility socket whose token comes in the first frame looks its conversation up only
//! after that frame: before it, a real id and a made-up one are treated exactly alike.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use super::compat;
use crate::actors::outbox::{
    close_code, CloseReason, CloseSignal, Outgoing, SocketEvents, SocketHandle, SocketInbox,
};
use crate::actors::user_session::SessionMsg;
use crate::auth::{Verified, LEEWAY_SECS};
use crate::domain::clock::machine_ms;
use crate::domain::events::{ClientFrame, ServerEvent};
use crate::domain::user::{ExternalId, Principal};
use crate::domain::Id;
use crate::engine::EngineRef;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::wire::{self, FrameError, WireFormat};

/// Which protocol a socket speaks.
#[derive(Debug, Clone, Copy)]
pub enum Flavor {
    Standard(WireFormat),
    /// The old hook's shape, bound to one conversation.
    Compat(Id),
}

/// What the upgrade asked for.
#[derive(Debug, Clone)]
pub enum Route {
    /// `/ws`, writing this format.
    Standard(WireFormat),
    /// `/ws/chat/{id}/` whose caller the handshake already found to be a participant.
    Compat(Id),
    /// `/ws/chat/{raw}/` awaiting its `auth` frame: the id is neither parsed nor looked up until
    /// the socket knows who is speaking.
    CompatPending(String),
}

/// Whether `user` is a participant of conversation `id`. A stranger and an id that does not exist
/// get the same `conversation_not_found`, so nobody learns which ids are real.
pub async fn compat_member(engine: &EngineRef, id: Id, user: &ExternalId) -> Result<(), ApiError> {
    let record = engine
        .store
        .conversation_record(id)
        .await?
        .ok_or_else(ApiError::conversation_not_found)?;
    record
        .side_of(user)
        .map(|_| ())
        .ok_or_else(ApiError::conversation_not_found)
}

/// Longest a socket is kept open on one token, whatever its `exp` says: keeps the deadline
/// arithmetic in range for absurd claims.
const MAX_TOKEN_LIFE: Duration = Duration::from_secs(366 * 86_400);

/// When a socket whose token has this `exp` (unix seconds) must close: the same leeway as
/// verification, so a token is good on an open socket exactly as long as at the upgrade.
fn expiry_deadline(expires_at: i64) -> Instant {
    let ms = expires_at
        .saturating_add(LEEWAY_SECS as i64)
        .saturating_mul(1000)
        .saturating_sub(machine_ms())
        .max(0);
    let left = Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(MAX_TOKEN_LIFE);
    Instant::now() + left
}

/// What a socket waits for besides its client and its queue: the next ping and the token's end.
/// One timer serves both (an `Interval` beside a `Sleep` cost ~160 bytes more per idle socket).
struct Due {
    ping: Instant,
    expiry: Instant,
}

impl Due {
    fn next(&self) -> Instant {
        self.ping.min(self.expiry)
    }
}

/// A write that cannot finish in this time means the client is not reading: it is closed.
const WRITE_STALL: Duration = Duration::from_secs(10);
/// Events written before one flush.
const WRITE_BATCH: usize = 64;

/// Counts a connection, under its wire format, for as long as its task runs.
struct ConnectionGauge(EngineRef, WireFormat);

impl ConnectionGauge {
    fn new(engine: &EngineRef, format: WireFormat) -> Self {
        engine.metrics.connections.of(format).inc();
        ConnectionGauge(engine.clone(), format)
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        self.0.metrics.connections.of(self.1).dec();
    }
}

fn close_frame(code: u16, reason: &str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: Utf8Bytes::from(reason),
    }))
}

/// Encodes an event for this socket; `None` when a compat socket does not carry it.
fn to_frame(flavor: Flavor, event: &Outgoing) -> Option<WsMessage> {
    match flavor {
        Flavor::Standard(WireFormat::Json) => {
            // Our JSON encoder only produces UTF-8.
            Utf8Bytes::try_from(event.encoded(WireFormat::Json))
                .ok()
                .map(WsMessage::Text)
        }
        Flavor::Standard(WireFormat::MessagePack) => {
            Some(WsMessage::Binary(event.encoded(WireFormat::MessagePack)))
        }
        Flavor::Compat(conv) => compat::encode(conv, &event.event)
            .and_then(|b| Utf8Bytes::try_from(b).ok())
            .map(WsMessage::Text),
    }
}

fn decode(flavor: Flavor, msg: &WsMessage) -> Option<Result<ClientFrame, FrameError>> {
    match (flavor, msg) {
        (Flavor::Compat(conv), WsMessage::Text(t)) => Some(compat::decode(conv, t.as_bytes())),
        (Flavor::Compat(conv), WsMessage::Binary(b)) => Some(compat::decode(conv, b)),
        // A socket reads either format whatever it writes: text frames are JSON, binary frames
        // MessagePack.
        (_, WsMessage::Text(t)) => Some(wire::decode(WireFormat::Json, t.as_bytes())),
        (_, WsMessage::Binary(b)) => Some(wire::decode(WireFormat::MessagePack, b)),
        _ => None,
    }
}

fn error_event(code: &'static str, message: String, reference: Option<String>) -> Arc<Outgoing> {
    Outgoing::new(ServerEvent::Error {
        code,
        message,
        reference,
        retry_after: None,
    })
}

/// Sends one event directly (before the socket has a queue: auth errors, `ready`).
async fn send_now<S>(ws: &mut WebSocketStream<S>, flavor: Flavor, event: ServerEvent) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match to_frame(flavor, &Outgoing::new(event)) {
        Some(frame) => matches!(timeout(WRITE_STALL, ws.send(frame)).await, Ok(Ok(()))),
        None => true,
    }
}

async fn refuse<S>(ws: &mut WebSocketStream<S>, flavor: Flavor, code: &'static str, message: String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let err = ServerEvent::Error {
        code,
        message: message.clone(),
        reference: None,
        retry_after: None,
    };
    send_now(ws, flavor, err).await;
    let _ = timeout(
        Duration::from_secs(1),
        ws.send(close_frame(close_code::POLICY, code)),
    )
    .await;
}

/// Waits for the first frame to be `auth` with a valid token.
async fn authenticate<S>(
    ws: &mut WebSocketStream<S>,
    engine: &EngineRef,
    flavor: Flavor,
) -> Option<Verified>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limit = Duration::from_secs(engine.config.realtime.auth_timeout_secs);
    let deadline = Instant::now() + limit;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => {
                refuse(
                    ws,
                    flavor,
                    "auth_timeout",
                    format!("send an auth frame within {} s", limit.as_secs()),
                )
                .await;
                return None;
            }
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(m))) => m,
        };
        let bytes: &[u8] = match &msg {
            WsMessage::Text(t) => t.as_bytes(),
            WsMessage::Binary(b) => b,
            WsMessage::Close(_) => return None,
            _ => continue,
        };
        let format = if msg.is_binary() {
            WireFormat::MessagePack
        } else {
            WireFormat::Json
        };
        return match wire::decode(format, bytes) {
            Ok(ClientFrame::Auth { token }) => match engine.auth.verify_with_expiry(&token) {
                Ok(v) => Some(v),
                Err(e) => {
                    let e = ApiError::from(e);
                    refuse(ws, flavor, e.code, e.message).await;
                    None
                }
            },
            _ => {
                refuse(
                    ws,
                    flavor,
                    "auth_required",
                    "the first frame must be {\"type\":\"auth\",\"token\":...}".into(),
                )
                .await;
                None
            }
        };
    }
}

/// Registers the socket with the user's session, starting one if needed. A session that is just
/// stopping (its grace period ended) is replaced.
async fn attach(
    engine: &EngineRef,
    principal: &Principal,
    handle: &SocketHandle,
) -> Option<ractor::ActorRef<SessionMsg>> {
    engine.saw(principal);
    for _ in 0..3 {
        let session = engine
            .registry
            .session_or_start(engine, &principal.user_id)
            .ok()?;
        let (done, attached) = oneshot::channel();
        let msg = SessionMsg::Attach {
            socket: handle.clone(),
            name: principal.name.clone(),
            done,
        };
        if session.send_message(msg).is_ok() && attached.await.is_ok() {
            return Some(session);
        }
        engine
            .registry
            .forget_session(&principal.user_id, session.get_id());
    }
    None
}

/// Runs an upgraded socket. `auth` is the token that came with the upgrade, if any; without one
/// the first frame must be `auth`.
pub async fn run<S>(
    mut ws: WebSocketStream<S>,
    engine: EngineRef,
    route: Route,
    auth: Option<Verified>,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Before authentication a pending compat socket writes plain JSON events, which is what the
    // compat encoding of `error` and `ready` is too.
    let early = match &route {
        Route::Standard(format) => Flavor::Standard(*format),
        Route::Compat(id) => Flavor::Compat(*id),
        Route::CompatPending(_) => Flavor::Standard(WireFormat::Json),
    };
    // Compat sockets speak the old hook's JSON.
    let format = match early {
        Flavor::Standard(format) => format,
        Flavor::Compat(_) => WireFormat::Json,
    };
    let gauge = ConnectionGauge::new(&engine, format);
    let Verified {
        principal,
        expires_at,
    } = match auth {
        Some(v) => v,
        None => match authenticate(&mut ws, &engine, early).await {
            Some(v) => v,
            None => return,
        },
    };
    let flavor = match route {
        Route::Standard(format) => Flavor::Standard(format),
        Route::Compat(id) => Flavor::Compat(id),
        Route::CompatPending(raw) => {
            let checked = match raw.parse::<Id>() {
                Ok(id) => compat_member(&engine, id, &principal.user_id)
                    .await
                    .map(|()| id),
                Err(_) => Err(ApiError::conversation_not_found()),
            };
            match checked {
                Ok(id) => Flavor::Compat(id),
                Err(e) => {
                    refuse(&mut ws, early, e.code, e.message).await;
                    return;
                }
            }
        }
    };
    let socket_id = engine.ids.next_id();
    let span = tracing::info_span!("socket", user_id = %principal.user_id, socket_id = %socket_id);
    // The pump gets a task of its own: this one (upgrade, authentication) is ~3 KiB larger than
    // the pump, and would hold that for as long as the socket is open.
    tokio::spawn(
        pump(
            ws, engine, flavor, principal, expires_at, socket_id, shutdown, gauge,
        )
        .instrument(span),
    );
}

/// Checks a token sent on an open socket: valid, and for the user the socket already speaks for.
/// Answers its `exp`.
fn refresh(engine: &EngineRef, principal: &Principal, token: &str) -> Result<i64, ApiError> {
    let fresh = engine.auth.verify_with_expiry(token)?;
    if fresh.principal.user_id != principal.user_id {
        return Err(ApiError::new(
            crate::error::ErrorKind::Forbidden,
            "token_user_mismatch",
            "a refreshed token must be for the user this socket was opened for",
        ));
    }
    Ok(fresh.expires_at)
}

#[allow(clippy::too_many_arguments)]
async fn pump<S>(
    mut ws: WebSocketStream<S>,
    engine: EngineRef,
    flavor: Flavor,
    principal: Principal,
    expires_at: i64,
    socket_id: Id,
    mut shutdown: watch::Receiver<bool>,
    _gauge: ConnectionGauge,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &engine.config.limits;
    let (handle, inbox) =
        SocketHandle::new(socket_id, principal.user_id.clone(), limits.socket_queue);
    let SocketInbox { mut events, close } = inbox;
    let Some(session) = Box::pin(attach(&engine, &principal, &handle)).await else {
        let _ = Box::pin(ws.send(close_frame(
            close_code::TRY_AGAIN_LATER,
            "session unavailable",
        )))
        .await;
        return;
    };
    let ready = ServerEvent::Ready {
        user_id: principal.user_id.clone(),
        session_id: socket_id,
    };
    tracing::debug!("socket ready");
    if !Box::pin(send_now(&mut ws, flavor, ready)).await {
        let _ = session.send_message(SessionMsg::Detach { socket: socket_id });
        return;
    }

    let inflight = Arc::new(Semaphore::new(limits.socket_inflight));
    let mut permit: Option<OwnedSemaphorePermit> = None;
    let ping_every = Duration::from_secs(engine.config.realtime.ping_interval_secs);
    let mut heard = true;
    let mut awaiting_pong = false;
    let mut due = Due {
        ping: Instant::now() + ping_every,
        expiry: expiry_deadline(expires_at),
    };
    let timer = tokio::time::sleep_until(due.next());
    tokio::pin!(timer);

    let end: Option<CloseReason> = loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                break Some(CloseReason { code: close_code::GOING_AWAY, reason: "server shutting down".into() });
            }
            reason = close.requested() => break Some(reason),
            () = &mut timer => {
                let now = Instant::now();
                if now >= due.expiry {
                    break Some(CloseReason { code: close_code::POLICY, reason: "token expired".into() });
                }
                // Time to ping: a client that answered nothing since the last ping is gone; one
                // that sent nothing for a whole interval is asked whether it is still there.
                if awaiting_pong {
                    tracing::debug!("no answer to ping; dropping socket");
                    break None;
                }
                if !heard {
                    awaiting_pong = true;
                    if Box::pin(timeout(WRITE_STALL, ws.send(WsMessage::Ping(Default::default())))).await.is_err() {
                        break None;
                    }
                }
                heard = false;
                due.ping = now + ping_every;
                timer.as_mut().reset(due.next());
            }
            ev = events.recv() => {
                let Some(ev) = ev else { break None };
                match Box::pin(write_batch(&mut ws, flavor, ev, &mut events, &close, &engine.metrics)).await {
                    Written::All => {}
                    Written::CloseRequested(reason) => break Some(reason),
                    Written::Stalled => break Some(CloseReason {
                        code: close_code::TRY_AGAIN_LATER,
                        reason: "too slow to read events; reconnect and sync".into(),
                    }),
                }
            }
            p = inflight.clone().acquire_owned(), if permit.is_none() => {
                permit = p.ok();
            }
            msg = ws.next(), if permit.is_some() => {
                heard = true;
                awaiting_pong = false;
                let msg = match msg {
                    None => break None,
                    Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => {
                        engine.metrics.oversized_frame_closes.inc();
                        break Some(CloseReason { code: close_code::TOO_BIG, reason: format!("frame larger than {} bytes", limits.max_frame_bytes) });
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "socket read failed");
                        break None;
                    }
                    Some(Ok(m)) => m,
                };
                if let WsMessage::Close(_) = msg {
                    // tungstenite has queued the closing handshake's reply; send it.
                    let _ = Box::pin(timeout(Duration::from_secs(1), ws.flush())).await;
                    break None;
                }
                let Some(decoded) = decode(flavor, &msg) else { continue };
                engine.metrics.frames_in.inc();
                let frame = match decoded {
                    Ok(f) => f,
                    Err(e) => {
                        engine.metrics.frames_rejected.inc();
                        handle.push(error_event(e.code, e.message, e.reference));
                        continue;
                    }
                };
                match frame {
                    ClientFrame::Ping { reference } => {
                        handle.event(ServerEvent::Pong { reference });
                    }
                    ClientFrame::Auth { token } => match refresh(&engine, &principal, &token) {
                        Ok(exp) => {
                            due.expiry = expiry_deadline(exp);
                            timer.as_mut().reset(due.next());
                            handle.event(ServerEvent::Ready { user_id: principal.user_id.clone(), session_id: socket_id });
                        }
                        Err(e) => {
                            // Written directly: the close below must not overtake it.
                            Box::pin(send_now(&mut ws, flavor, ServerEvent::Error { code: e.code, message: e.message, reference: None, retry_after: None })).await;
                            break Some(CloseReason { code: close_code::POLICY, reason: e.code.into() });
                        }
                    },
                    // The user's typing budget is shared with HTTP and their other sockets; over
                    // it, frames are dropped without an answer.
                    ClientFrame::TypingStatus { .. } if engine.typing.check(&principal.user_id).is_err() => {}
                    frame => {
                        let Some(p) = permit.take() else { continue };
                        let msg = SessionMsg::Inbound { socket: socket_id, frame, permit: p, received: std::time::Instant::now() };
                        if session.send_message(msg).is_err() {
                            break Some(CloseReason { code: close_code::TRY_AGAIN_LATER, reason: "session restarted; reconnect".into() });
                        }
                    }
                }
            }
        }
    };
    let _ = session.send_message(SessionMsg::Detach { socket: socket_id });
    if handle.was_slow() {
        engine.metrics.slow_socket_closes.inc();
    }
    if let Some(reason) = end {
        tracing::debug!(code = reason.code, reason = %reason.reason, "closing socket");
        let _ = Box::pin(timeout(
            Duration::from_secs(1),
            ws.send(close_frame(reason.code, &reason.reason)),
        ))
        .await;
    }
    let _ = Box::pin(timeout(Duration::from_secs(1), ws.close(None))).await;
}

enum Written {
    All,
    /// The client took nothing for `WRITE_STALL`.
    Stalled,
    /// Someone asked to close the socket meanwhile (its queue overflowed, an operator, shutdown).
    CloseRequested(CloseReason),
}

/// Writes one event and whatever else is queued (up to a batch), then flushes once. A write that
/// stalls, or a close requested while it stalls, ends it: the socket is being dropped anyway.
async fn write_batch<S>(
    ws: &mut WebSocketStream<S>,
    flavor: Flavor,
    first: Arc<Outgoing>,
    events: &mut SocketEvents,
    close: &CloseSignal,
    metrics: &Metrics,
) -> Written
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let work = async {
        let mut next = Some(first);
        let mut n = 0;
        while let Some(ev) = next.take() {
            if let Some(frame) = to_frame(flavor, &ev) {
                ws.feed(frame).await?;
                metrics.fanout_events.inc();
            }
            n += 1;
            if n < WRITE_BATCH {
                next = events.try_recv();
            }
        }
        ws.flush().await
    };
    tokio::select! {
        r = timeout(WRITE_STALL, work) => match r {
            Ok(Ok(())) => Written::All,
            _ => Written::Stalled,
        },
        reason = close.requested() => Written::CloseRequested(reason),
    }
}

#[cfg(test)]
mod tests;
