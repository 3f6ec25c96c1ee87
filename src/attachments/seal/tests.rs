//! Round trips, rotation, tampering and configuration errors of `seal`.

use super::*;
use proptest::prelude::*;

const PATH: &str = "attachments/123";

fn key_text(byte: u8) -> String {
    Base64::encode_string(&[byte; 32])
}

fn ring(current: u8, previous: &[u8]) -> Keyring {
    let previous: Vec<String> = previous.iter().map(|b| key_text(*b)).collect();
    Keyring::from_config(&key_text(current), &previous).unwrap()
}

fn header_id(sealed: &[u8]) -> String {
    hex(&sealed[ID_AT..ID_AT + ID_LEN])
}

/// 1 KiB that cannot occur by accident in ciphertext.
fn distinctive() -> Bytes {
    let text: String = (0..100)
        .map(|i| format!("secret-line-{i:04};"))
        .collect::<String>()
        .chars()
        .take(1024)
        .collect();
    Bytes::from(text)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn round_trip() {
    let k = ring(1, &[]);
    for len in [0usize, 1, 15, 16, 17, 1024, 100_000] {
        let plain = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>());
        let sealed = k.seal(PATH, plain.clone()).unwrap();
        assert_eq!(sealed.len(), plain.len() + MIN_SEALED_LEN);
        assert!(sealed.starts_with(MAGIC));
        assert_eq!(k.open(PATH, sealed).unwrap(), plain);
    }
}

#[test]
fn sealed_bytes_do_not_contain_the_plaintext() {
    let k = ring(1, &[]);
    let plain = distinctive();
    assert_eq!(plain.len(), 1024);
    let sealed = k.seal(PATH, plain.clone()).unwrap();
    assert_ne!(sealed, plain);
    assert!(!contains(&sealed, &plain));
    // Not even a 16-byte piece of it.
    assert!(!contains(&sealed, &plain[100..116]));
}

#[test]
fn two_seals_differ() {
    let k = ring(1, &[]);
    let plain = distinctive();
    let a = k.seal(PATH, plain.clone()).unwrap();
    let b = k.seal(PATH, plain.clone()).unwrap();
    assert_ne!(a, b);
    // Fresh nonces, fresh data key (so a different wrapped key), different ciphertext.
    assert_ne!(a[WRAP_NONCE_AT..WRAPPED_AT], b[WRAP_NONCE_AT..WRAPPED_AT]);
    assert_ne!(a[WRAPPED_AT..DATA_NONCE_AT], b[WRAPPED_AT..DATA_NONCE_AT]);
    assert_ne!(a[DATA_NONCE_AT..HEADER_LEN], b[DATA_NONCE_AT..HEADER_LEN]);
    assert_ne!(a[HEADER_LEN..], b[HEADER_LEN..]);
    assert_eq!(k.open(PATH, a).unwrap(), plain);
    assert_eq!(k.open(PATH, b).unwrap(), plain);
}

