//! Attachments over real HTTP: upload checks (type by content, size), metadata stripping, who may
//! fetch, and messages that carry them (HTTP and WebSocket).

use serde_json::{json, Value};

use super::harness::{Server, Ws};

const BOUNDARY: &str = "----switchboard-test-boundary";

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A multipart body with one `file` field.
fn form(filename: &str, declared_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {declared_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_raw(server: &Server, token: &str, body: Vec<u8>, chunked: bool) -> (u16, Value) {
    let req = reqwest::Client::new()
        .post(server.url("/api/v1/attachments"))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        );
    let req = if chunked {
        // No Content-Length: the server finds the size out as it reads.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        req.body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
    } else {
        req.body(body)
    };
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let text = res.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        }
        // The server may answer 413 and close before the client finished sending.
        Err(e) => panic!("upload not answered: {e:?}"),
    }
}

pub async fn upload(server: &Server, token: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    upload_raw(
        server,
        token,
        form(name, "application/octet-stream", bytes),
        false,
    )
    .await
}

pub async fn download(
    server: &Server,
    token: &str,
    id: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let res = reqwest::Client::new()
        .get(server.url(&format!("/api/v1/attachments/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.unwrap().to_vec())
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A GIF uploaded by `token` and sent in `conversation`: its id.
pub async fn sent_gif(server: &Server, token: &str, conversation: &str) -> String {
    let (status, meta) = upload(server, token, "t.gif", &fixture("t.gif")).await;
    assert_eq!(status, 201, "upload: {meta}");
    let id = meta["id"].as_str().expect("attachment id").to_string();
    let (status, m) = server
        .api(
            "POST",
            &format!("/api/v1/conversations/{conversation}/messages"),
            token,
            Some(json!({"attachment_ids": [id]})),
        )
        .await;
    assert_eq!(status, 201, "send attachment: {m}");
    id
}

#[tokio::test]
async fn types_are_decided_by_content_and_photos_lose_their_gps() {
    let server = Server::start().await;
    let (c, _p, _id) = server.conversation("att-types").await;

    // A Windows executable named and declared as a photo.
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
    exe.resize(4096, 0);
    let (status, body) =
        upload_raw(&server, &c, form("holiday.jpg", "image/jpeg", &exe), false).await;
    assert_eq!(status, 415, "{body}");
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    // An image signature over something that is not that image.
    let (status, body) = upload(&server, &c, "x.png", b"\x89PNG\r\n\x1a\nnot really").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );

    let jpeg = fixture("gps.jpg");
    assert!(contains(&jpeg, b"Exif\0\0") && contains(&jpeg, b"SecretCam"));
    let (status, meta) = upload(&server, &c, "../../me.jpeg", &jpeg).await;
    assert_eq!(status, 201, "{meta}");
    assert_eq!(meta["content_type"], "image/jpeg");
    assert_eq!(meta["filename"], "me.jpeg", "path parts are dropped");
    let id = meta["id"].as_str().unwrap();
    let (status, headers, stored) = download(&server, &c, id).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert!(
        !contains(&stored, b"Exif\0\0"),
        "the EXIF block (and its GPS tag) is gone"
    );
    assert!(!contains(&stored, b"SecretCam") && !contains(&stored, b"home address"));
    assert_eq!(meta["size"], stored.len());
    assert_eq!(meta["sha256"].as_str().unwrap().len(), 64);
    assert!(stored.starts_with(&[0xFF, 0xD8, 0xFF]) && stored.len() > 100);

    for (name, kind) in [
        ("exif.png", "image/png"),
        ("exif.webp", "image/webp"),
        ("t.gif", "image/gif"),
    ] {
        let (status, meta) = upload(&server, &c, name, &fixture(name)).await;
        assert_eq!(
            (status, meta["content_type"].as_str()),
            (201, Some(kind)),
            "{name}: {meta}"
        );
        let (_, _, stored) = download(&server, &c, meta["id"].as_str().unwrap()).await;
        assert!(!contains(&stored, b"SecretCam"), "{name}");
    }
    let (status, meta) = upload(&server, &c, "quote", b"%PDF-1.4\n1 0 obj\n%%EOF\n").await;
    assert_eq!(
        (status, meta["content_type"].as_str()),
        (201, Some("application/pdf"))
    );
    let (_, headers, _) = download(&server, &c, meta["id"].as_str().unwrap()).await;
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment;"));

    // Not multipart, or no `file` field.
    let (status, body) = server
        .call_with_headers(
            "POST",
            "/api/v1/attachments",
            &[
                ("authorization", &format!("Bearer {c}")),
                ("content-type", "application/json"),
            ],
            Some(json!({})),
        )
        .await
        .then_status();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let empty = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--{BOUNDARY}--\r\n");
    let (status, body) = upload_raw(&server, &c, empty.into_bytes(), false).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_request"))
    );
    // No token.
    let (status, _) = server
        .call("POST", &server.url("/api/v1/attachments"), None, None)
        .await;
    assert_eq!(status, 401);
}

trait ThenStatus {
    fn then_status(self) -> (u16, Value);
}

impl ThenStatus for (u16, reqwest::header::HeaderMap, Value) {
    fn then_status(self) -> (u16, Value) {
        (self.0, self.2)
    }
}

#[tokio::test]
async fn oversized_uploads_are_413_without_the_server_holding_them() {
    let server = Server::start().await;
    let c = server.token("att-big", "customer").await;
    let mut big = fixture("t.gif");
    big.resize(6 * 1024 * 1024, 0);

    let before = server.rss_kib();
    let uploads =
        (0..20).map(|_| upload_raw(&server, &c, form("big.gif", "image/gif", &big), false));
    for (status, body) in futures_util::future::join_all(uploads).await {
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (413, Some("attachment_too_large")),
            "{body}"
        );
    }
    let after = server.rss_kib();
    eprintln!("RSS before {before} KiB, after 20 concurrent 6 MiB uploads {after} KiB");
    // Refused on their Content-Length: nowhere near 20 × 6 MiB.
    assert!(
        after < before + 20 * 1024,
        "RSS grew from {before} to {after} KiB"
    );

    // Without a Content-Length the server reads up to the limit and stops there.
    let (status, body) = upload_raw(&server, &c, form("big.gif", "image/gif", &big), true).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("attachment_too_large")),
        "{body}"
    );
    // Exactly at the limit is fine.
    big.truncate(5 * 1024 * 1024);
    let (status, body) = upload_raw(&server, &c, form("edge.gif", "image/gif", &big), true).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["size"], 5 * 1024 * 1024);
}

