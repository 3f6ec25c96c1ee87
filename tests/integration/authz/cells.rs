//! The matrix's vocabulary: who calls ([`Who`]), what a cell expects ([`Expect`]), what the server
//! answered ([`Answer`]), and the presets that make a route's row one line ([`Cells`]).

use std::fmt;

/// Every kind of caller the matrix tries on every route, in the order it tries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    /// No token at all.
    None,
    /// The route's rightful caller, but `exp` an hour ago.
    Expired,
    /// The route's rightful caller, signed with a secret that is not the server's.
    Forged,
    /// The route's rightful caller, with `token_type: "refresh"` (SimpleJWT's refresh token).
    Refresh,
    /// A valid token whose role the route does not allow (a provider creating a conversation, a
    /// customer on the admin API); on a route every role may use, the cell says so.
    WrongRole,
    /// A valid customer who is not a participant of what the route addresses.
    Stranger,
    /// A participant of the addressed conversation (the customer on the public API).
    Participant,
    /// A valid JWT with role `admin`.
    Admin,
    /// The operator token from the admin configuration, sent as a bearer token.
    AdminToken,
}

impl Who {
    pub const ALL: [Who; 9] = [
        Who::None,
        Who::Expired,
        Who::Forged,
        Who::Refresh,
        Who::WrongRole,
        Who::Stranger,
        Who::Participant,
        Who::Admin,
        Who::AdminToken,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Who::None => "none",
            Who::Expired => "expired",
            Who::Forged => "forged",
            Who::Refresh => "refresh",
            Who::WrongRole => "wrong_role",
            Who::Stranger => "stranger",
            Who::Participant => "participant",
            Who::Admin => "admin",
            Who::AdminToken => "admin_token",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What one cell must get.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// This success status. For a socket upgrade, 101 and (when a token came with it) `ready`.
    Ok(u16),
    /// This error status with this `error.code` in the contract's body.
    Err(u16, &'static str),
    /// After the first frame: an `error` frame with this code, then close 1008.
    Closed(&'static str),
    /// After the first frame: `ready`.
    Ready,
    /// This identity means nothing for the route; the reason is printed, nothing is called.
    Na(&'static str),
}

/// What the server did, in the shape an [`Expect`] is compared with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    Error(u16, String),
    Closed(String, Option<u16>),
    Ready,
    /// Anything else, described.
    Odd(String),
}

impl Expect {
    /// The answer this cell wants; `None` for a cell that is not run.
    pub fn answer(self) -> Option<Answer> {
        Some(match self {
            Expect::Ok(s) => Answer::Status(s),
            Expect::Err(s, code) => Answer::Error(s, code.to_string()),
            Expect::Closed(code) => Answer::Closed(code.to_string(), Some(1008)),
            Expect::Ready => Answer::Ready,
            Expect::Na(_) => return None,
        })
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Status(s) => write!(f, "{s}"),
            Answer::Error(s, code) => write!(f, "{s} {code}"),
            Answer::Closed(code, Some(close)) => write!(f, "error frame {code}, close {close}"),
            Answer::Closed(code, None) => write!(f, "error frame {code}, no close frame"),
            Answer::Ready => write!(f, "ready"),
            Answer::Odd(what) => write!(f, "{what}"),
        }
    }
}

/// One expectation per [`Who`], in [`Who::ALL`] order.
#[derive(Clone, Copy, Debug)]
pub struct Cells([Expect; 9]);

impl Cells {
    pub fn get(&self, who: Who) -> Expect {
        self.0[who.index()]
    }

    /// The same cells with one changed: how a row says where it differs from its preset.
    pub fn with(mut self, who: Who, e: Expect) -> Self {
        self.0[who.index()] = e;
        self
    }
}

const NOT_FOUND: Expect = Expect::Err(404, "conversation_not_found");
const FORBIDDEN_ROLE: Expect = Expect::Err(403, "forbidden_role");
/// The configured operator token is not a JWT: it must open nothing on the public listener.
const OPERATOR_TOKEN_ON_PUBLIC: Expect = Expect::Err(401, "invalid_token");
const ANY_ROLE: Expect =
    Expect::Na("every role may call it (the admin column covers a JWT that is no participant)");

/// What every authenticated route answers to the four bad tokens (`From<AuthError>` in
/// src/error.rs), followed by the given cells.
fn authenticated(rest: [Expect; 5]) -> Cells {
    let [wrong_role, stranger, participant, admin, admin_token] = rest;
    Cells([
        Expect::Err(401, "missing_token"),
        Expect::Err(401, "token_expired"),
        Expect::Err(401, "invalid_token"),
        Expect::Err(401, "invalid_token"),
        wrong_role,
        stranger,
        participant,
        admin,
        admin_token,
    ])
}

/// A route that needs no token and ignores any that comes along: everyone gets `status`.
pub fn open(status: u16) -> Cells {
    Cells([Expect::Ok(status); 9])
}

/// A route that needs no token and answers everyone the same refusal (a feature that is off).
pub fn open_refused(status: u16, code: &'static str) -> Cells {
    Cells([Expect::Err(status, code); 9])
}

/// Any valid token, whatever its role, and nothing addressed that a stranger could be kept out of.
pub fn anyone(status: u16) -> Cells {
    let ok = Expect::Ok(status);
    authenticated([ANY_ROLE, ok, ok, ok, OPERATOR_TOKEN_ON_PUBLIC])
}

/// Any valid token gets past authentication to the same refusal of the body, `status` `code`:
/// how a route shows that it authenticates before it reads what it is sent.
pub fn anyone_refused(status: u16, code: &'static str) -> Cells {
    let refused = Expect::Err(status, code);
    authenticated([
        ANY_ROLE,
        refused,
        refused,
        refused,
        OPERATOR_TOKEN_ON_PUBLIC,
    ])
}

/// A conversation's participants only: anyone else (an admin JWT included: operators read
/// conversations on the admin API) gets `conversation_not_found`, never a hint that it exists.
pub fn member(status: u16) -> Cells {
    let ok = Expect::Ok(status);
    authenticated([ANY_ROLE, NOT_FOUND, ok, NOT_FOUND, OPERATOR_TOKEN_ON_PUBLIC])
}

/// A message's participants only: anyone else gets `message_not_found` (API-NOTES).
pub fn message_member(status: u16) -> Cells {
    let gone = Expect::Err(404, "message_not_found");
    member(status)
        .with(Who::Stranger, gone)
        .with(Who::Admin, gone)
}

/// An attachment sent in the conversation: its participants only; anyone else gets
/// `attachment_not_found`, exactly as for an id that does not exist.
pub fn attachment_member(status: u16) -> Cells {
    let gone = Expect::Err(404, "attachment_not_found");
    member(status)
        .with(Who::Stranger, gone)
        .with(Who::Admin, gone)
}

/// `POST /api/v1/conversations`: customers only. The stranger is a customer who has not talked
/// to this provider yet (201, a new conversation); the participant already has (200, appended).
pub fn create_conversation() -> Cells {
    authenticated([
        FORBIDDEN_ROLE,
        Expect::Ok(201),
        Expect::Ok(200),
        FORBIDDEN_ROLE,
        OPERATOR_TOKEN_ON_PUBLIC,
    ])
}

/// A provider's own things (templates): the provider token (the `wrong_role` column on the public
/// API) gets `status`; customers and admin JWTs are 403 `forbidden_role`.
pub fn provider_own(status: u16) -> Cells {
    provider_gets(Expect::Ok(status))
}

/// [`provider_own`], for an id that is none of the provider's: 404 `code` for the provider.
pub fn provider_own_missing(code: &'static str) -> Cells {
    provider_gets(Expect::Err(404, code))
}

fn provider_gets(provider: Expect) -> Cells {
    authenticated([
        provider,
        FORBIDDEN_ROLE,
        FORBIDDEN_ROLE,
        FORBIDDEN_ROLE,
        OPERATOR_TOKEN_ON_PUBLIC,
    ])
}

/// The admin API: the operator token or an admin JWT; any other valid JWT, a participant's
/// included, is 403 `forbidden_role`.
pub fn operator(status: u16) -> Cells {
    let ok = Expect::Ok(status);
    authenticated([FORBIDDEN_ROLE, FORBIDDEN_ROLE, FORBIDDEN_ROLE, ok, ok])
}

/// The admin API on something that is not there: operators get `status` `code`, everyone else
/// what [`operator`] says (authorization before lookup).
pub fn operator_refused(status: u16, code: &'static str) -> Cells {
    let refused = Expect::Err(status, code);
    authenticated([
        FORBIDDEN_ROLE,
        FORBIDDEN_ROLE,
        FORBIDDEN_ROLE,
        refused,
        refused,
    ])
}

/// `/ws` upgrade: a bad token present is 401 and no upgrade; no token at all is upgraded and must
/// then authenticate with its first frame (API-NOTES); any valid token gets `ready`.
pub fn socket() -> Cells {
    let up = Expect::Ok(101);
    authenticated([
        Expect::Na("every role may open a socket"),
        up,
        up,
        up,
        OPERATOR_TOKEN_ON_PUBLIC,
    ])
    .with(Who::None, up)
}

/// `/ws/chat/{id}/` upgrade: as `/ws`, and anyone who is not a participant is refused before the
/// upgrade with `conversation_not_found`.
pub fn compat_socket() -> Cells {
    socket()
        .with(Who::Stranger, NOT_FOUND)
        .with(Who::Admin, NOT_FOUND)
}

/// `/ws` with the token in the first `auth` frame: a bad one gets an `error` frame, then close
/// 1008; `none` sends a `ping` first instead, which is `auth_required`.
pub fn auth_frame() -> Cells {
    let c = Expect::Closed;
    Cells([
        c("auth_required"),
        c("token_expired"),
        c("invalid_token"),
        c("invalid_token"),
        Expect::Na("every role may open a socket"),
        Expect::Ready,
        Expect::Ready,
        Expect::Ready,
        c("invalid_token"),
    ])
}

/// `/ws/chat/{id}/` with the token in the first frame: as `/ws`, and a non-participant is told
/// `conversation_not_found` (then 1008) only once the frame says who is asking.
pub fn compat_auth_frame() -> Cells {
    let gone = Expect::Closed("conversation_not_found");
    auth_frame()
        .with(Who::Stranger, gone)
        .with(Who::Admin, gone)
}

/// A token refresh on an open socket (the participant's): only a valid token for the same user
/// moves the socket's deadline; anything else is an `error` frame, then close 1008, so a leaked
/// token cannot take a socket over. `none` sends an empty token.
pub fn refresh_frame() -> Cells {
    let c = Expect::Closed;
    Cells([
        c("missing_token"),
        c("token_expired"),
        c("invalid_token"),
        c("invalid_token"),
        Expect::Na("every role may refresh its own socket"),
        c("token_user_mismatch"),
        Expect::Ready,
        c("token_user_mismatch"),
        c("invalid_token"),
    ])
}

/// Which listener a route is served on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Public,
    Admin,
}

/// How a cell calls its route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    /// Socket upgrade, token in `Authorization: Bearer`.
    Ws,
    /// Socket upgrade, token in `?access_token=`.
    WsQuery,
    /// Socket upgrade without a token, then the token in the first frame.
    WsAuthFrame,
    /// A socket open as the participant, then the caller's token in an `auth` frame: a token
    /// refresh on an open socket.
    WsRefresh,
}

