//! What counts as a contact detail, and, as carefully, what does not.

use super::*;

/// Compiled once for the whole file: compiling takes a good part of a second in a debug build.
fn contacts() -> &'static Contacts {
    static CONTACTS: std::sync::LazyLock<Contacts> =
        std::sync::LazyLock::new(|| Contacts::new(&["marketplace.example".to_string()]).unwrap());
    &CONTACTS
}

/// Every hit as (rule, matched text), in text order.
fn found(c: &Contacts, text: &str) -> Vec<(&'static str, String)> {
    let mut hits = Vec::new();
    c.find(text, &mut hits);
    hits.sort_by_key(|h| (h.span.start, h.span.end));
    hits.into_iter()
        .map(|h| (h.kind.name(), text[h.span].to_string()))
        .collect()
}

/// The rules that fire on `text`, without duplicates.
fn kinds(c: &Contacts, text: &str) -> Vec<&'static str> {
    let mut k: Vec<_> = found(c, text).into_iter().map(|(k, _)| k).collect();
    k.sort();
    k.dedup();
    k
}

#[track_caller]
fn assert_only(c: &Contacts, rule: &str, text: &str, matched: &str) {
    let hits = found(c, text);
    assert!(
        hits.iter().any(|(k, m)| *k == rule && m == matched),
        "{text:?}: expected {rule} {matched:?}, got {hits:?}"
    );
    assert!(
        hits.iter().all(|(k, _)| *k == rule),
        "{text:?}: expected only {rule}, got {hits:?}"
    );
}

#[track_caller]
fn assert_clean(c: &Contacts, text: &str) {
    let hits = found(c, text);
    assert!(hits.is_empty(), "{text:?}: expected nothing, got {hits:?}");
}

