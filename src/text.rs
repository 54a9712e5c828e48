//! Text shown to people: post bodies, names and addresses that came from other people pass
//! through [`shown`] before they reach a terminal, a chat line, a mail or a log, so they cannot
//! move the cursor, clear the screen, set a terminal title or reorder the text around them.
//! The stored post is never changed: only what is displayed.

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for a character that must not reach a person's screen as is: control characters
/// (below U+0020 except newline and tab, DEL, and the C1 range U+0080–U+009F) and the
/// bidirectional overrides, embeddings and isolates (U+202A–U+202E, U+2066–U+2069).
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every [`is_unsafe`] character written visibly as a Rust escape (`\u{1b}`);
/// borrowed unchanged when there is none.
pub fn shown(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unsafe(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A serialised JSON document with every [`is_unsafe`] character left raw by the serialiser
/// (DEL, C1, bidi controls) written as a JSON `\uXXXX` escape: the same JSON value, byte-exact
/// once parsed, but harmless on a terminal.
pub fn json_shown(json: String) -> String {
    if !json.chars().any(is_unsafe) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unsafe(c) {
            // Every unsafe character is in the Basic Multilingual Plane: one escape each.
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_shown_as_escapes() {
        let evil = "a\u{1b}[2J\u{1b}]0;t\u{7}\r\0b\u{202e}c\u{2066}\u{7f}\u{85}\u{9b}";
        let s = shown(evil);
        assert_eq!(
            s,
            "a\\u{1b}[2J\\u{1b}]0;t\\u{7}\\u{d}\\u{0}b\\u{202e}c\\u{2066}\\u{7f}\\u{85}\\u{9b}"
        );
        assert!(!s.chars().any(is_unsafe));
    }

    #[test]
    fn newlines_tabs_and_ordinary_text_pass_untouched() {
        let ok = "line one\n\tline two — ünïcödé 🦀 \u{200f}";
        assert!(matches!(shown(ok), Cow::Borrowed(_)));
    }

    #[test]
    fn json_stays_the_same_value() {
        let v = serde_json::json!({ "body": "x\u{202e}y\u{7f}\u{1b}z" });
        let text = json_shown(serde_json::to_string(&v).unwrap());
        assert!(!text.chars().any(is_unsafe), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
