//! Go `time.Duration` text: parsing (`time.ParseDuration`) and printing (`Duration.String`),
//! since BGPPeer timers are `metav1.Duration` values and messages quote them Go-style.

/// Nanoseconds, signed, like Go's `time.Duration`.
pub type Nanos = i64;

pub const SECOND: Nanos = 1_000_000_000;

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => return None,
    })
}

/// Port of Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`.
pub fn parse(text: &str) -> Result<Nanos, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let mut s = text;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {text:?}"));
        }
        let scale = unit_nanos(unit).ok_or_else(|| format!("time: unknown unit {unit:?} in duration {text:?}"))?;
        let whole = int_part
            .bytes()
            .try_fold(0u64, |acc, d| acc.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            .and_then(|v| v.checked_mul(scale))
            .ok_or_else(invalid)?;
        // Fraction scaled like Go: digits beyond nanosecond precision are dropped.
        let mut frac_value: u64 = 0;
        let mut frac_scale: u64 = 1;
        for d in frac_part.bytes() {
            if frac_scale > u64::MAX / 10 / 10 {
                break;
            }
            frac_value = frac_value * 10 + u64::from(d - b'0');
            frac_scale *= 10;
        }
        let frac = ((frac_value as f64) * (scale as f64 / frac_scale as f64)) as u64;
        total = total
            .checked_add(whole)
            .and_then(|t| t.checked_add(frac))
            .ok_or_else(invalid)?;
        if total > 1u64 << 63 {
            return Err(invalid());
        }
    }
    if neg {
        // 1<<63 is representable only as the negative extreme.
        Ok((total as i128).wrapping_neg() as i64)
    } else if total > i64::MAX as u64 {
        Err(invalid())
    } else {
        Ok(total as i64)
    }
}

/// Port of Go's `Duration.String()`: `1h2m3.5s`, `500ms`, `0s`.
pub fn format(d: Nanos) -> String {
    if d == 0 {
        return "0s".into();
    }
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut out = String::new();
    if u < SECOND as u64 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, div));
        out.push_str(unit);
    } else {
        let secs_total = u / SECOND as u64;
        let nanos = u % SECOND as u64;
        let hours = secs_total / 3600;
        let mins = (secs_total / 60) % 60;
        let secs = secs_total % 60;
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        if hours > 0 || mins > 0 {
            out.push_str(&format!("{mins}m"));
        }
        out.push_str(&fraction(secs * SECOND as u64 + nanos, SECOND as u64));
        out.push('s');
    }
    if neg { format!("-{out}") } else { out }
}

/// `value/div` with the remainder as trailing-zero-free decimals.
fn fraction(value: u64, div: u64) -> String {
    let whole = value / div;
    let rem = value % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_forms() {
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse("90s"), Ok(90 * SECOND));
        assert_eq!(parse("1m30s"), Ok(90 * SECOND));
        assert_eq!(parse("1.5h"), Ok(5400 * SECOND));
        assert_eq!(parse("-2s"), Ok(-2 * SECOND));
        assert_eq!(parse("+2s"), Ok(2 * SECOND));
        assert_eq!(parse("500ms"), Ok(500_000_000));
        assert_eq!(parse("1us"), Ok(1_000));
        assert_eq!(parse("1\u{b5}s"), Ok(1_000));
        assert_eq!(parse("1\u{3bc}s"), Ok(1_000));
        assert_eq!(parse(".5s"), Ok(SECOND / 2));
        assert_eq!(parse("1.s"), Ok(SECOND));
        assert_eq!(parse("2h45m0.5s"), Ok((2 * 3600 + 45 * 60) * SECOND + SECOND / 2));
        assert_eq!(parse("9223372036854775807ns"), Ok(i64::MAX));
        assert_eq!(parse("-9223372036854775808ns"), Ok(i64::MIN));
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in ["", "-", "s", "1", "1x", ".s", "1s2", "9223372036854775808ns", "999999999999h", "1e3s", " 1s", "1 s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse("1").unwrap_err(), "time: missing unit in duration \"1\"");
        assert_eq!(parse("1x").unwrap_err(), "time: unknown unit \"x\" in duration \"1x\"");
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(0), "0s");
        assert_eq!(format(90 * SECOND), "1m30s");
        assert_eq!(format(2 * SECOND), "2s");
        assert_eq!(format(3600 * SECOND), "1h0m0s");
        assert_eq!(format(1_500_000_000), "1.5s");
        assert_eq!(format(500_000_000), "500ms");
        assert_eq!(format(1_500), "1.5\u{b5}s");
        assert_eq!(format(7), "7ns");
        assert_eq!(format(-2 * SECOND), "-2s");
        assert_eq!(format(i64::MIN), "-2562047h47m16.854775808s");
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_roundtrips(d in proptest::num::i64::ANY) {
            proptest::prop_assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
