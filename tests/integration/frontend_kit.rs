//! The frontend kit (`clients/`): its own suite — TypeScript build and typecheck, vitest unit
//! tests, integration tests against this build's server binary, the demo's dist check and the
//! two-context Chromium test — run through `clients/run-tests.sh`; and the demo as the engine
//! serves it at `/demo/`.
//!
//! Needs `node`, `npm` and Chromium; `.ci/run` installs them. Without them the suite prints a
//! loud notice and passes, except in CI (`CI=true`), where it fails.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::browser::chromium_or_skip;
use super::harness::Server;

/// npm ci, the builds and every suite, on two cores.
const RUN_LIMIT: Duration = Duration::from_secs(600);

#[tokio::test]
async fn the_client_kit_passes_its_suites_against_this_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients");
    // The browser test's own prerequisites (node, Chromium, playwright-core) are checked there;
    // here the kit installs its own packages.
    let Some(chromium) =
        chromium_or_skip(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser"))
    else {
        return;
    };
    let run = tokio::process::Command::new("bash")
        .arg("run-tests.sh")
        .current_dir(&root)
        .env("SB_SERVER_BIN", env!("CARGO_BIN_EXE_switchboard"))
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(RUN_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("clients/run-tests.sh did not finish within {RUN_LIMIT:?}"))
        .expect("bash starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("clients: "))
        .unwrap_or("no summary line");
    println!("{summary}");
    assert!(
        out.status.success() && summary.ends_with(" 0 failed"),
        "the client kit failed ({}): {summary}\n{stdout}\n{stderr}",
        out.status
    );
}

#[tokio::test]
async fn the_demo_is_served_from_the_binary_only_when_configured() {
    let server = Server::start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let bare = client.get(server.url("/demo")).send().await.unwrap();
    assert_eq!(bare.status(), 301);
    assert_eq!(bare.headers()["location"], "/demo/");
    let page = client.get(server.url("/demo/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    assert!(page.text().await.unwrap().contains("./app.js"));
    let js = client.get(server.url("/demo/app.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let missing = client
        .get(server.url("/demo/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let off = Server::start_with(&[("SWITCHBOARD_HTTP__DEMO", "false")]).await;
    let res = client.get(off.url("/demo/")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}
