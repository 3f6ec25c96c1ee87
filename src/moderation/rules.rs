//! The configured rules: what was found (`contact`, blocked words), what each rule's action makes
//! of it, and the masked text. Synchronous and pure: no I/O, no clock, so it runs inline on the
//! send path and under a fuzzer.

use std::ops::Range;

use regex::{Regex, RegexBuilder};

use super::config::{Action, ModerationConfig};
use super::contact::{alternation, Contacts};
use super::{Reason, ReasonSource, Review, Verdict, MASK};

/// What a rule looks for. The order is the order of `Review::reasons`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    PhoneNumber,
    EmailAddress,
    Url,
    MessengerHandle,
    BlockedWord,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::PhoneNumber,
        Kind::EmailAddress,
        Kind::Url,
        Kind::MessengerHandle,
        Kind::BlockedWord,
    ];

    /// The name in `Reason::rule`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::PhoneNumber => "phone_number",
            Kind::EmailAddress => "email_address",
            Kind::Url => "url",
            Kind::MessengerHandle => "messenger_handle",
            Kind::BlockedWord => "blocked_word",
        }
    }
}

/// One match: which rule, and where in the text (byte offsets on character boundaries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hit {
    pub kind: Kind,
    pub span: Range<usize>,
}

impl Hit {
    pub(super) fn new(kind: Kind, span: Range<usize>) -> Hit {
        Hit { kind, span }
    }
}

#[derive(Clone)]
pub(super) struct Rules {
    contacts: Contacts,
    /// `None` when the list is empty or the action is `allow`.
    blocked_words: Option<Regex>,
    phone_numbers: Action,
    email_addresses: Action,
    urls: Action,
    messenger_handles: Action,
    blocked_words_action: Action,
}

/// Ceiling on the compiled blocked-word list; a list of tens of thousands of words fits.
const BLOCKED_WORDS_SIZE_LIMIT: usize = 64 << 20;

impl Rules {
    pub(super) fn new(config: &ModerationConfig) -> Result<Rules, String> {
        let blocked_words =
            if config.blocked_words.is_empty() || config.blocked_words_action == Action::Allow {
                None
            } else {
                Some(blocked_words_regex(&config.blocked_words)?)
            };
        Ok(Rules {
            contacts: Contacts::new(&config.allowed_domains)?,
            blocked_words,
            phone_numbers: config.phone_numbers,
            email_addresses: config.email_addresses,
            urls: config.urls,
            messenger_handles: config.messenger_handles,
            blocked_words_action: config.blocked_words_action,
        })
    }

    fn action(&self, kind: Kind) -> Action {
        match kind {
            Kind::PhoneNumber => self.phone_numbers,
            Kind::EmailAddress => self.email_addresses,
            Kind::Url => self.urls,
            Kind::MessengerHandle => self.messenger_handles,
            Kind::BlockedWord => self.blocked_words_action,
        }
    }

    /// Every match in `text`, unordered.
    pub(super) fn hits(&self, text: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        let contacts_on = [
            Kind::PhoneNumber,
            Kind::EmailAddress,
            Kind::Url,
            Kind::MessengerHandle,
        ]
        .iter()
        .any(|k| self.action(*k) != Action::Allow);
        if contacts_on {
            self.contacts.find(text, &mut hits);
        }
        if let Some(re) = &self.blocked_words {
            hits.extend(
                re.find_iter(text)
                    .map(|m| Hit::new(Kind::BlockedWord, m.range())),
            );
        }
        hits
    }

    /// The verdict is the strongest action among the rules that matched (mask counts as flag);
    /// one reason per such rule, in [`Kind`] order; masked spans replaced by [`MASK`].
    pub(super) fn review(&self, text: &str) -> Review {
        let hits = self.hits(text);
        let mut verdict = Verdict::Allow;
        let mut reasons = Vec::new();
        for kind in Kind::ALL {
            if !hits.iter().any(|h| h.kind == kind) {
                continue;
            }
            let v = match self.action(kind) {
                Action::Allow => continue,
                Action::Flag | Action::Mask => Verdict::Flag,
                Action::Reject => Verdict::Reject,
            };
            verdict = verdict.max(v);
            reasons.push(Reason {
                source: ReasonSource::Rule,
                rule: kind.name().to_string(),
            });
        }
        let masked: Vec<Range<usize>> = hits
            .into_iter()
            .filter(|h| self.action(h.kind) == Action::Mask)
            .map(|h| h.span)
            .collect();
        Review {
            text: mask(text, masked),
            verdict,
            reasons,
        }
    }
}

/// Whole words and phrases, case-insensitively (Unicode case folding), escaped: an operator's
/// `c++` or `a.b` is text, never a pattern. Word boundaries are only required where the word
/// itself begins or ends with a word character, so `s.o.b.` still matches at a sentence end.
pub(super) fn blocked_words_regex(words: &[String]) -> Result<Regex, String> {
    let word_char = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut patterns: Vec<String> = words
        .iter()
        .map(|w| w.trim())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let start = if word_char(w.chars().next()) {
                r"\b"
            } else {
                ""
            };
            let end = if word_char(w.chars().next_back()) {
                r"\b"
            } else {
                ""
            };
            format!("{start}(?:{}){end}", alternation(&[w]))
        })
        .collect();
    patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
    RegexBuilder::new(&patterns.join("|"))
        .case_insensitive(true)
        .size_limit(BLOCKED_WORDS_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("moderation.blocked_words cannot be compiled: {e}"))
}

/// `text` with each span replaced by [`MASK`]; overlapping or touching spans become one marker.
/// Everything outside the spans is copied byte for byte. Spans come from regex matches on `text`
/// and so lie on character boundaries; any that did not would be dropped, never sliced.
pub(super) fn mask(text: &str, spans: Vec<Range<usize>>) -> String {
    let spans = Spans::new(spans.into_iter().filter(|s| {
        s.start < s.end && text.is_char_boundary(s.start) && text.is_char_boundary(s.end)
    }));
    if spans.0.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for s in &spans.0 {
        out.push_str(&text[copied..s.start]);
        out.push_str(MASK);
        copied = s.end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Sorted, merged byte ranges (touching ones merged too), for "does this match overlap an
/// address" without a quadratic scan, and for masking.
pub(super) struct Spans(Vec<Range<usize>>);

impl Spans {
    pub(super) fn new(spans: impl Iterator<Item = Range<usize>>) -> Spans {
        let mut all: Vec<Range<usize>> = spans.filter(|s| !s.is_empty()).collect();
        all.sort_by_key(|s| s.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(all.len());
        for s in all {
            match merged.last_mut() {
                Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
                _ => merged.push(s),
            }
        }
        Spans(merged)
    }

    pub(super) fn overlaps(&self, r: &Range<usize>) -> bool {
        let i = self.0.partition_point(|s| s.end <= r.start);
        self.0.get(i).is_some_and(|s| s.start < r.end)
    }
}

#[cfg(test)]
mod tests;