#[tokio::test]
async fn only_the_uploader_and_the_participants_see_an_attachment() {
    let server = Server::start().await;
    let (c, p, conv) = server.conversation("att-who").await;
    let stranger = server.token("att-stranger", "customer").await;

    let (_, meta) = upload(&server, &c, "a.png", &fixture("exif.png")).await;
    let id = meta["id"].as_str().unwrap().to_string();
    assert_eq!(download(&server, &c, &id).await.0, 200, "the uploader");
    assert_eq!(download(&server, &p, &id).await.0, 404, "not sent yet");
    assert_eq!(download(&server, &stranger, &id).await.0, 404);

    // Someone else cannot send it.
    let (status, body) = server
        .api(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            &p,
            Some(json!({"attachment_ids": [id]})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_attachment")),
        "{body}"
    );
    let (status, body) = server
        .api(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            &c,
            Some(json!({"attachment_ids": ["123456789"]})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_attachment")),
        "{body}"
    );

    // Sent without text: an image message.
    let (status, msg) = server
        .api(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            &c,
            Some(json!({"attachment_ids": [id]})),
        )
        .await;
    assert_eq!(status, 201, "{msg}");
    assert_eq!(msg["message_type"], "image");
    assert_eq!(msg["text"], "");
    assert_eq!(msg["attachments"][0]["id"], id.as_str());
    assert_eq!(
        msg["attachments"][0]["url"],
        format!("/api/v1/attachments/{id}")
    );
    assert_eq!(
        download(&server, &p, &id).await.0,
        200,
        "the other participant, once sent"
    );
    assert_eq!(
        download(&server, &stranger, &id).await.0,
        404,
        "never a stranger"
    );
    assert_eq!(download(&server, &stranger, "not-an-id").await.0, 404);

    // Over the socket, an image and a PDF together are a `file` message.
    let (_, pdf) = upload(&server, &c, "q.pdf", b"%PDF-1.4\n%%EOF\n").await;
    let (_, png) = upload(&server, &c, "b.png", &fixture("exif.png")).await;
    let mut ws = Ws::connect(&server, &c).await;
    ws.send(json!({"type": "chat_message", "conversation_id": conv, "text": "quote attached", "attachment_ids": [pdf["id"], png["id"]], "ref": "r1"})).await;
    let ack = ws.next_of("ack").await;
    assert_eq!(ack["message"]["message_type"], "file", "{ack}");
    assert_eq!(ack["message"]["attachments"].as_array().unwrap().len(), 2);
    // A stranger's socket cannot attach to a conversation it is not in.
    let (_, own) = upload(&server, &stranger, "s.png", &fixture("exif.png")).await;
    let mut sws = Ws::connect(&server, &stranger).await;
    sws.send(json!({"type": "chat_message", "conversation_id": conv, "text": "x", "attachment_ids": [own["id"]], "ref": "r2"})).await;
    let err = sws.next_of("error").await;
    assert_eq!(err["code"], "conversation_not_found", "{err}");
    assert_eq!(
        download(&server, &p, own["id"].as_str().unwrap()).await.0,
        404
    );

    // History shows the attachments; a tombstone takes them away.
    let (_, page) = server
        .api(
            "GET",
            &format!("/api/v1/conversations/{conv}/messages"),
            &p,
            None,
        )
        .await;
    assert!(page["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["attachments"][0]["id"] == id.as_str()));
    let mid = msg["id"].as_str().unwrap();
    let (status, _) = server
        .api(
            "DELETE",
            &format!("/api/v1/messages/{mid}?for=everyone"),
            &c,
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        download(&server, &p, &id).await.0,
        404,
        "deleted for everyone: gone for the other side"
    );
    assert_eq!(
        download(&server, &c, &id).await.0,
        200,
        "still the uploader's own file"
    );
}
