//! [`Escaping::HtmlAttrs`](super::Escaping::HtmlAttrs): a light stand-in for `html/template`'s
//! contextual escaping, enough for notification HTML (Alertmanager renders email bodies with
//! `html/template`): text and quoted attribute values are escaped by its `htmlEscaper`, and a
//! value printed inside a URL attribute is first URL-normalized by its `urlNormalizer`. The
//! context is read back from the output written so far; script and style are not tracked.

use std::fmt::Write as _;

/// Appends `s`, printed at the end of `out`, escaped for its context.
pub(crate) fn print(out: &mut String, s: &str) {
    if in_url_attr(out) {
        escape(&url_normalize(s), out);
    } else {
        escape(s, out);
    }
}

/// Whether `out` ends inside a quoted URL attribute value (`href="...`, `src='...`).
fn in_url_attr(out: &str) -> bool {
    let mut from = out.len().saturating_sub(256);
    while !out.is_char_boundary(from) {
        from += 1;
    }
    let tail = &out[from..];
    let Some(q) = tail.rfind(['"', '\'']) else {
        return false;
    };
    // The quote must open the value: `name=` right before it (and none closes it after).
    let Some(before) = tail[..q].trim_end().strip_suffix('=') else {
        return false;
    };
    let before = before.trim_end();
    let start = before
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .map_or(0, |i| i + 1);
    let name = before[start..].to_ascii_lowercase();
    matches!(
        name.as_str(),
        "href" | "src" | "action" | "formaction" | "cite" | "poster" | "background"
    )
}

/// `html/template`'s `urlNormalizer`: percent-encodes bytes that may not appear in a URL,
/// keeping reserved characters and existing escapes.
fn url_normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b':'
            | b'/'
            | b'?'
            | b'#'
            | b'['
            | b']'
            | b'@'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
            | b'%' => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "%{b:02x}");
            }
        }
    }
    out
}

/// `html/template`'s `htmlEscaper`: Go's `HTMLEscapeString`, and `+` as `&#43;`.
fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '+' => out.push_str("&#43;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_by_context() {
        let mut out = String::from("<a href=\"");
        print(&mut out, "http://x/a b?q=1&r=+");
        assert_eq!(out, "<a href=\"http://x/a%20b?q=1&amp;r=&#43;");
        let mut out = String::from("<a href=\"x\">");
        print(&mut out, "a b<");
        assert_eq!(out, "<a href=\"x\">a b&lt;");
        let mut out = String::from("<td title=\"");
        print(&mut out, "a b");
        assert_eq!(out, "<td title=\"a b");
    }
}
