//! The authorization matrix (issue 11): every route and every socket frame type, called as every
//! kind of caller ([`cells::Who`]: no token, expired, forged, refresh token, wrong role,
//! stranger, participant, admin JWT, operator token), with the exact status and error code each
//! must get. One server runs the whole table; every wrong cell is collected and the test fails
//! once with the full list, so one run shows everything that is off.
//!
//! Adding a route is one line in [`routes`] (pick the preset that says who may call it, and
//! `.with(..)` where it differs); `authz_every_warp_route_in_src_has_a_row` fails until it is
//! there. Socket frame types are one line each in [`frame_types`].

mod cells;
mod frames;
mod run;
pub(crate) mod source_routes;

use cells::{
    anyone, anyone_refused, attachment_member, auth_frame, compat_auth_frame, compat_socket,
    create_conversation, member, message_member, open, open_refused, operator, operator_refused,
    provider_own, provider_own_missing, refresh_frame, row, socket, Expect, Fresh, Listener, Row,
    Verb, Who,
};
use frames::{frame, FrameRow, Reply};

/// Every HTTP route and socket upgrade, and what each caller gets. One line a route (hence no
/// rustfmt here).
#[rustfmt::skip]
fn routes() -> Vec<Row> {
    use Listener::{Admin, Public};
    use Verb::*;
    const NO: &str = "";
    vec![
        // Health: no token needed; a token that comes along, good or bad, is ignored.
        row(Public, Get, "/healthz", NO, open(200)),
        row(Public, Get, "/readyz", NO, open(200)),
        row(Admin, Get, "/healthz", NO, open(200)),
        row(Admin, Get, "/readyz", NO, open(200)),
        // Dev tokens (on in the local config): anyone who reaches it may mint; tokens are ignored.
        row(Public, Post, "/api/v1/dev/tokens", r#"{"user_id":"dev-authz","role":"customer"}"#, open(200)),
        row(Public, Get, "/api/v1/services/{svc}/contact", NO, anyone(200)),
        // The API descriptions (`describe/`): the public ones are open to anyone, any token ignored.
        row(Public, Get, "/api/v1/openapi.json", NO, open(200)),
        row(Public, Get, "/api/v1/asyncapi.json", NO, open(200)),
        // The demo (on in the local config) is static files: no token needed, any ignored. The
        // client follows `/demo`'s redirect to `/demo/`.
        row(Public, Get, "/demo", NO, open(200)),
        // The stranger gets a conversation of its own with this provider here: from then on it is
        // a fellow customer of the same provider, and must still learn nothing of this one.
        row(Public, Post, "/api/v1/conversations", r#"{"service_id":"{svc}","initial_message":"again"}"#, create_conversation()),
        // Anyone may list their own conversations (and unread counts); the leak check in
        // `run::check` makes sure the stranger's and the admin's lists do not name this one.
        row(Public, Get, "/api/v1/conversations", NO, anyone(200)),
        row(Public, Get, "/api/v1/conversations/{conv}", NO, member(200)),
        row(Public, Patch, "/api/v1/conversations/{conv}", r#"{"archived":false}"#, member(200)),
        row(Public, Get, "/api/v1/conversations/{conv}/messages", NO, member(200)),
        row(Public, Post, "/api/v1/conversations/{conv}/messages", r#"{"text":"matrix"}"#, member(201)),
        row(Public, Post, "/api/v1/conversations/{conv}/mark-read", NO, member(200)),
        // `false`, so no expiry is relayed seconds later into the socket checks below.
        row(Public, Post, "/api/v1/conversations/{conv}/typing", r#"{"is_typing":false}"#, member(204)),
        row(Public, Get, "/api/v1/unread", NO, anyone(200)),
        row(Public, Delete, "/api/v1/messages/{msg}", NO, message_member(204)),
        row(Public, Post, "/api/v1/messages/{msg}/flag", r#"{"reason":"matrix"}"#, message_member(202)),
        // Authentication comes before the body: a JSON body is what every caller sends here.
        row(Public, Post, "/api/v1/attachments", "{}", anyone_refused(415, "unsupported_media_type")),
        row(Public, Get, "/api/v1/attachments/{att}", NO, attachment_member(200)),
        // Web Push is off in this world: the key is refused to everyone, subscribing to anyone
        // signed in; a caller's own list is empty and an id not theirs is not found.
        row(Public, Get, "/api/v1/push/vapid-public-key", NO, open_refused(404, "push_disabled")),
        row(Public, Post, "/api/v1/push/subscriptions", r#"{"endpoint":"https://push.example/x","keys":{"p256dh":"a","auth":"b"}}"#, anyone_refused(404, "push_disabled")),
        row(Public, Get, "/api/v1/push/subscriptions", NO, anyone(200)),
        row(Public, Delete, "/api/v1/push/subscriptions/{dead}", NO, anyone_refused(404, "subscription_not_found")),
        // Templates are the provider's own (here the `wrong_role` token is the provider).
        row(Public, Get, "/api/v1/templates", NO, provider_own(200)),
        row(Public, Post, "/api/v1/templates", r#"{"text":"Thanks, I will get back to you today."}"#, provider_own(201)),
        row(Public, Patch, "/api/v1/templates/{dead}", r#"{"position":0}"#, provider_own_missing("template_not_found")),
        row(Public, Delete, "/api/v1/templates/{dead}", NO, provider_own_missing("template_not_found")),
        // Search covers the caller's own conversations, so anyone signed in may search.
        row(Public, Get, "/api/v1/search?q=matrix", NO, anyone(200)),
        // Analytics are the provider's own.
        row(Public, Get, "/api/v1/me/analytics", NO, provider_own(200)),
        row(Public, Delete, "/api/v1/messages/{msg}?for=me", NO, message_member(204)),
        // For everyone: the sender only; the other participant (the provider) is `not_sender`.
        row(Public, Delete, "/api/v1/messages/{fresh}?for=everyone", NO, message_member(204).with(Who::WrongRole, Expect::Err(403, "not_sender"))).fresh(Fresh::Message),
        // The admin API.
        row(Admin, Put, "/admin/v1/services/{svc}", r#"{"provider_id":"prov-authz","title":"svc-authz title","provider_name":"prov-authz name"}"#, operator(200)),
        row(Admin, Get, "/admin/v1/services/{svc}", NO, operator(200)),
        row(Admin, Delete, "/admin/v1/services/{fresh}", NO, operator(204)).fresh(Fresh::Service),
        row(Admin, Put, "/admin/v1/users/{user}", r#"{"name":"Profile","role":"customer"}"#, operator(200)),
        row(Admin, Get, "/admin/v1/users/{user}", NO, operator(200)),
        row(Admin, Post, "/admin/v1/users/{user}/disconnect", NO, operator(200)),
        row(Admin, Get, "/admin/v1/users/{user}/export", NO, operator(200)),
        // Erasing someone this world needs would spoil the rows after it: a user it never knew
        // shows the route is the operators' (and answers them 404).
        row(Admin, Delete, "/admin/v1/users/{dead}", NO, operator_refused(404, "user_not_found")),
        // Nothing here is two years old: the sweep runs and removes nothing.
        row(Admin, Post, "/admin/v1/retention/run", NO, operator(200)),
        row(Admin, Get, "/admin/v1/stats", NO, operator(200)),
        row(Admin, Get, "/admin/v1/openapi.json", NO, operator(200)),
        row(Admin, Get, "/admin/v1/conversations/{conv}", NO, operator(200)),
        row(Admin, Get, "/admin/v1/conversations/{conv}/messages", NO, operator(200)),
        row(Admin, Get, "/metrics", NO, operator(200)),
        row(Admin, Get, "/admin/v1/moderation/queue", NO, operator(200)),
        row(Admin, Post, "/admin/v1/messages/{msg}/moderation", r#"{"action":"approve"}"#, operator(204)),
        row(Admin, Get, "/admin/v1/webhooks/dead", NO, operator(200)),
        // No dead letters in this world: operators learn that, nobody else gets that far.
        row(Admin, Post, "/admin/v1/webhooks/dead/{dead}/retry", NO, operator_refused(404, "notification_not_found")),
        row(Admin, Get, "/admin/v1/attachments/unscanned", NO, operator(200)),
        row(Admin, Get, "/admin/v1/audit", NO, operator(200)),
        row(Admin, Get, "/admin/v1/analytics", NO, operator(200)),
        row(Admin, Post, "/admin/v1/conversations/{conv}/outcome", r#"{"booked":true}"#, operator(200)),
        // Clock control is off in this world: the route does not exist for anyone.
        row(Admin, Put, "/admin/v1/clock", r#"{"now":"2026-06-01T00:00:00Z"}"#, open_refused(404, "not_found")),
        // Scanning is off in this world, so nothing waits for review.
        row(Admin, Delete, "/admin/v1/attachments/unscanned/{att}", NO, operator_refused(404, "attachment_not_found")),
        // Socket upgrades, each way a token can come.
        row(Public, Ws, "/ws", NO, socket()),
        row(Public, WsQuery, "/ws", NO, socket()),
        row(Public, WsAuthFrame, "/ws", NO, auth_frame()),
        row(Public, Ws, "/ws/chat/{conv}/", NO, compat_socket()),
        row(Public, WsQuery, "/ws/chat/{conv}/", NO, compat_socket()),
        row(Public, WsAuthFrame, "/ws/chat/{conv}/", NO, compat_auth_frame()),
        row(Public, WsRefresh, "/ws", NO, refresh_frame()),
        row(Public, WsRefresh, "/ws/chat/{conv}/", NO, refresh_frame()),
    ]
}

/// Every client frame type on an open `/ws`, as a stranger and as a participant.
#[rustfmt::skip]
fn frame_types() -> Vec<FrameRow> {
    const GONE: Reply = Reply::Error("conversation_not_found");
    vec![
        frame(r#"{"type":"chat_message","conversation_id":"{conv}","text":"over the socket","ref":"f-chat"}"#, GONE, Reply::Sender("ack")),
        // Typing has no answer: the other participant sees it; the stranger's is not relayed.
        frame(r#"{"type":"typing_status","conversation_id":"{conv}","is_typing":true}"#, GONE, Reply::Peer("typing_status")),
        // Stopping is relayed too, and cancels the expiry that would otherwise arrive later.
        frame(r#"{"type":"typing_status","conversation_id":"{conv}","is_typing":false}"#, GONE, Reply::Peer("typing_status")),
        frame(r#"{"type":"mark_read","conversation_id":"{conv}","ref":"f-read"}"#, GONE, Reply::Sender("unread")).fresh(),
        frame(r#"{"type":"delivered","conversation_id":"{conv}","up_to":"{fresh}","ref":"f-dlv"}"#, GONE, Reply::Peer("receipt")).fresh(),
        frame(r#"{"type":"sync","conversation_id":"{conv}","after_seq":0,"ref":"f-sync"}"#, GONE, Reply::Sender("synced")),
        // A ping addresses no conversation: a stranger is answered like anyone.
        frame(r#"{"type":"ping","ref":"f-ping"}"#, Reply::Sender("pong"), Reply::Sender("pong")),
    ]
}

#[tokio::test]
async fn authz_every_route_and_frame_answers_each_caller_as_the_contract_says() {
    let w = run::World::new().await;

    // The runner itself must be able to fail: a cell that expects the wrong answer is reported in
    // the form every failure takes.
    let wrong = row(
        Listener::Public,
        Verb::Get,
        "/api/v1/conversations/{conv}",
        "",
        member(200).with(Who::Stranger, Expect::Err(403, "forbidden_role")),
    );
    let reported = run::check(&w, &[wrong]).await;
    assert_eq!(
        reported.failures,
        vec!["GET /api/v1/conversations/{conv} as stranger: expected 403 forbidden_role, got 404 conversation_not_found"],
        "the runner must report a wrong cell"
    );

    let report = run::check(&w, &routes()).await;
    let mut failures = report.failures;
    failures.extend(frames::check(&w, &frame_types()).await);
    eprintln!(
        "authz matrix: {} route cells and {} frame types run; not applicable:\n  {}",
        report.ran,
        frame_types().len(),
        report.not_applicable.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "{} wrong cells:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn authz_every_warp_route_in_src_has_a_row() {
    let rows: Vec<source_routes::Covered> = routes()
        .iter()
        .map(|r| source_routes::Covered {
            method: r.verb.http(),
            segments: source_routes::template_segments(r.path),
        })
        .collect();
    let declared = source_routes::declared();
    let with_method = declared.iter().filter(|d| d.method.is_some()).count();
    assert!(
        declared.len() >= 20 && with_method >= 15,
        "the scan of src/ found only {} routes ({with_method} with a method): {declared:?}",
        declared.len()
    );
    // The check must be able to fail: a route with no row, or an old path with a new method.
    for (method, path) in [
        (
            Some("POST"),
            r#""api" / "v1" / "messages" / String / "pin""#,
        ),
        (Some("DELETE"), r#""conversations" / String"#),
    ] {
        let d = source_routes::Declared {
            at: "made up".into(),
            segments: source_routes::segments(path),
            method,
        };
        assert!(!source_routes::covered(&d, &rows), "{d:?} has no row");
    }
    let missing: Vec<String> = declared
        .iter()
        .filter(|d| !source_routes::covered(d, &rows))
        .map(|d| {
            let method = d.method.unwrap_or("any method");
            format!("{}: {method} /{}", d.at, d.segments.join("/"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "routes in src/ with no row in tests/integration/authz.rs:\n  {}",
        missing.join("\n  ")
    );
}
