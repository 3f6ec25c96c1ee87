//! HTML escaping, the one rule shared by everything that writes user text into markup: the
//! unread-message e-mail (`notify/email.rs`) and search snippets (`search/snippet.rs`).
//!
//! All five markup-significant characters are escaped, `"` and `'` included, so the result is
//! safe in element text and in quoted attributes alike.

/// Appends `s` to `out`, escaping `& < > " '`.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `s` escaped as a new string.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_characters_and_nothing_else() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a> é"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt; é"
        );
        let mut out = String::from("kept ");
        escape_into(&mut out, "<");
        assert_eq!(out, "kept &lt;");
    }
}
