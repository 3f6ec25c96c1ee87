//! A real browser against the real server: Debian's Chromium, driven by `tests/browser/run.mjs`
//! through playwright-core. A page served from one origin calls the API on another and gets its
//! data; a React `useWebSocket` hook, unchanged, in a page whose cookie holds the token, sends
//! and receives over `/ws/chat/{id}/`; the same page from an origin not allowed is refused.
//!
//! Needs `node`, Chromium (`/usr/bin/chromium`, or `CHROMIUM`) and `npm ci` in `tests/browser`;
//! `.ci/run` installs all three. Without them the test prints a loud notice and passes, except in
//! CI (`CI=true`), where a missing browser fails it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::harness::Server;

/// The whole browser run, Chromium's start included, must end within this.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// What is missing to run the browser test, if anything.
fn missing(dir: &Path, chromium: &Path) -> Option<String> {
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !node {
        return Some("`node` is not on PATH (apt-get install nodejs npm)".into());
    }
    if !chromium.exists() {
        return Some(format!(
            "no Chromium at {} (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    for module in ["playwright-core", "react", "react-dom"] {
        if !dir.join("node_modules").join(module).exists() {
            return Some(format!(
                "{module} is not installed (run `npm ci` in {})",
                dir.display()
            ));
        }
    }
    None
}

/// The Chromium to drive, or `None` after a loud notice when something is missing (outside CI;
/// with `CI=true` a missing browser fails the test instead).
pub fn chromium_or_skip(dir: &Path) -> Option<PathBuf> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let Some(why) = missing(dir, &chromium) else {
        return Some(chromium);
    };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!ci, "CI=true and the browser test cannot run: {why}");
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED a browser test: {why}\n\
         !!! .ci/run installs what it needs; CI fails instead of skipping.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    None
}

/// Serves `root` over HTTP on a fresh loopback port: answers its origin.
pub async fn static_site(root: PathBuf) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("static site binds");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(warp::serve(warp::fs::dir(root)).incoming(listener).run());
    format!("http://{addr}")
}

#[tokio::test]
async fn a_page_on_another_origin_uses_the_api_and_the_cookie_socket_hook() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let Some(chromium) = chromium_or_skip(&dir) else {
        return;
    };

    // Two origins serving the same page; only the first is allowed. The engine is a third.
    let site = static_site(dir.clone()).await;
    let other_site = static_site(dir.clone()).await;
    let server = Server::start_with(&[
        ("SWITCHBOARD_HTTP__ALLOWED_ORIGINS", site.as_str()),
        ("SWITCHBOARD_AUTH__COOKIE_NAME", "access_token"),
        ("SWITCHBOARD_REALTIME__AUTH_TIMEOUT_SECS", "1"),
    ])
    .await;
    let (customer, provider, id) = server.conversation("browser").await;
    let api = format!("http://{}", server.http);

    let run = tokio::process::Command::new("node")
        .arg("run.mjs")
        .current_dir(&dir)
        .env("SB_API", &api)
        .env("SB_SITE", &site)
        .env("SB_OTHER_SITE", &other_site)
        .env("SB_CONVERSATION", &id)
        .env("SB_CUSTOMER_TOKEN", &customer)
        .env("SB_PROVIDER_TOKEN", &provider)
        .env("SB_PROVIDER_ID", "prov-browser")
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(RUN_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("the browser run did not finish within {RUN_LIMIT:?}"))
        .expect("node starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("all browser checks passed"),
        "the browser run failed ({}):\n{stdout}\n{stderr}",
        out.status
    );

    // What the browser did is in the store: the hook's message from the customer, and the
    // form-like POST only from the allowed origin (the other origin's is CSRF and was refused).
    let (status, body) = server
        .api(
            "GET",
            &format!("/api/v1/conversations/{id}/messages?limit=100"),
            &provider,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let sent_by = |text: &str| {
        items
            .iter()
            .find(|m| m["text"] == text)
            .map(|m| m["sender_id"].as_str().unwrap_or("").to_string())
    };
    assert_eq!(
        sent_by("hello from the hook").as_deref(),
        Some("cust-browser"),
        "the hook's message is stored as the cookie's user: {body}"
    );
    assert_eq!(
        sent_by(&format!("simple POST from {site}")).as_deref(),
        Some("cust-browser"),
        "a cookie POST from the allowed origin is stored: {body}"
    );
    assert_eq!(
        sent_by(&format!("simple POST from {other_site}")),
        None,
        "a cookie POST from an origin not allowed must store nothing: {body}"
    );
}
