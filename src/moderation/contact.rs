//! Finding contact details that would take a deal off the platform: phone numbers, e-mail
//! addresses, links and messenger handles or invitations. Pure functions of the text; what
//! happens to a match is decided in `rules`.
//!
//! The detectors overlap on purpose and are reconciled here: an e-mail address holds a domain
//! (not also a link) and an `@` (not also a handle); a link or address may hold digits (not also
//! a phone number). A link or address on an allowed domain is dropped, and still shields what is
//! inside it, so the marketplace's own `https://market.example/listing/12345678` flags nothing.

use std::ops::Range;

use regex::Regex;

use super::rules::{Hit, Kind, Spans};

/// Fewest digits in a run that counts as a phone number. Local numbers in most countries have at
/// least 8 with the area code; below it sit prices, order numbers, quantities and years.
pub const MIN_PHONE_DIGITS: usize = 8;

/// Messengers whose name alone next to "on"/"via" or before "me" is an invitation
/// (`on whatsapp`, `whatsapp me`). Multi-word names match any whitespace between the words.
#[rustfmt::skip]
pub const CHAT_APPS: &[&str] = &[
    "whatsapp", "whats app", "whatsap", "watsapp", "watsap", "wapp", "telegram", "telegramm",
    "viber", "wechat", "we chat", "weixin", "skype", "kik", "threema", "imessage", "facetime",
    "wickr", "zalo", "kakaotalk", "kakao talk", "line app",
];

/// Networks and messengers whose names are also everyday words or are mentioned innocently
/// ("I found you on instagram"): only an invitation after a contact verb (`add me on signal`) or
/// in `my insta is ...`. LINE is left out ("call on line 2", "wait in line"); "line app" is in
/// [`CHAT_APPS`].
#[rustfmt::skip]
pub const SOCIAL_APPS: &[&str] = &[
    "signal", "instagram", "insta", "ig", "snapchat", "snap", "facebook", "fb",
    "messenger", "discord", "tiktok", "tg", "wa",
];

/// Verbs that, followed by `[me|us] on|via|at <app>`, ask to continue elsewhere.
#[rustfmt::skip]
pub const CONTACT_VERBS: &[&str] = &[
    "text", "message", "msg", "call", "ring", "ping", "contact", "reach", "find", "add", "write",
    "dm", "pm", "chat", "talk", "hit me up", "hmu", "follow", "catch",
];

/// Hosts whose links open a chat in a messenger (`wa.me/31612345678`, `t.me/handle`).
#[rustfmt::skip]
pub const MESSENGER_LINK_HOSTS: &[&str] = &[
    "wa.me", "api.whatsapp.com", "chat.whatsapp.com", "t.me", "telegram.me", "telegram.dog",
    "m.me", "ig.me", "signal.me", "line.me", "viber.click", "discord.gg", "discord.com/invite",
    "snapchat.com/add",
];

/// Top-level domains a bare domain (`example.com`, no `www.` or scheme) must end in. A closed
/// list, so "e.g.", "a.m." or "1.2.3" are no links; disguised forms ("example(dot)com") need it
/// too. Links with a scheme or `www.` may have any TLD.
#[rustfmt::skip]
pub const COMMON_TLDS: &[&str] = &[
    "com", "net", "org", "info", "biz", "io", "co", "me", "app", "dev", "xyz", "online", "site",
    "shop", "store", "link", "page", "live", "ly", "gg", "tv", "ai", "to", "cc", "eu", "uk", "de",
    "fr", "nl", "be", "es", "it", "pt", "ch", "at", "pl", "se", "dk", "fi", "ie", "ru", "ua", "us",
    "ca", "au", "nz", "br", "mx", "in", "tr", "gr", "cz", "ro", "hu",
];

/// Separators allowed between the digits of a phone number, at most two in a row
/// (`(555) 123-4567`): space, tab, no-break space, ASCII and Unicode dashes, dot, slash, brackets.
const PHONE_SEP: &str = r"[ \t\x{A0}\-\x{2010}-\x{2015}\x{2212}./()]";

