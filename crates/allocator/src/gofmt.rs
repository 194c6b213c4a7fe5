//! Go-compatible text rendering.
//!
//! MetalLB builds its error and event texts with Go's `%q` verb; operators and
//! scripts grep for those exact strings, so the allocator renders them the same way.

use std::fmt::{Display, Write};

/// `strconv.Quote`: double-quoted, with Go's escapes for `"`, `\` and
/// non-printable characters.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `%q` applied to a slice: `["a" "b"]`.
pub fn quoted_list<I, T>(items: I) -> String
where
    I: IntoIterator<Item = T>,
    T: Display,
{
    bracketed(items, |item| quote(&item.to_string()))
}

/// `%v`/`%s` applied to a slice: `[a b]`.
pub fn plain_list<I, T>(items: I) -> String
where
    I: IntoIterator<Item = T>,
    T: Display,
{
    bracketed(items, |item| item.to_string())
}

fn bracketed<I, T>(items: I, render: impl Fn(T) -> String) -> String
where
    I: IntoIterator<Item = T>,
{
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&render(item));
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("10.0.0.1"), "\"10.0.0.1\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("x\ny\u{1}"), "\"x\\ny\\x01\"");
        assert_eq!(quote("é"), "\"é\"");
    }

    #[test]
    fn lists_like_go() {
        assert_eq!(quoted_list(["10.0.0.1", "fc00::1"]), "[\"10.0.0.1\" \"fc00::1\"]");
        assert_eq!(quoted_list(Vec::<String>::new()), "[]");
        assert_eq!(plain_list(["a", "b"]), "[a b]");
    }
}
