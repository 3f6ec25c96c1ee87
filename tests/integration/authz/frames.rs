//! The socket half of the matrix: each client frame type sent by a stranger and by a participant
//! over open, authenticated `/ws` sockets, with the exact answer each gets. A stranger's frame
//! must also cause nothing at all on the participants' sockets (no relayed typing, no message, no
//! receipt).

use std::time::Duration;

use serde_json::Value;

use super::run::{read_event, World, ANSWER_WITHIN};
use crate::harness::Ws;

/// How long a socket must stay silent to count as "nothing happened".
const QUIET: Duration = Duration::from_millis(300);

/// Answer types that echo the frame's `ref` (API.md; `unread` and `receipt` go to every device and
/// carry none).
const ECHOES_REF: [&str; 4] = ["ack", "synced", "pong", "error"];

/// What a frame gets.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// The sending socket gets an event of this type.
    Sender(&'static str),
    /// The other participant's socket gets an event of this type about the conversation; the
    /// sender gets no error.
    Peer(&'static str),
    /// The sending socket gets an `error` with this code.
    Error(&'static str),
}

impl Reply {
    fn describe(self) -> String {
        match self {
            Reply::Sender(kind) => kind.to_string(),
            Reply::Peer(kind) => format!("{kind} to the other participant"),
            Reply::Error(code) => format!("error {code}"),
        }
    }
}

/// One frame type: the frame (a template, see [`super::cells::Row`]), and what a stranger and a
/// participant (the conversation's provider) get. `fresh`: the customer sends a new message
/// first, named `{fresh}`, so there is something to read or mark delivered.
pub struct FrameRow {
    pub frame: &'static str,
    pub fresh: bool,
    pub stranger: Reply,
    pub participant: Reply,
}

pub fn frame(frame: &'static str, stranger: Reply, participant: Reply) -> FrameRow {
    FrameRow {
        frame,
        fresh: false,
        stranger,
        participant,
    }
}

impl FrameRow {
    pub fn fresh(self) -> Self {
        FrameRow {
            fresh: true,
            ..self
        }
    }
}

/// What an event is, for comparison with [`Reply::describe`]: its type (or `error <code>`), and
/// a note when it should have echoed the frame's `ref` and did not.
fn describe(ev: &Value, frame: &Value) -> String {
    let kind = ev["type"].as_str().unwrap_or("<no type>");
    let mut d = match kind {
        "error" => format!("error {}", ev["code"].as_str().unwrap_or("<no code>")),
        k => k.to_string(),
    };
    if ECHOES_REF.contains(&kind) && !frame["ref"].is_null() && ev["ref"] != frame["ref"] {
        d.push_str(&format!(" without ref {}", frame["ref"]));
    }
    d
}

/// The first event of type `kind` (about `conv` when it names a conversation, and naming `fresh`
/// when given), or the first `error`, or the first event echoing the frame's `ref`: whichever
/// comes first, so a wrong answer is reported as itself rather than as a timeout.
async fn wait_for(
    ws: &mut Ws,
    kind: &str,
    frame: &Value,
    conv: &str,
    fresh: &str,
) -> Result<Value, String> {
    loop {
        let ev = read_event(ws, ANSWER_WITHIN).await?;
        let about = ev["conversation_id"].as_str().is_none_or(|c| c == conv);
        let names_fresh = fresh.is_empty() || ev.to_string().contains(fresh);
        let echoes = !frame["ref"].is_null() && ev["ref"] == frame["ref"];
        if ev["type"] == "error" || echoes || (ev["type"] == kind && about && names_fresh) {
            return Ok(ev);
        }
    }
}

/// The first event within [`QUIET`] other than `presence` (which a socket gets whenever a peer
/// comes or goes), or `None`.
async fn noise(ws: &mut Ws) -> Option<Value> {
    loop {
        match read_event(ws, QUIET).await {
            Ok(ev) if ev["type"] == "presence" => continue,
            Ok(ev) => return Some(ev),
            Err(_) => return None,
        }
    }
}

/// Reads until the socket has been quiet for [`QUIET`].
async fn drain(ws: &mut Ws) {
    while read_event(ws, QUIET).await.is_ok() {}
}

/// Runs every frame row; answers one readable line per wrong cell.
pub async fn check(w: &World, rows: &[FrameRow]) -> Vec<String> {
    let mut failures = Vec::new();
    let mut customer = Ws::connect(&w.s, &w.customer).await;
    let mut provider = Ws::connect(&w.s, &w.provider).await;
    let mut stranger = Ws::connect(&w.s, &w.stranger).await;
    for row in rows {
        let fresh = if row.fresh {
            w.fresh_message().await
        } else {
            String::new()
        };
        let frame: Value =
            serde_json::from_str(&w.fill(row.frame, &fresh)).expect("frame template is JSON");
        let name = frame["type"].as_str().unwrap_or("<no type>").to_string();
        tokio::join!(
            drain(&mut customer),
            drain(&mut provider),
            drain(&mut stranger)
        );

        // The stranger: its answer, then silence on both participants' sockets.
        stranger.send(frame.clone()).await;
        let got = answer(
            &mut stranger,
            &mut customer,
            row.stranger,
            &frame,
            w,
            &fresh,
        )
        .await;
        if got != row.stranger.describe() {
            failures.push(format!(
                "WS {name} as stranger: expected {}, got {got}",
                row.stranger.describe()
            ));
        }
        let (c, p) = tokio::join!(noise(&mut customer), noise(&mut provider));
        for (who, ev) in [("customer", c), ("provider", p)] {
            if let Some(ev) = ev {
                failures.push(format!(
                    "WS {name} as stranger: the {who} heard of it: {ev}"
                ));
            }
        }

        // The participant (the provider; the customer is the other participant).
        provider.send(frame.clone()).await;
        let got = answer(
            &mut provider,
            &mut customer,
            row.participant,
            &frame,
            w,
            &fresh,
        )
        .await;
        if got != row.participant.describe() {
            failures.push(format!(
                "WS {name} as participant: expected {}, got {got}",
                row.participant.describe()
            ));
        }
    }
    failures
}

/// What the frame just sent on `sender` got, described like the [`Reply`] it is compared with.
async fn answer(
    sender: &mut Ws,
    peer: &mut Ws,
    want: Reply,
    frame: &Value,
    w: &World,
    fresh: &str,
) -> String {
    match want {
        Reply::Sender(kind) => match wait_for(sender, kind, frame, &w.conv, "").await {
            Ok(ev) => describe(&ev, frame),
            Err(e) => e,
        },
        Reply::Error(_) => match wait_for(sender, "error", frame, &w.conv, "").await {
            Ok(ev) => describe(&ev, frame),
            Err(e) => e,
        },
        Reply::Peer(kind) => {
            // The peer never sent the frame: nothing it gets echoes its `ref`.
            let seen = match wait_for(peer, kind, &Value::Null, &w.conv, fresh).await {
                Ok(ev) => format!("{} to the other participant", describe(&ev, frame)),
                Err(e) => format!("{e} on the other participant's socket"),
            };
            // The sender gets no answer; an error would mean the frame was refused.
            match noise(sender).await {
                Some(ev) if ev["type"] == "error" => describe(&ev, frame),
                _ => seen,
            }
        }
    }
}