/// A date with a four-digit year, day-month-year or year-month-day, any of `-./` between.
const DATE: &str = r"[0-9]{4}[-./][0-9]{1,2}[-./][0-9]{1,2}|[0-9]{1,2}[-./][0-9]{1,2}[-./][0-9]{4}";

/// A plain label of a domain name.
const LABEL: &str = r"[\p{L}\p{N}](?:[\p{L}\p{N}\-]*[\p{L}\p{N}])?";
/// A dot written `(dot)`, `[.]`, ` dot `.
const DOT_DISGUISED: &str = r"(?i:\s*[(\[{<]\s*(?:dot|\.)\s*[)\]}>]\s*|\s+dot\s+)";
/// A dot, plain or disguised.
const DOT_ANY: &str = r"(?i:\.|\s*[(\[{<]\s*(?:dot|\.)\s*[)\]}>]\s*|\s+dot\s+)";
/// `@`, also written `(at)`, `[at]`, or with spaces around it. The bare word ` at ` is
/// [`AT_SPELLED`].
const AT_DISGUISED: &str = r"(?i:\s*[(\[{<]\s*(?:at|@)\s*[)\]}>]\s*|\s+@\s*|@\s*)";
/// `@` as the bare word ` at `. Only an address when a dot is disguised too
/// (`john at gmail dot com`): "available at example.com" or "0612345678 at example.com" are
/// a link, and a phone number next to one.
const AT_SPELLED: &str = r"\s+(?i:at)\s+";
/// What a link may run on with: anything up to whitespace or a quote or angle bracket.
const URL_TAIL: &str = r#"[^\s<>"'`]"#;

/// The compiled detectors; built once by `Moderator::new`.
#[derive(Clone)]
pub(super) struct Contacts {
    phone: Regex,
    /// Dates, year and time ranges, whose digits must not count towards a phone number.
    not_phone: Regex,
    email_plain: Regex,
    email_disguised: Regex,
    email_spelled: Regex,
    /// `http(s)://` with no word boundary before it: CJK text runs straight into a link
    /// ("日本語https://...") and a boundary between two letters never matches.
    url_with_scheme: Regex,
    url_bare: Regex,
    /// A disguised dot, to read `market(dot)example` as a host name.
    dot_disguised: Regex,
    handle: Regex,
    messenger_link: Regex,
    messenger_phrase: Regex,
    allowed_domains: Vec<String>,
}

/// A link or address found, and whether its domain is allowed.
struct Found {
    span: Range<usize>,
    allowed: bool,
}

