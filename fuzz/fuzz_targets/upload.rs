//! The upload path, as `POST /api/v1/attachments` runs it: the multipart body streamed through
//! `read_file_field` (with a small limit, so the size paths run too), then the `file` field's
//! bytes sniffed and stripped of metadata by `check_and_clean`.
//!
//! Input: `[split seed][boundary]\n[body]`. The boundary line goes through `multer::parse_boundary`
//! as the server's `Content-Type` does (a boundary the server would refuse is not fed on); the
//! seed byte decides how many chunks the body arrives in and where they split, as a network would.
//! The whole input is also cleaned as a file on its own when it starts with an accepted signature,
//! so bare images in the corpus exercise the stripping directly.
//!
//! Checked: nothing panics; a field is never longer than the limit; a cleaned file still sniffs as
//! the type it was accepted as; and cleaning is idempotent (a second pass changes nothing).
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchboard::attachments::{check_and_clean, sniff::sniff};
use switchboard::http::attachments::read_file_field;

/// Small, so inputs the fuzzer can reach pass the limit too.
const MAX: u64 = 64 * 1024;

/// Built once: a runtime per input would dominate the run.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// The body in chunks: up to 15 cut points from a small xorshift seeded by `seed` (the fuzzer
/// controls it, so it can find the split that matters).
fn chunks(seed: u8, body: &[u8]) -> Vec<Result<Bytes, std::io::Error>> {
    let body = Bytes::copy_from_slice(body);
    let n = (seed & 0x0f) as usize;
    if n == 0 || body.len() < 2 {
        return vec![Ok(body)];
    }
    let mut state = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let mut cuts: Vec<usize> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize % body.len()
        })
        .collect();
    // Small seeds cut one byte at a time near the start (boundaries split across chunks).
    if seed & 0x10 != 0 {
        cuts = (1..=n).filter(|c| *c < body.len()).collect();
    }
    cuts.push(body.len());
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::with_capacity(cuts.len());
    let mut at = 0;
    for cut in cuts {
        if cut > at {
            out.push(Ok(body.slice(at..cut)));
            at = cut;
        }
    }
    out
}

fn check_clean(bytes: Bytes) {
    let Ok((kind, cleaned)) = check_and_clean(bytes) else {
        return;
    };
    assert_eq!(sniff(&cleaned), Some(kind), "cleaned file changed type");
    match check_and_clean(cleaned.clone()) {
        Ok((again_kind, again)) => {
            assert_eq!(again_kind, kind, "second clean changed type");
            assert!(again == cleaned, "cleaning is not idempotent for {kind:?}");
        }
        Err(e) => panic!("a cleaned {kind:?} is refused when cleaned again: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    if sniff(data).is_some() {
        check_clean(Bytes::copy_from_slice(data));
    }
    let Some((&seed, rest)) = data.split_first() else {
        return;
    };
    let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
        return;
    };
    let content_type = format!(
        "multipart/form-data; boundary={}",
        String::from_utf8_lossy(&rest[..nl])
    );
    let Ok(boundary) = multer::parse_boundary(&content_type) else {
        return;
    };
    let body = &rest[nl + 1..];
    let stream = futures_util::stream::iter(chunks(seed, body));
    let result = runtime().block_on(read_file_field(stream, &boundary, MAX));
    if let Ok((_filename, bytes)) = result {
        assert!(
            bytes.len() as u64 <= MAX,
            "a field of {} bytes passed the limit",
            bytes.len()
        );
        check_clean(bytes);
    }
});