#[test]
fn phone_numbers_in_international_and_local_forms() {
    let c = contacts();
    for (text, number) in [
        ("call +44 20 7946 0958 today", "+44 20 7946 0958"),
        ("ring 0612345678", "0612345678"),
        ("(555) 123-4567 after six", "(555) 123-4567"),
        ("555.123.4567", "555.123.4567"),
        ("06 12 34 56 78", "06 12 34 56 78"),
        ("06-12-34-56-78", "06-12-34-56-78"),
        ("06.12.34.56.78", "06.12.34.56.78"),
        ("+44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
        ("030/1234567", "030/1234567"),
        ("0 6 1 2 3 4 5 6 7 8", "0 6 1 2 3 4 5 6 7 8"),
        ("612 345 678", "612 345 678"),
        (
            "+31\u{a0}6\u{2013}1234\u{2013}5678",
            "+31\u{a0}6\u{2013}1234\u{2013}5678",
        ),
        ("callme0612345678", "0612345678"),
        ("arabic digits ٠٦١٢٣٤٥٦٧٨", "٠٦١٢٣٤٥٦٧٨"),
    ] {
        assert_only(c, "phone_number", text, number);
    }
}

#[test]
fn prices_dates_times_and_short_numbers_are_not_phone_numbers() {
    let c = contacts();
    for text in [
        "€150 for the whole day",
        "it costs 1,500.00 in total",
        "1,250,000.00",
        "$ 12.500.000",
        "12 500 000 €",
        "on 2026-12-01 at 10:30",
        "12/01/2026 or 13.01.2026",
        "from 01.12.2026 - 05.12.2026",
        "01.12.2026-05.12.2026",
        "2026-12-01 10 people",
        "between 2025-2026",
        "open 10.30-12.30 and 14:00-18:00",
        "order #1234, 3 rooms, 2 bathrooms",
        "built in 1998, renovated 2021",
        "version 1.2.3",
        "1234567",
        "123-4567",
    ] {
        assert_clean(c, text);
    }
}

#[test]
fn digits_next_to_a_date_still_count() {
    let c = contacts();
    // A date that runs on into more digits is part of a longer number, not a date.
    assert_only(c, "phone_number", "06.12.2026.45", "06.12.2026.45");
    // A date beside a phone number does not hide it.
    assert_only(
        c,
        "phone_number",
        "on 2026-12-01 call 0612345678",
        "0612345678",
    );
}

#[test]
fn email_addresses_plain_and_disguised() {
    let c = contacts();
    for (text, address) in [
        (
            "mail john.doe+jobs@gmail.com please",
            "john.doe+jobs@gmail.com",
        ),
        ("JOHN@GMAIL.COM", "JOHN@GMAIL.COM"),
        ("john at gmail dot com", "john at gmail dot com"),
        ("john AT gmail DOT com", "john AT gmail DOT com"),
        ("john(at)gmail.com", "john(at)gmail.com"),
        ("john [at] gmail [dot] com", "john [at] gmail [dot] com"),
        ("john{at}gmail{dot}com", "john{at}gmail{dot}com"),
        ("john @ gmail.com", "john @ gmail.com"),
        ("john @gmail.com", "john @gmail.com"),
        ("josé@correo.es", "josé@correo.es"),
        ("info@studio.photography", "info@studio.photography"),
    ] {
        assert_only(c, "email_address", text, address);
    }
}

#[test]
fn the_bare_word_at_needs_a_disguised_dot_too() {
    let c = contacts();
    // With a plain dot it reads as much as a link as an address; the link rule takes it.
    assert_only(c, "url", "john at gmail.com", "gmail.com");
    assert_eq!(
        found(c, "0612345678 at example.com"),
        [
            ("phone_number", "0612345678".to_string()),
            ("url", "example.com".to_string())
        ]
    );
    assert_only(
        c,
        "email_address",
        "john at mail.google dot com",
        "john at mail.google dot com",
    );
}

#[test]
fn words_around_at_are_no_address() {
    let c = contacts();
    for text in [
        "see you at noon",
        "meet at the station at 5",
        "I am at home. Come by",
        "at gmail",
        "john@gmail",
    ] {
        assert_clean(c, text);
    }
}

#[test]
fn links_with_a_scheme_www_or_a_common_tld() {
    let c = contacts();
    for (text, link) in [
        (
            "see https://example.org/a?b=c#d.",
            "https://example.org/a?b=c#d",
        ),
        ("HTTP://EXAMPLE.ORG", "HTTP://EXAMPLE.ORG"),
        ("hxxps://evil.example/x", "hxxps://evil.example/x"),
        ("www.my-site.something", "www.my-site.something"),
        ("go to example.com, then", "example.com"),
        ("x.io", "x.io"),
        ("shop.example.de/offer?id=3", "shop.example.de/offer?id=3"),
        ("example(dot)com", "example(dot)com"),
        ("example [.] com", "example [.] com"),
        ("example dot com", "example dot com"),
        ("(example.com)", "example.com"),
    ] {
        assert_only(c, "url", text, link);
    }
}

#[test]
fn abbreviations_and_versions_are_no_links() {
    let c = contacts();
    for text in [
        "e.g. this one",
        "at 9 a.m. or 5 p.m.",
        "i.e. tomorrow",
        "version 1.2.3",
        "file.txt",
        "Mr. Smith",
        "the end. Next",
    ] {
        assert_clean(c, text);
    }
}

#[test]
fn allowed_domains_and_their_subdomains_pass_and_shield_what_they_hold() {
    let c = contacts();
    for text in [
        "https://marketplace.example/listing/12345678",
        "www.marketplace.example",
        "help.marketplace.example/faq",
        "marketplace.example",
        "support@marketplace.example",
        "support at marketplace dot example",
        "have a look at marketplace.example/offers/87654321",
        "https://MarketPlace.Example/x",
    ] {
        assert_clean(c, text);
    }
    // Not the domain, only a name that ends the same way, or a user name in front of it.
    for text in [
        "https://evilmarketplace.example/",
        "https://marketplace.example.evil.com/",
        "https://marketplace.example@evil.com/",
        "https://evil.com/?next=marketplace.example",
    ] {
        assert_eq!(kinds(c, text), ["url"], "{text}");
    }
    // A link on the platform holding another address is judged by the link alone.
    assert_clean(c, "https://marketplace.example/r?to=other.com");
}

#[test]
fn handles_not_inside_addresses() {
    let c = contacts();
    for (text, handle) in [
        ("find me @john_doe", "@john_doe"),
        ("@anna.smith", "@anna.smith"),
        ("(@bob99)", "@bob99"),
    ] {
        assert_only(c, "messenger_handle", text, handle);
    }
    // The @ of an address, of a path, a time or a tiny word is no handle.
    assert_only(c, "email_address", "john@gmail.com", "john@gmail.com");
    assert_only(
        c,
        "url",
        "https://medium.com/@writer",
        "https://medium.com/@writer",
    );
    for text in ["see you @10:30", "@me", "@ home", "a@b"] {
        assert_clean(c, text);
    }
}

#[test]
fn messenger_links_and_invitations() {
    let c = contacts();
    for (text, rule_text) in [
        ("wa.me/31612345678", "wa.me/31612345678"),
        ("https://t.me/somebody", "t.me/somebody"),
        ("chat.whatsapp.com/AbCdEf", "chat.whatsapp.com/AbCdEf"),
        ("please whatsapp me", "whatsapp me"),
        ("text me on telegram", "text me on telegram"),
        ("add me on skype", "add me on skype"),
        ("add me on signal", "add me on signal"),
        ("add me on viber", "add me on viber"),
        ("Add me on WeChat", "Add me on WeChat"),
        ("Message me via WhatsApp", "Message me via WhatsApp"),
        ("are you on viber?", "on viber"),
        ("my insta is bob", "my insta is"),
        ("my telegram: bob", "my telegram:"),
        ("my snapchat username is bob", "my snapchat username is"),
        ("hit me up on ig", "hit me up on ig"),
        ("dm me on instagram", "dm me on instagram"),
        ("we chat on whats  app", "chat on whats  app"),
    ] {
        let hits = found(c, text);
        assert!(
            hits.iter()
                .any(|(k, m)| *k == "messenger_handle" && m == rule_text),
            "{text:?}: expected messenger_handle {rule_text:?}, got {hits:?}"
        );
    }
    // A messenger link is also a link; the number in it is not reported twice.
    assert_eq!(kinds(c, "wa.me/31612345678"), ["messenger_handle", "url"]);
}

#[test]
fn messengers_mentioned_innocently_are_not_invitations() {
    let c = contacts();
    for text in [
        "I found your ad on instagram",
        "the signal is weak here",
        "a line of text",
        "send me a snap of the room",
        "my line is busy",
        "your telegram arrived",
        "the whatsapp group",
        "call on line 2",
        "wait in line",
    ] {
        assert_clean(c, text);
    }
}

#[test]
fn multibyte_text_around_matches_keeps_offsets_on_character_boundaries() {
    let c = contacts();
    for text in [
        "😀0612345678😀",
        "café john@gmail.com ñandú",
        "日本語 https://evil.example/パス 日本語",
        "ü@straße.de",
        "€€€ 2026-12-01 €€€ tel 0612345678",
        "@ñandú",
    ] {
        let mut hits = Vec::new();
        c.find(text, &mut hits);
        assert!(!hits.is_empty(), "{text}");
        for h in hits {
            assert!(
                text.get(h.span.clone()).is_some(),
                "{text}: {:?} splits a character",
                h.span
            );
        }
    }
}

#[test]
fn alternation_escapes_and_puts_longer_entries_first() {
    assert_eq!(alternation(&["a", "c++ x", "a.b"]), r"c\+\+\s+x|a\.b|a");
}
