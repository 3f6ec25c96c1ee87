//! The moderation rules over any text a sender can type (the input as lossy UTF-8), with blocked
//! words and two rules set to mask, so both finding and masking run.
//!
//! Checked: nothing panics; a verdict other than allow always says why; a text in which no masking
//! rule matched is stored exactly as typed; masking only ever replaces with the marker (a changed
//! text holds one); and the review is a function of the text (the same twice).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use switchboard::moderation::{Action, ModerationConfig, Moderator, Verdict, MASK};

/// The rules whose action is `mask` below, by their `Reason::rule` name.
const MASKED: [&str; 2] = ["phone_number", "url"];

fn moderator() -> &'static Moderator {
    static M: OnceLock<Moderator> = OnceLock::new();
    M.get_or_init(|| {
        let config = ModerationConfig {
            phone_numbers: Action::Mask,
            urls: Action::Mask,
            email_addresses: Action::Flag,
            messenger_handles: Action::Flag,
            blocked_words: ["scam", "pay cash", "c++", "s.o.b.", "Straße", "詐欺"]
                .map(String::from)
                .to_vec(),
            blocked_words_action: Action::Reject,
            allowed_domains: vec!["marketplace.example".into()],
            ..ModerationConfig::default()
        };
        Moderator::new(&config).expect("the fuzz configuration is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let review = moderator().review_rules(&text);
    if review.verdict != Verdict::Allow {
        assert!(
            !review.reasons.is_empty(),
            "{:?} without a reason",
            review.verdict
        );
    } else {
        assert!(
            review.reasons.is_empty(),
            "allowed with reasons {:?}",
            review.reasons
        );
    }
    for r in &review.reasons {
        assert!(!r.rule.is_empty(), "a reason without a rule name");
    }
    let masked = review
        .reasons
        .iter()
        .any(|r| MASKED.contains(&r.rule.as_str()));
    if !masked {
        assert_eq!(
            review.text, text,
            "changed although no masking rule matched"
        );
    } else if review.text != text {
        assert!(review.text.contains(MASK), "changed without a mask marker");
    }
    assert_eq!(moderator().review_rules(&text), review, "not deterministic");
});
