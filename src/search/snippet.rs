//! Snippet rendering: tantivy picks the best fragment, we render the HTML ourselves.
//!
//! We do not use `Snippet::to_html` so that the escaping rules (including `"` and `'`,
//! which matter when a client drops the snippet into an attribute) and the `<mark>`
//! tag are ours and covered by tests, whatever tantivy's defaults become.

use tantivy::snippet::{Snippet, SnippetGenerator};

use crate::html::escape_into;

/// Upper bound on the fragment length tantivy selects (bytes of the original text).
pub(crate) const MAX_SNIPPET_CHARS: usize = 150;

const MARK_OPEN: &str = "<mark>";
const MARK_CLOSE: &str = "</mark>";

/// Renders `fragment` with the byte `ranges` wrapped in `<mark>`. Ranges may be
/// unsorted, overlapping or (defensively) out of bounds / off char boundaries; bad
/// ranges are skipped instead of panicking.
pub(crate) fn render(fragment: &str, ranges: &[std::ops::Range<usize>]) -> String {
    let mut sorted: Vec<_> = ranges
        .iter()
        .filter(|r| r.start < r.end && r.end <= fragment.len())
        .cloned()
        .collect();
    sorted.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(fragment.len() + 32);
    let mut pos = 0;
    for r in sorted {
        let start = r.start.max(pos);
        if start >= r.end {
            continue; // fully covered by a previous range
        }
        let (Some(before), Some(marked)) = (fragment.get(pos..start), fragment.get(start..r.end))
        else {
            continue;
        };
        escape_into(&mut out, before);
        out.push_str(MARK_OPEN);
        escape_into(&mut out, marked);
        out.push_str(MARK_CLOSE);
        pos = r.end;
    }
    escape_into(&mut out, fragment.get(pos..).unwrap_or(""));
    out
}

/// Renders a tantivy `Snippet`.
pub(crate) fn render_snippet(s: &Snippet) -> String {
    render(s.fragment(), s.highlighted())
}

/// Snippet for one hit's text. When the query had no term in the text field (e.g. `*`
/// or a field-qualified query) tantivy returns an empty snippet; we then show the
/// beginning of the message, escaped, so a hit never has an empty snippet.
pub(crate) fn snippet_for(generator: Option<&SnippetGenerator>, text: &str) -> String {
    if let Some(g) = generator {
        let s = g.snippet(text);
        if !s.fragment().is_empty() {
            return render_snippet(&s);
        }
    }
    let mut end = text.len().min(MAX_SNIPPET_CHARS);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::new();
    escape_into(&mut out, &text[..end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Range;

    /// Builds ranges without tripping clippy's single-range/reversed-range lints.
    fn r(start: usize, end: usize) -> Range<usize> {
        Range { start, end }
    }

    #[test]
    fn escapes_and_marks() {
        let s = render("a <b> & \"c\" 'd'", &[r(3, 4)]);
        assert_eq!(
            s,
            "a &lt;<mark>b</mark>&gt; &amp; &quot;c&quot; &#39;d&#39;"
        );
    }

    #[test]
    fn overlapping_and_bad_ranges() {
        assert_eq!(
            render("hello", &[r(0, 3), r(1, 4)]),
            "<mark>hel</mark><mark>l</mark>o"
        );
        assert_eq!(render("hello", &[r(3, 99), r(4, 2)]), "hello");
        // 'é' is two bytes: a range ending inside it is skipped, not a panic.
        assert_eq!(render("é", &[r(0, 1)]), "é");
    }

    #[test]
    fn fallback_truncates_on_char_boundary() {
        let text = "é".repeat(200);
        let s = snippet_for(None, &text);
        assert!(s.len() <= MAX_SNIPPET_CHARS);
        assert!(s.chars().all(|c| c == 'é'));
    }
}
