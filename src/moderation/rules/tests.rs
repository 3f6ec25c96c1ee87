//! Actions, verdicts, reasons and masking.

use super::*;

fn rules(f: impl FnOnce(&mut ModerationConfig)) -> Rules {
    let mut c = ModerationConfig::default();
    f(&mut c);
    Rules::new(&c).unwrap()
}

fn rule_names(r: &Review) -> Vec<&str> {
    r.reasons
        .iter()
        .inspect(|x| assert_eq!(x.source, ReasonSource::Rule))
        .map(|x| x.rule.as_str())
        .collect()
}

#[test]
fn a_clean_message_is_allowed_as_typed() {
    let r = rules(|_| {}).review("Hi! Is this available next week? €150 is fine.");
    assert_eq!(r.verdict, Verdict::Allow);
    assert!(r.reasons.is_empty());
    assert_eq!(r.text, "Hi! Is this available next week? €150 is fine.");
}

#[test]
fn defaults_flag_every_contact_detail_with_one_reason_per_rule_in_order() {
    let text = "call 0612345678 or 0698765432, john@gmail.com, example.com, @john_doe";
    let r = rules(|_| {}).review(text);
    assert_eq!(r.verdict, Verdict::Flag);
    assert_eq!(
        rule_names(&r),
        ["phone_number", "email_address", "url", "messenger_handle"]
    );
    assert_eq!(r.text, text, "flagging keeps the text");
}

#[test]
fn allow_turns_a_rule_off() {
    let r = rules(|c| c.urls = Action::Allow).review("see example.com");
    assert_eq!((r.verdict, r.reasons.len()), (Verdict::Allow, 0));
    let r = rules(|c| {
        c.phone_numbers = Action::Allow;
        c.email_addresses = Action::Allow;
        c.urls = Action::Allow;
        c.messenger_handles = Action::Allow;
    })
    .review("0612345678 john@gmail.com @bob whatsapp me");
    assert_eq!((r.verdict, r.reasons.len()), (Verdict::Allow, 0));
}

#[test]
fn an_allowed_email_rule_still_keeps_its_domain_from_counting_as_a_link() {
    let r = rules(|c| c.email_addresses = Action::Allow).review("john@gmail.com");
    assert_eq!(r.verdict, Verdict::Allow, "{r:?}");
}

#[test]
fn the_strongest_action_wins() {
    let r = rules(|c| {
        c.phone_numbers = Action::Mask;
        c.urls = Action::Reject;
    })
    .review("0612345678 and example.com");
    assert_eq!(r.verdict, Verdict::Reject);
    assert_eq!(rule_names(&r), ["phone_number", "url"]);

    let r = rules(|c| c.phone_numbers = Action::Mask).review("0612345678, @bob_the_builder");
    assert_eq!(r.verdict, Verdict::Flag, "mask counts as flag");
    assert_eq!(rule_names(&r), ["phone_number", "messenger_handle"]);
}

#[test]
fn masking_replaces_only_the_matches_and_keeps_the_rest_byte_exact() {
    let r = rules(|c| {
        c.phone_numbers = Action::Mask;
        c.email_addresses = Action::Mask;
    })
    .review("Call  +44 20 7946 0958 (evenings)\nor mail john(at)gmail.com!  Thanks\t:)");
    assert_eq!(r.text, "Call  *** (evenings)\nor mail ***!  Thanks\t:)");
    assert_eq!(r.verdict, Verdict::Flag);
    assert_eq!(rule_names(&r), ["phone_number", "email_address"]);
}

#[test]
fn masking_only_what_is_set_to_mask() {
    let r = rules(|c| c.urls = Action::Mask).review("0612345678 at example.com");
    assert_eq!(r.text, "0612345678 at ***");
    assert_eq!(rule_names(&r), ["phone_number", "url"]);
}

#[test]
fn overlapping_masked_matches_become_one_marker() {
    let r = rules(|c| {
        c.urls = Action::Mask;
        c.messenger_handles = Action::Mask;
    })
    .review("here: https://wa.me/31612345678.");
    assert_eq!(r.text, "here: ***.");
}

#[test]
fn masking_next_to_multibyte_characters() {
    let r = rules(|c| {
        c.phone_numbers = Action::Mask;
        c.email_addresses = Action::Mask;
        c.urls = Action::Mask;
        c.messenger_handles = Action::Mask;
    });
    for (text, want) in [
        ("😀0612345678😀", "😀***😀"),
        ("é0612345678è", "é***è"),
        ("Grüße, josé@correo.es 👋🏽", "Grüße, *** 👋🏽"),
        ("日本語https://evil.example/パス 日本語", "日本語*** 日本語"),
        ("ça: @ñandú_42!", "ça: ***!"),
    ] {
        assert_eq!(r.review(text).text, want, "{text}");
    }
}

#[test]
fn blocked_words_whole_case_insensitive_unicode_and_escaped() {
    let r = rules(|c| {
        c.blocked_words = vec![
            "scam".into(),
            "Übel".into(),
            "pay  cash".into(),
            "c++".into(),
            "a.b".into(),
        ]
    });
    for hit in [
        "this is a SCAM!",
        "Scam.",
        "ganz übel",
        "ÜBEL",
        "PAY CASH only",
        "pay\ncash",
        "I love c++ a lot",
        "see a.b",
    ] {
        let rev = r.review(hit);
        assert_eq!(rev.verdict, Verdict::Reject, "{hit}");
        assert_eq!(rule_names(&rev), ["blocked_word"], "{hit}");
    }
    for miss in [
        "scammer",
        "scams",
        "übelkeit",
        "paycash",
        "c+",
        "axb",
        "aab",
    ] {
        assert_eq!(r.review(miss).verdict, Verdict::Allow, "{miss}");
    }
}

#[test]
fn operator_words_are_never_patterns() {
    // Each of these would be a broken or catastrophic pattern if not escaped.
    let r = rules(|c| c.blocked_words = vec!["(a+)+$".into(), "[x".into(), ".*".into()]);
    assert_eq!(r.review("anything at all").verdict, Verdict::Allow);
    assert_eq!(r.review("you (a+)+$ there").verdict, Verdict::Reject);
    assert_eq!(r.review("a .* b").verdict, Verdict::Reject);
}

#[test]
fn blocked_words_can_be_masked_or_flagged() {
    let r = rules(|c| {
        c.blocked_words = vec!["darn".into()];
        c.blocked_words_action = Action::Mask;
    })
    .review("Darn it, darn!");
    assert_eq!(r.text, "*** it, ***!");
    assert_eq!(r.verdict, Verdict::Flag);
    let r = rules(|c| {
        c.blocked_words = vec!["darn".into()];
        c.blocked_words_action = Action::Allow;
    })
    .review("darn");
    assert_eq!(r.verdict, Verdict::Allow);
}

#[test]
#[allow(clippy::single_range_in_vec_init)] // a list of one span is what is meant
fn mask_ignores_spans_that_would_split_a_character() {
    assert_eq!(mask("héllo", vec![1..2]), "héllo", "1..2 splits é");
    assert_eq!(
        mask("héllo", vec![2..3, 3..9]),
        "héllo",
        "3..9 runs past the end"
    );
    assert_eq!(mask("héllo", vec![1..3]), "h***llo");
    assert_eq!(mask("abcdef", vec![4..6, 0..2, 1..3]), "***d***");
    assert_eq!(
        mask("abcdef", vec![0..2, 2..4]),
        "***ef",
        "touching spans merge"
    );
    assert_eq!(mask("", vec![0..0]), "");
}