impl Verb {
    pub fn http(self) -> Option<&'static str> {
        Some(match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
            Verb::Patch => "PATCH",
            Verb::Delete => "DELETE",
            Verb::Ws | Verb::WsQuery | Verb::WsAuthFrame | Verb::WsRefresh => return None,
        })
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.http(), self) {
            (Some(m), _) => f.write_str(m),
            (None, Verb::Ws) => f.write_str("WS(header)"),
            (None, Verb::WsQuery) => f.write_str("WS(query)"),
            (None, Verb::WsRefresh) => f.write_str("WS(refresh)"),
            (None, _) => f.write_str("WS(auth frame)"),
        }
    }
}

/// A fixture a destructive row needs new before each of its cells, named `{fresh}` in its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fresh {
    Nothing,
    /// A message the participant (customer) just sent in the conversation.
    Message,
    /// A service just put into the directory.
    Service,
}

/// One route: where, how, with what body (a JSON template, `""` for none), and what each caller
/// gets. Templates may name `{conv}`, `{msg}` (its first message), `{svc}`, `{user}` (a stored
/// profile) and `{fresh}`.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub on: Listener,
    pub verb: Verb,
    pub path: &'static str,
    pub body: &'static str,
    pub fresh: Fresh,
    pub cells: Cells,
}

pub fn row(on: Listener, verb: Verb, path: &'static str, body: &'static str, cells: Cells) -> Row {
    Row {
        on,
        verb,
        path,
        body,
        fresh: Fresh::Nothing,
        cells,
    }
}

impl Row {
    pub fn fresh(mut self, fresh: Fresh) -> Self {
        self.fresh = fresh;
        self
    }

    /// How failures name the row: `GET /healthz (admin listener)`.
    pub fn label(&self) -> String {
        let on = match self.on {
            Listener::Public => "",
            Listener::Admin => " (admin listener)",
        };
        format!("{} {}{on}", self.verb, self.path)
    }
}
