//! Uploads scanned by a real clamd (started by the test with a one-line EICAR database): an
//! infected file is refused and nothing of it is stored, a clean one passes, and a scanner that
//! is down refuses uploads (`fail_closed`) or lets them through flagged for review (`fail_open`).

use super::attachments::{download, fixture, upload};
use super::clamd::{pdf_with_eicar, Clamd};
use super::harness::Server;

/// Files in the attachments directory: what the object store holds.
fn stored_objects(server: &Server) -> usize {
    std::fs::read_dir(server.dir.join("attachments").join("attachments"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn eicar_is_refused_a_png_passes_and_a_stopped_clamd_fails_closed() {
    let Some(mut clamd) = Clamd::required() else {
        return;
    };
    let server = Server::start_with(&[("SWITCHBOARD_ATTACHMENTS__CLAMD_ADDR", &clamd.addr)]).await;
    let t = server.token("scan-owner", "customer").await;

    let (status, body) = upload(&server, &t, "invoice.pdf", &pdf_with_eicar()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "attachment_rejected");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("Eicar"),
        "{body}"
    );
    assert_eq!(
        stored_objects(&server),
        0,
        "the refused bytes were never stored"
    );

    let png = fixture("exif.png");
    let (status, meta) = upload(&server, &t, "photo.png", &png).await;
    assert_eq!(status, 201, "{meta}");
    assert_eq!(meta["scan"], "clean");
    let (status, _, _) = download(&server, &t, meta["id"].as_str().unwrap()).await;
    assert_eq!(status, 200);

    clamd.stop();
    let (status, body) = upload(&server, &t, "photo.png", &png).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "scanner_unavailable");
    assert_eq!(
        stored_objects(&server),
        1,
        "only the clean upload is stored"
    );
}

#[tokio::test]
async fn the_local_socket_works_and_fail_open_flags_uploads_for_review() {
    let Some(mut clamd) = Clamd::required() else {
        return;
    };
    let socket = format!("unix:{}", clamd.socket.display());
    let server = Server::start_with(&[
        ("SWITCHBOARD_ATTACHMENTS__CLAMD_ADDR", &socket),
        ("SWITCHBOARD_ATTACHMENTS__CLAMD_UNAVAILABLE", "fail_open"),
    ])
    .await;
    let t = server.token("open-owner", "customer").await;
    let (status, body) = upload(&server, &t, "x.pdf", &pdf_with_eicar()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("attachment_rejected")),
        "over the Unix socket: {body}"
    );
    let (status, listed) = server
        .admin_call("GET", "/admin/v1/attachments/unscanned", None)
        .await;
    assert_eq!(
        (status, listed["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );

    clamd.stop();
    let gif = fixture("t.gif");
    let (status, meta) = upload(&server, &t, "t.gif", &gif).await;
    assert_eq!(status, 201, "fail_open accepts: {meta}");
    assert_eq!(meta["scan"], "unscanned");
    let id = meta["id"].as_str().unwrap();
    let (_, listed) = server
        .admin_call("GET", "/admin/v1/attachments/unscanned", None)
        .await;
    assert_eq!(listed["items"][0]["id"], id, "{listed}");
    assert_eq!(listed["items"][0]["owner_id"], "open-owner");

    let path = format!("/admin/v1/attachments/unscanned/{id}");
    assert_eq!(server.admin_call("DELETE", &path, None).await.0, 204);
    assert_eq!(server.admin_call("DELETE", &path, None).await.0, 404);
    let (_, listed) = server
        .admin_call("GET", "/admin/v1/attachments/unscanned", None)
        .await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn a_file_clamd_will_not_scan_is_refused_even_under_fail_open() {
    let Some(clamd) = Clamd::required_with("StreamMaxLength 1K\n") else {
        return;
    };
    let server = Server::start_with(&[
        ("SWITCHBOARD_ATTACHMENTS__CLAMD_ADDR", &clamd.addr),
        ("SWITCHBOARD_ATTACHMENTS__CLAMD_UNAVAILABLE", "fail_open"),
    ])
    .await;
    let t = server.token("big-owner", "customer").await;
    // A PDF of 4 KiB: over clamd's 1 KiB limit, clean otherwise.
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.resize(4096, b' ');
    let (status, body) = upload(&server, &t, "big.pdf", &pdf).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "attachment_rejected");
    assert_eq!(stored_objects(&server), 0);
}
