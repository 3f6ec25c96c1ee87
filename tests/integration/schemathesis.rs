//! Property-based fuzzing from the served OpenAPI documents (issue 13): schemathesis reads
//! `/api/v1/openapi.json` and `/admin/v1/openapi.json` from the running server, generates
//! requests from every operation's parameters and bodies (valid ones, and invalid ones that break
//! the schema), sends them, and fails on any 5xx answer. A finding here is a request that the
//! server could not answer with a 4xx and the contract's error body.
//!
//! Needs `schemathesis` (PyPI) on the PATH; `.ci/run` installs it. Without it the test prints a
//! loud notice and passes, except in CI (`CI=true`), where it fails.

use std::process::Stdio;
use std::time::Duration;

use super::harness::{Server, ADMIN_TOKEN};

/// Both runs together stay within a few minutes on two cores.
const RUN_LIMIT: Duration = Duration::from_secs(420);

/// The schemathesis command (`SCHEMATHESIS` overrides the name), or `None` when it is not
/// installed and this is not CI.
fn schemathesis_or_skip() -> Option<String> {
    let cmd = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_string());
    let found = std::process::Command::new(&cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(cmd);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "CI=true and `{cmd}` is not installed (pip install schemathesis)"
    );
    eprintln!(
        "\n!!! SKIPPED the OpenAPI fuzz test: `{cmd}` is not installed.\n\
         !!! .ci/run installs it; CI fails instead of skipping.\n"
    );
    None
}

/// Runs schemathesis against one served document with one bearer token and answers its output
/// when it finds nothing; panics with the output when it finds a 5xx (or cannot run).
///
/// A run that found nothing but crashed inside the tool itself (a Python traceback reported as
/// a "Runtime Error", with no failed check and no network error) is run once more: CPython
/// 3.11.7's `ast` sometimes raises "AST constructor recursion depth mismatch" while hypothesis
/// describes a lambda, which says nothing about the server. A finding is never retried.
async fn fuzz(cmd: &str, schema_url: &str, token: &str, report: &std::path::Path) -> String {
    let mut attempt = 1;
    loop {
        let (ok, stdout, stderr) = fuzz_once(cmd, schema_url, token, report).await;
        if ok {
            return stdout;
        }
        if attempt == 1 && only_the_tool_crashed(&stdout) {
            eprintln!("schemathesis crashed inside itself against {schema_url}; running it again");
            attempt += 1;
            continue;
        }
        panic!("schemathesis found failures against {schema_url}:\n{stdout}\n{stderr}");
    }
}

/// Whether a failed run reported nothing but errors of the tool's own code.
fn only_the_tool_crashed(stdout: &str) -> bool {
    let section = |name: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with("===") && l.trim_matches('=').trim() == name)
    };
    section("ERRORS")
        && !section("FAILURES")
        && stdout.contains("Runtime Error")
        && !stdout.contains("Network Error")
}

async fn fuzz_once(
    cmd: &str,
    schema_url: &str,
    token: &str,
    report: &std::path::Path,
) -> (bool, String, String) {
    let run = tokio::process::Command::new(cmd)
        .arg("run")
        .arg(schema_url)
        .args(["--checks", "not_a_server_error"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // The sockets are upgrades, described by the AsyncAPI document, not fuzzable as HTTP.
        .args(["--exclude-path-regex", "^/ws"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "30"])
        .args(["--seed", "20261207"])
        .args(["--workers", "2"])
        .args(["--request-timeout", "15"])
        .args(["--max-time", "120"])
        .args(["--report", "junit"])
        .arg("--report-junit-path")
        .arg(report)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(RUN_LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {RUN_LIMIT:?}"))
        .expect("schemathesis starts");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_tool_crash_is_told_apart_from_a_finding() {
    let errors = "=== ERRORS ===\n___ POST /x ___\nRuntime Error\n\nAST constructor recursion depth mismatch\n";
    assert!(only_the_tool_crashed(errors));
    let finding =
        "=== FAILURES ===\n___ GET /y ___\n1. Server error\n=== ERRORS ===\nRuntime Error\n";
    assert!(!only_the_tool_crashed(finding));
    let network =
        "=== ERRORS ===\n___ GET /z ___\nNetwork Error\nConnection refused\nRuntime Error\n";
    assert!(!only_the_tool_crashed(network));
}

#[tokio::test]
async fn fuzzing_both_openapi_documents_finds_no_server_error() {
    let Some(cmd) = schemathesis_or_skip() else {
        return;
    };
    let server = Server::start().await;
    // A world with something in it, so generated ids sometimes meet real ones' neighbours and
    // list routes answer non-empty pages.
    let (_customer, provider, _conversation) = server.conversation("fuzz").await;
    let reports = tempfile::tempdir().expect("temp dir");

    let public = fuzz(
        &cmd,
        &server.url("/api/v1/openapi.json"),
        &provider,
        &reports.path().join("public.xml"),
    )
    .await;
    let admin = fuzz(
        &cmd,
        &format!("http://{}/admin/v1/openapi.json", server.admin),
        ADMIN_TOKEN,
        &reports.path().join("admin.xml"),
    )
    .await;

    // The runs must have exercised the documents, not passed on an empty schema.
    for (name, out, report) in [
        ("public", &public, "public.xml"),
        ("admin", &admin, "admin.xml"),
    ] {
        let xml = std::fs::read_to_string(reports.path().join(report)).unwrap_or_default();
        let cases = xml.matches("<testcase").count();
        println!("schemathesis {name}: {cases} operations fuzzed");
        assert!(
            cases >= 10,
            "the {name} run fuzzed only {cases} operations:\n{out}"
        );
    }
    // Still alive and answering after everything it was sent.
    let (status, _) = server
        .call("GET", &server.url("/healthz"), None, None)
        .await;
    assert_eq!(status, 200);
}