impl Contacts {
    pub(super) fn new(allowed_domains: &[String]) -> Result<Contacts, String> {
        let compile = |what: &str, pattern: String| {
            Regex::new(&pattern).map_err(|e| format!("moderation: the {what} rule: {e}"))
        };
        let allowed_tlds: Vec<&str> = allowed_domains
            .iter()
            .filter_map(|d| d.trim().trim_end_matches('.').rsplit('.').next())
            .collect();
        // The allowed domains' own TLDs too, so `market.example/listing/12345678` is seen as a
        // link (and allowed) rather than leaving its digits to look like a phone number.
        // Case-insensitive only where letters are spelled out: `(?i)` over the Unicode classes
        // of a whole pattern costs a tenth of a second to compile and changes nothing.
        let tlds = format!(
            "(?i:{})",
            alternation(&[COMMON_TLDS, &allowed_tlds].concat())
        );
        let chat = alternation(CHAT_APPS);
        let any_app = alternation(&[CHAT_APPS, SOCIAL_APPS].concat());
        let verbs = alternation(CONTACT_VERBS);
        let local = r"[\p{L}\p{N}._%+\-]+";
        Ok(Contacts {
            phone: compile("phone", format!(r"[+(]{{0,2}}\d(?:{PHONE_SEP}{{0,2}}\d)*"))?,
            not_phone: compile(
                "phone",
                [
                    &format!(r"(?:{DATE}) ?[-\x{{2013}}] ?(?:{DATE})"),
                    DATE,
                    r"[0-9]{4} ?[-/\x{2013}] ?[0-9]{4}",
                    r"[0-9]{1,2}[:.][0-9]{2} ?[-\x{2013}] ?[0-9]{1,2}[:.][0-9]{2}",
                ]
                .join("|"),
            )?,
            email_plain: compile(
                "e-mail",
                format!(r"{local}@(?P<domain>(?:{LABEL}\.)+\p{{L}}{{2,}})\b"),
            )?,
            email_disguised: compile(
                "e-mail",
                format!(
                    r"{local}{AT_DISGUISED}(?P<domain>(?:{LABEL}{DOT_ANY})+{tlds})\b"
                ),
            )?,
            email_spelled: compile(
                "e-mail",
                format!(
                    r"{local}{AT_SPELLED}(?P<domain>(?:{LABEL}{DOT_ANY})*{LABEL}{DOT_DISGUISED}(?:{LABEL}{DOT_ANY})*{tlds})\b"
                ),
            )?,
            url_with_scheme: compile(
                "url",
                format!(r"(?:(?i:h(?:tt|xx)ps?://){URL_TAIL}+|\b(?i:www)\d{{0,3}}\.{LABEL}{URL_TAIL}*)"),
            )?,
            url_bare: compile(
                "url",
                format!(r"\b(?:{LABEL}{DOT_ANY})+{tlds}\b(?:[/?#:]{URL_TAIL}*)?"),
            )?,
            dot_disguised: compile(
                "url",
                DOT_DISGUISED.into(),
            )?,
            handle: compile(
                "messenger",
                r"@[\p{L}\p{N}_](?:[\p{L}\p{N}_.]*[\p{L}\p{N}_])?".into(),
            )?,
            messenger_link: compile(
                "messenger",
                format!(
                    r"(?i)\b(?:{})/{URL_TAIL}*",
                    alternation(MESSENGER_LINK_HOSTS)
                ),
            )?,
            messenger_phrase: compile(
                "messenger",
                [
                    format!(r"\b(?:on|via|over|through|using)\s+(?:{chat})\b"),
                    format!(r"\b(?:{chat})\s+(?:me|us)\b"),
                    format!(
                        r"\b(?:{verbs})(?:\s+(?:me|us))?(?:\s+up)?\s+(?:on|via|at|over|through|in)\s+(?:my\s+)?(?:{any_app})\b"
                    ),
                    format!(
                        r"\bmy\s+(?:{any_app})(?:\s+(?:id|handle|username|user\s*name|name|account|acc|number|nr))?\s*(?:is\b|:|=)"
                    ),
                ]
                .map(|p| format!("(?i:{p})"))
                .join("|"),
            )?,
            allowed_domains: allowed_domains
                .iter()
                .map(|d| d.trim().trim_end_matches('.').to_lowercase())
                .collect(),
        })
    }

