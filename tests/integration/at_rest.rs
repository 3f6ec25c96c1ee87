//! Attachments encrypted at rest, over the real server: what lands on disk is ciphertext that
//! opens to the upload, rotation keeps old files readable, and a missing key, an altered file or
//! a plaintext file planted in place of an encrypted one is an error, never garbage.

use base64ct::{Base64, Encoding};
use sha2::Digest;

use super::attachments::{contains, download, fixture, upload};
use super::harness::Server;

fn key(byte: u8) -> String {
    Base64::encode_string(&[byte; 32])
}

/// The bytes the object store holds for attachment `id` (the local directory under the store).
fn stored(server: &Server, id: &str) -> Vec<u8> {
    std::fs::read(server.dir.join("attachments").join("attachments").join(id))
        .expect("the attachment's object is on disk")
}

fn key_id_of(object: &[u8]) -> Vec<u8> {
    object[4..12].to_vec()
}

#[tokio::test]
async fn stored_bytes_are_ciphertext_and_a_rotated_key_still_reads_old_files() {
    let (a, b) = (key(1), key(2));
    let mut server = Server::start_with(&[("SWITCHBOARD_ATTACHMENTS__ENCRYPTION_KEY", &a)]).await;
    let t = server.token("enc-owner", "customer").await;
    let gif = fixture("t.gif");
    let (status, meta) = upload(&server, &t, "t.gif", &gif).await;
    assert_eq!(status, 201, "{meta}");
    let old = meta["id"].as_str().unwrap().to_string();

    let on_disk = stored(&server, &old);
    assert!(on_disk.starts_with(b"SBE1"), "an encrypted object");
    assert_ne!(on_disk, gif);
    assert!(
        !contains(&on_disk, &gif[..16]),
        "no run of the plaintext is on disk"
    );
    assert!(!contains(&on_disk, b"GIF8"), "not even its magic number");
    let (status, _, served) = download(&server, &t, &old).await;
    assert_eq!(status, 200);
    assert_eq!(served, gif, "decrypts to the upload");
    // The sha256 in the metadata is of the plaintext.
    let sha = sha2::Sha256::digest(&gif);
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(meta["sha256"], hex);

    // Rotate: B is current, A is kept for reading.
    let prev = a.clone();
    server.restart_with(&[
        ("SWITCHBOARD_ATTACHMENTS__ENCRYPTION_KEY", &b),
        ("SWITCHBOARD_ATTACHMENTS__PREVIOUS_ENCRYPTION_KEYS", &prev),
    ]);
    let t = server.token("enc-owner", "customer").await;
    let (status, _, served) = download(&server, &t, &old).await;
    assert_eq!(
        (status, served == gif),
        (200, true),
        "old file readable after rotation"
    );
    let (status, meta) = upload(&server, &t, "t.gif", &gif).await;
    assert_eq!(status, 201);
    let new = meta["id"].as_str().unwrap().to_string();
    assert_ne!(
        key_id_of(&stored(&server, &new)),
        key_id_of(&stored(&server, &old)),
        "new uploads use the new key"
    );

    // A removed while files still use it: those fail loudly; newer ones are unaffected.
    server.restart_with(&[("SWITCHBOARD_ATTACHMENTS__ENCRYPTION_KEY", &b)]);
    let t = server.token("enc-owner", "customer").await;
    let (status, _, body) = download(&server, &t, &old).await;
    assert_eq!(status, 500);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "attachment_unreadable");
    let (status, _, served) = download(&server, &t, &new).await;
    assert_eq!((status, served == gif), (200, true));

    // One flipped bit in the stored file: refused, not served.
    let path = server
        .dir
        .join("attachments")
        .join("attachments")
        .join(&new);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let (status, _, body) = download(&server, &t, &new).await;
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (500, Some("attachment_unreadable"))
    );
}

#[tokio::test]
async fn files_in_the_clear_stay_readable_and_altered_ones_do_not() {
    let mut server = Server::start().await;
    let t = server.token("legacy-owner", "customer").await;
    let gif = fixture("t.gif");
    let png = fixture("exif.png");
    let (_, first) = upload(&server, &t, "t.gif", &gif).await;
    let (_, second) = upload(&server, &t, "p.png", &png).await;
    let (first, second) = (
        first["id"].as_str().unwrap().to_string(),
        second["id"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        stored(&server, &first),
        gif,
        "in the clear while encryption is off"
    );

    server.restart_with(&[("SWITCHBOARD_ATTACHMENTS__ENCRYPTION_KEY", &key(3))]);
    let t = server.token("legacy-owner", "customer").await;
    let (status, _, served) = download(&server, &t, &first).await;
    assert_eq!(
        (status, served == gif),
        (200, true),
        "a legacy file is served"
    );

    // Someone with the bucket but not the key alters a file stored in the clear.
    let dir = server.dir.join("attachments").join("attachments");
    // Same length, one byte changed: only the sha256 check can tell.
    let mut altered = std::fs::read(dir.join(&second)).unwrap();
    let last = altered.len() - 1;
    altered[last] ^= 0x01;
    std::fs::write(dir.join(&second), &altered).unwrap();
    let (status, _, _) = download(&server, &t, &second).await;
    assert_eq!(
        status, 500,
        "a plaintext file that is not the recorded one is refused"
    );

    // Encryption off again: a file in the clear is still checked against its record.
    server.restart_with(&[]);
    let t = server.token("legacy-owner", "customer").await;
    let (status, _, served) = download(&server, &t, &first).await;
    assert_eq!((status, served == gif), (200, true));
    let (status, _, _) = download(&server, &t, &second).await;
    assert_eq!(status, 500, "checked with encryption off too");
}

#[tokio::test]
async fn a_bad_key_is_a_configuration_error_at_startup() {
    for bad in ["not base64!", &Base64::encode_string(&[7u8; 31])] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("serve")
            .env("SWITCHBOARD_AUTH__JWT_SECRET", crate::harness::SECRET)
            .env("SWITCHBOARD_HTTP__ADDR", "127.0.0.1:0")
            .env("SWITCHBOARD_ADMIN__ADDR", "127.0.0.1:0")
            .env("SWITCHBOARD_STORE__PATH", dir.path().join("s"))
            .env("SWITCHBOARD_ATTACHMENTS__ENCRYPTION_KEY", bad)
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{err}");
        assert!(err.contains("attachments.encryption_key"), "{err}");
        assert!(!err.contains(bad), "the key is never echoed: {err}");
    }
}