#[test]
fn rotation() {
    let a = ring(0xA, &[]);
    let plain = distinctive();
    let old = a.seal(PATH, plain.clone()).unwrap();
    assert_eq!(Some(header_id(&old)), a.current_key_id());

    let b_then_a = ring(0xB, &[0xA]);
    assert_eq!(b_then_a.open(PATH, old.clone()).unwrap(), plain);
    let new = b_then_a.seal(PATH, plain.clone()).unwrap();
    assert_eq!(Some(header_id(&new)), b_then_a.current_key_id());
    assert_eq!(b_then_a.current_key_id(), ring(0xB, &[]).current_key_id());
    assert_ne!(b_then_a.current_key_id(), a.current_key_id());
    assert_eq!(b_then_a.open(PATH, new.clone()).unwrap(), plain);

    // Only B: the old object names a key that is gone.
    let b = ring(0xB, &[]);
    match b.open(PATH, old.clone()) {
        Err(SealError::UnknownKey(id)) => assert_eq!(Some(id), a.current_key_id()),
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    assert_eq!(b.open(PATH, new).unwrap(), plain);

    // Encryption switched off, old key kept for reading.
    let read_only = Keyring::from_config("", &[key_text(0xA)]).unwrap();
    assert!(!read_only.enabled());
    assert_eq!(read_only.open(PATH, old).unwrap(), plain);
}

#[test]
fn every_flipped_bit_is_caught() {
    let k = ring(1, &[]);
    let plain = Bytes::from_static(b"a small file, so every bit of it can be flipped");
    let sealed = k.seal(PATH, plain.clone()).unwrap();
    for i in 0..sealed.len() {
        for bit in 0..8 {
            let mut bad = sealed.to_vec();
            bad[i] ^= 1 << bit;
            let result = k.open(PATH, Bytes::from(bad.clone()));
            match i {
                // No MAGIC any more: legacy passthrough, returned as stored (not decrypted);
                // the caller's sha256 check against the metadata rejects it.
                0..4 => assert_eq!(result.unwrap(), bad),
                // The key id names a key that is not configured.
                4..12 => assert!(matches!(result, Err(SealError::UnknownKey(_)))),
                _ => assert!(
                    matches!(result, Err(SealError::Corrupt(_))),
                    "byte {i} bit {bit}: {result:?}"
                ),
            }
        }
    }
}

#[test]
fn wrong_object_path_is_corrupt() {
    let k = ring(1, &[]);
    let sealed = k.seal(PATH, distinctive()).unwrap();
    for other in ["attachments/124", "attachments/12", "attachments/1234", ""] {
        assert!(matches!(
            k.open(other, sealed.clone()),
            Err(SealError::Corrupt(_))
        ));
    }
}

#[test]
fn truncated_is_corrupt() {
    let k = ring(1, &[]);
    let sealed = k.seal(PATH, Bytes::from_static(b"some bytes")).unwrap();
    for len in MAGIC.len()..sealed.len() {
        let result = k.open(PATH, sealed.slice(..len));
        assert!(
            matches!(result, Err(SealError::Corrupt(_))),
            "{len}: {result:?}"
        );
    }
    // Extended is no better.
    let mut longer = sealed.to_vec();
    longer.push(0);
    assert!(matches!(
        k.open(PATH, Bytes::from(longer)),
        Err(SealError::Corrupt(_))
    ));
}

#[test]
fn legacy_plaintext_passes_through() {
    let k = ring(1, &[]);
    for legacy in [
        &b"\x89PNG\r\n\x1a\nrest of a png"[..],
        b"\xff\xd8\xff\xe0 a jpeg",
        b"%PDF-1.7",
        b"",
        b"SBE",
    ] {
        let legacy = Bytes::copy_from_slice(legacy);
        assert_eq!(k.open(PATH, legacy.clone()).unwrap(), legacy);
    }
}

#[test]
fn disabled_keyring_is_identity() {
    let k = Keyring::from_config("", &[]).unwrap();
    assert!(!k.enabled());
    assert_eq!(k.current_key_id(), None);
    let plain = distinctive();
    let sealed = k.seal(PATH, plain.clone()).unwrap();
    assert_eq!(sealed, plain);
    assert_eq!(k.open(PATH, sealed).unwrap(), plain);
    // A sealed object needs its key even so.
    let other = ring(1, &[]).seal(PATH, plain).unwrap();
    assert!(matches!(k.open(PATH, other), Err(SealError::UnknownKey(_))));
}

#[test]
fn bad_config_is_bad_key_without_key_text() {
    let good = key_text(7);
    let short = Base64::encode_string(&[9u8; 31]);
    let long = Base64::encode_string(&[9u8; 33]);
    let not_base64 = "this is not base64 at all!!".to_string();
    let cases: Vec<(String, Vec<String>, &str, &str)> = vec![
        (not_base64.clone(), vec![], CURRENT_SETTING, "base64"),
        (short.clone(), vec![], CURRENT_SETTING, "31 bytes"),
        (long.clone(), vec![], CURRENT_SETTING, "33 bytes"),
        (
            good.clone(),
            vec![not_base64.clone()],
            "attachments.previous_encryption_keys[0]",
            "base64",
        ),
        (
            good.clone(),
            vec![key_text(8), short.clone()],
            "attachments.previous_encryption_keys[1]",
            "31 bytes",
        ),
        (
            good.clone(),
            vec![good.clone()],
            "attachments.previous_encryption_keys[0]",
            "same key as attachments.encryption_key",
        ),
        (
            // The same key, spelled with surrounding whitespace.
            String::new(),
            vec![key_text(8), format!(" {}\n", key_text(8))],
            "attachments.previous_encryption_keys[1]",
            "same key as attachments.previous_encryption_keys[0]",
        ),
        (
            good.clone(),
            vec![String::new()],
            "attachments.previous_encryption_keys[0]",
            "empty",
        ),
    ];
    for (current, previous, setting, why) in cases {
        let err = Keyring::from_config(&current, &previous).unwrap_err();
        let SealError::BadKey(msg) = &err else {
            panic!("expected BadKey, got {err:?}");
        };
        let shown = err.to_string();
        assert!(msg.contains(setting), "{msg}");
        assert!(msg.contains(why), "{msg}");
        for text in std::iter::once(&current).chain(&previous) {
            let text = text.trim();
            if !text.is_empty() {
                assert!(!shown.contains(text), "{shown}");
                assert!(!format!("{err:?}").contains(text));
            }
        }
    }
}

#[test]
fn debug_shows_key_ids_only() {
    let k = ring(0xA, &[0xB]);
    let shown = format!("{k:?}");
    assert!(shown.contains(&k.current_key_id().unwrap()), "{shown}");
    assert!(shown.contains(&ring(0xB, &[]).current_key_id().unwrap()));
    assert!(!shown.contains(&key_text(0xA)));
    assert!(!shown.contains(&key_text(0xB)));
    assert!(!shown.contains("10, 10, 10"));
}

#[test]
fn key_id_is_the_documented_fingerprint() {
    let key = [0x42u8; 32];
    let mut input = b"switchboard attachment key id\0".to_vec();
    input.extend_from_slice(&key);
    assert_eq!(key_id(&key)[..], Sha256::digest(&input)[..8]);
    assert_ne!(key_id(&key), key_id(&[0x43u8; 32]));
    let k = Keyring::from_config(&Base64::encode_string(&key), &[]).unwrap();
    assert_eq!(k.current_key_id(), Some(hex(&key_id(&key))));
    assert_eq!(k.current_key_id().unwrap().len(), 16);
}

proptest! {
    #[test]
    fn open_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
        let k = ring(1, &[2]);
        let mut stored = MAGIC.to_vec();
        stored.extend_from_slice(&tail);
        let result = k.open(PATH, Bytes::from(stored));
        prop_assert!(matches!(
            result,
            Err(SealError::Corrupt(_) | SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn open_never_panics_with_a_known_key_id(
        tail in proptest::collection::vec(any::<u8>(), 0..400),
        use_previous in any::<bool>(),
    ) {
        let k = ring(1, &[2]);
        let mut stored = MAGIC.to_vec();
        stored.extend_from_slice(&key_id(&[if use_previous { 2 } else { 1 }; 32]));
        stored.extend_from_slice(&tail);
        let result = k.open(PATH, Bytes::from(stored));
        prop_assert!(matches!(result, Err(SealError::Corrupt(_))));
    }

    #[test]
    fn round_trips(
        plain in proptest::collection::vec(any::<u8>(), 0..2000),
        path in ".{0,40}",
    ) {
        let k = ring(3, &[]);
        let plain = Bytes::from(plain);
        let sealed = k.seal(&path, plain.clone()).unwrap();
        prop_assert_eq!(k.open(&path, sealed).unwrap(), plain);
    }
}