    /// Every contact detail in `text`, reconciled (see the module comment).
    pub(super) fn find(&self, text: &str, hits: &mut Vec<Hit>) {
        let emails = self.emails(text);
        let email_spans = Spans::new(emails.iter().map(|f| f.span.clone()));
        let urls: Vec<Found> = self
            .urls(text)
            .into_iter()
            .filter(|f| !email_spans.overlaps(&f.span))
            .collect();
        let links: Vec<Range<usize>> = self
            .messenger_link
            .find_iter(text)
            .map(|m| trim_trailing_punctuation(text, m.range()))
            .collect();
        let addresses = Spans::new(
            emails
                .iter()
                .chain(&urls)
                .map(|f| f.span.clone())
                .chain(links.iter().cloned()),
        );
        for f in emails.into_iter().filter(|f| !f.allowed) {
            hits.push(Hit::new(Kind::EmailAddress, f.span));
        }
        for f in urls.into_iter().filter(|f| !f.allowed) {
            hits.push(Hit::new(Kind::Url, f.span));
        }
        for span in links {
            hits.push(Hit::new(Kind::MessengerHandle, span));
        }
        for m in self.messenger_phrase.find_iter(text) {
            hits.push(Hit::new(Kind::MessengerHandle, m.range()));
        }
        for span in self.handles(text) {
            if !addresses.overlaps(&span) {
                hits.push(Hit::new(Kind::MessengerHandle, span));
            }
        }
        for span in self.phones(text) {
            if !addresses.overlaps(&span) {
                hits.push(Hit::new(Kind::PhoneNumber, span));
            }
        }
    }

    fn emails(&self, text: &str) -> Vec<Found> {
        let mut found = Vec::new();
        for re in [
            &self.email_plain,
            &self.email_disguised,
            &self.email_spelled,
        ] {
            for c in re.captures_iter(text) {
                let (Some(all), Some(domain)) = (c.get(0), c.name("domain")) else {
                    continue;
                };
                // "have a look at market.example/offers" reads as " at " + a domain, but the path
                // makes it a link; leave it to the link rule.
                if text[all.end()..].starts_with('/') {
                    continue;
                }
                let host = self.host_name(domain.as_str());
                found.push(Found {
                    span: all.range(),
                    allowed: self.is_allowed(&host),
                });
            }
        }
        found
    }

    fn urls(&self, text: &str) -> Vec<Found> {
        let found = |m: regex::Match| {
            let span = trim_trailing_punctuation(text, m.range());
            let host = self.host_name(url_host(&text[span.clone()]));
            Found {
                allowed: self.is_allowed(&host),
                span,
            }
        };
        let mut urls: Vec<Found> = self.url_with_scheme.find_iter(text).map(found).collect();
        // A domain inside a full link (`?next=other.example`) is judged as part of that link.
        let full = Spans::new(urls.iter().map(|f| f.span.clone()));
        urls.extend(
            self.url_bare
                .find_iter(text)
                .map(found)
                .filter(|f| !full.overlaps(&f.span)),
        );
        urls
    }

