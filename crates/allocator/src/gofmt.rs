//! Go-compatible text rendering.
//!
//! MetalLB builds its error and event texts with Go's `%q` verb; operators and
//! scripts grep for those exact strings, so the allocator renders them the same way.

use std::fmt::{Display, Write};
use std::net::IpAddr;

/// An address as text. IPv4 is written by hand: `Ipv4Addr`'s `Display`
/// supports padding and costs more than the rest of an allocation.
pub fn ip_text(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut out = String::with_capacity(15);
            push_ipv4(&mut out, v4.octets());
            out
        }
        IpAddr::V6(v6) => v6.to_string(),
    }
}

fn push_ipv4(out: &mut String, octets: [u8; 4]) {
    for (i, o) in octets.into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if o >= 100 {
            out.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            out.push(char::from(b'0' + (o / 10) % 10));
        }
        out.push(char::from(b'0' + o % 10));
    }
}

/// `prefix` followed by `%q` of a `[]net.IP` (`["10.0.0.1" "fc00::1"]`), in
/// one allocation.
pub fn prefixed_quoted_ips<'a>(prefix: &str, ips: impl IntoIterator<Item = &'a IpAddr>) -> String {
    let mut out = String::with_capacity(prefix.len() + 48);
    out.push_str(prefix);
    out.push('[');
    for (i, ip) in ips.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        match ip {
            IpAddr::V4(v4) => push_ipv4(&mut out, v4.octets()),
            IpAddr::V6(v6) => {
                let _ = write!(out, "{v6}");
            }
        }
        out.push('"');
    }
    out.push(']');
    out
}

/// Printable ASCII without `"` or `\`: quoting only adds the quotes.
fn is_plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

/// `strconv.Quote`: double-quoted, with Go's escapes for `"`, `\` and
/// non-printable characters.
pub fn quote(s: &str) -> String {
    if is_plain(s) {
        return format!("\"{s}\"");
    }
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

/// `quote` written into a formatter without an intermediate string when
/// there is nothing to escape (the usual case for names).
pub fn write_quoted(out: &mut impl Write, s: &str) -> std::fmt::Result {
    if is_plain(s) {
        out.write_char('"')?;
        out.write_str(s)?;
        out.write_char('"')
    } else {
        out.write_str(&quote(s))
    }
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
    fn ip_text_matches_display() {
        for s in [
            "0.0.0.0",
            "1.2.3.4",
            "10.0.100.255",
            "255.255.255.255",
            "192.168.9.10",
            "fc00::1",
            "::",
        ] {
            let ip: IpAddr = s.parse().unwrap();
            assert_eq!(ip_text(&ip), ip.to_string());
        }
        let ips: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "fc00::1".parse().unwrap()];
        assert_eq!(prefixed_quoted_ips("", &ips), quoted_list(&ips));
        assert_eq!(prefixed_quoted_ips("x ", &[]), "x []");
    }

    #[test]
    fn lists_like_go() {
        assert_eq!(
            quoted_list(["10.0.0.1", "fc00::1"]),
            "[\"10.0.0.1\" \"fc00::1\"]"
        );
        assert_eq!(quoted_list(Vec::<String>::new()), "[]");
        assert_eq!(plain_list(["a", "b"]), "[a b]");
    }
}