    /// `@name` not inside an address (`john@example.com` has no handle `@example`), with a
    /// letter in it (`@10:30` is a time) and at least three characters (`@me`).
    fn handles<'t>(&'t self, text: &'t str) -> impl Iterator<Item = Range<usize>> + 't {
        self.handle.find_iter(text).filter_map(move |m| {
            let before = text[..m.start()].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || "_.+-%".contains(c)) {
                return None;
            }
            let name = &m.as_str()[1..];
            (name.chars().count() >= 3 && name.chars().any(char::is_alphabetic)).then(|| m.range())
        })
    }

    /// Runs of at least [`MIN_PHONE_DIGITS`] digits, not counting the digits of dates, year or
    /// time ranges, and not amounts of money (a currency sign right before or after).
    fn phones(&self, text: &str) -> Vec<Range<usize>> {
        // Dates are blanked out of a copy of the text with as many `x` bytes as they are long,
        // so every offset still means the same place and the copy stays valid UTF-8.
        let mut blanked: Option<Vec<u8>> = None;
        for m in self.not_phone.find_iter(text) {
            if is_date_like(m.as_str()) && stands_alone(text, m.range()) {
                let bytes = blanked.get_or_insert_with(|| text.as_bytes().to_vec());
                bytes[m.range()].fill(b'x');
            }
        }
        let blanked = blanked.and_then(|b| String::from_utf8(b).ok());
        let haystack = blanked.as_deref().unwrap_or(text);
        self.phone
            .find_iter(haystack)
            .filter(|m| m.as_str().chars().filter(|c| c.is_numeric()).count() >= MIN_PHONE_DIGITS)
            .filter(|m| !next_to_currency(text, m.range()))
            .map(|m| m.range())
            .collect()
    }

    /// The host a link or address names, lowercase, with disguised dots read as dots.
    fn host_name(&self, raw: &str) -> String {
        let host = self.dot_disguised.replace_all(raw, ".");
        host.trim_end_matches('.').to_lowercase()
    }

    fn is_allowed(&self, host: &str) -> bool {
        self.allowed_domains.iter().any(|d| {
            host == d
                || host
                    .strip_suffix(d.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

/// The host part of a link as written: after the scheme, before path, query, fragment and port,
/// after any `user@`.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    host.split(':').next().unwrap_or(host)
}

/// Sentence punctuation after a link is not part of it ("see example.com.").
fn trim_trailing_punctuation(text: &str, span: Range<usize>) -> Range<usize> {
    let kept = text[span.clone()].trim_end_matches(|c: char| ".,;:!?)]}'\"»…".contains(c));
    span.start..span.start + kept.len()
}

/// Whether a `not_phone` match really is a date (year 1900–2099, day and month in range), a
/// date, year or time range, judged by its digit groups.
fn is_date_like(s: &str) -> bool {
    let groups: Vec<&str> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let n = |g: &str| g.parse::<u32>().unwrap_or(u32::MAX);
    let year = |g: &str| g.len() == 4 && (1900..2100).contains(&n(g));
    let day_month = |a: &str, b: &str| {
        let (a, b) = (n(a), n(b));
        (1..=31).contains(&a) && (1..=31).contains(&b) && (a <= 12 || b <= 12)
    };
    let date = |g: &[&str]| match g {
        [y, a, b] if y.len() == 4 => year(y) && day_month(a, b),
        [a, b, y] => year(y) && day_month(a, b),
        _ => false,
    };
    match groups.as_slice() {
        [_, _, _] => date(&groups),
        [_, _, _, _, _, _] => date(&groups[..3]) && date(&groups[3..]),
        [y1, y2] => year(y1) && year(y2),
        [h1, m1, h2, m2] => n(h1) <= 24 && n(h2) <= 24 && n(m1) <= 59 && n(m2) <= 59,
        _ => false,
    }
}

/// A date is a date only if it does not continue into more digits: in `06.12.2026.45` or
/// `1-2026-12-01` it is part of a longer number. A space next to it is fine.
fn stands_alone(text: &str, span: Range<usize>) -> bool {
    let joined = |c: Option<char>, then: Option<char>| match c {
        Some(c) if c.is_numeric() => true,
        Some('-' | '.' | '/') => then.is_some_and(char::is_numeric),
        _ => false,
    };
    let mut before = text[..span.start].chars().rev();
    let mut after = text[span.end..].chars();
    !joined(before.next(), before.next()) && !joined(after.next(), after.next())
}

/// `€ 12.500.000` or `12 500 000 $`: a price, whatever its digit count.
fn next_to_currency(text: &str, span: Range<usize>) -> bool {
    let is_currency = |s: &str| {
        s.trim_start()
            .chars()
            .next()
            .is_some_and(|c| matches!(c, '$' | '€' | '£' | '¥' | '₹' | '₽' | '₺' | '₩' | '₪'))
    };
    let before: String = text[..span.start].chars().rev().take(2).collect();
    is_currency(&before) || is_currency(&text[span.end..])
}

/// `a|b c` as a regex alternation: each entry escaped (never read as a pattern), any whitespace
/// between words, longest first so a longer entry wins over its prefix.
pub(super) fn alternation(words: &[&str]) -> String {
    let mut words: Vec<&str> = words.to_vec();
    words.sort_by_key(|w| std::cmp::Reverse(w.len()));
    words
        .iter()
        .map(|w| {
            w.split_whitespace()
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(r"\s+")
        })
        .collect::<Vec<_>>()
        .join("|")
}

#[cfg(test)]
mod tests;
