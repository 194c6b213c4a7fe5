//! BGP community values (crds.md §7, B7/B8).

use std::cmp::Ordering;
use std::fmt;

/// A standard `A:B` or large `large:A:B:C` community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Community {
    Standard { asn: u16, value: u16 },
    Large { global: u32, local1: u32, local2: u32 },
}

/// Why a community text does not parse. `Format` is upstream's "transient" class: the
/// text may name an alias that does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommunityError {
    Format(String),
    Value(String),
}

impl fmt::Display for CommunityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommunityError::Format(text) => write!(f, "invalid community format: {text}"),
            CommunityError::Value(inner) => write!(f, "invalid community value: {inner}"),
        }
    }
}

impl Community {
    pub fn parse(text: &str) -> Result<Community, CommunityError> {
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            [a, b] => {
                let asn = parse_u16(a).ok_or_else(|| {
                    CommunityError::Value(format!(
                        "invalid first section of community {a:?}: must be an integer between 0 and 65535"
                    ))
                })?;
                let value = parse_u16(b).ok_or_else(|| {
                    CommunityError::Value(format!(
                        "invalid second section of community {b:?}: must be an integer between 0 and 65535"
                    ))
                })?;
                Ok(Community::Standard { asn, value })
            }
            [prefix, a, b, c] => {
                if *prefix != "large" {
                    return Err(CommunityError::Value(format!(
                        "invalid large community {text:?}: expected the prefix \"large\", got {prefix:?}"
                    )));
                }
                let section = |name: &str, s: &str| {
                    parse_u32(s).ok_or_else(|| {
                        CommunityError::Value(format!(
                            "invalid {name} section of large community {s:?}: must be an integer between 0 and 4294967295"
                        ))
                    })
                };
                Ok(Community::Large {
                    global: section("first", a)?,
                    local1: section("second", b)?,
                    local2: section("third", c)?,
                })
            }
            _ => Err(CommunityError::Format(text.to_string())),
        }
    }

    pub fn is_large(&self) -> bool {
        matches!(self, Community::Large { .. })
    }

    /// Sort key: a standard `A:B` compares as the large community `(A*65536+B):0:0`.
    fn key(&self) -> (u32, u32, u32) {
        match *self {
            Community::Standard { asn, value } => ((u32::from(asn) << 16) | u32::from(value), 0, 0),
            Community::Large { global, local1, local2 } => (global, local1, local2),
        }
    }
}

impl Ord for Community {
    fn cmp(&self, other: &Self) -> Ordering {
        // Tie-break on the variant so a standard and a large with equal keys stay distinct.
        self.key().cmp(&other.key()).then(self.is_large().cmp(&other.is_large()))
    }
}

impl PartialOrd for Community {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard { asn, value } => write!(f, "{asn}:{value}"),
            Community::Large { global, local1, local2 } => write!(f, "large:{global}:{local1}:{local2}"),
        }
    }
}

/// Go's `strconv.ParseUint(s, 10, N)`: ASCII digits only (leading zeros allowed, no sign).
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = s.trim_start_matches('0');
    if trimmed.len() > 19 {
        return None;
    }
    if trimmed.is_empty() { Some(0) } else { trimmed.parse().ok() }
}

fn parse_u16(s: &str) -> Option<u16> {
    parse_digits(s).and_then(|v| u16::try_from(v).ok())
}

fn parse_u32(s: &str) -> Option<u32> {
    parse_digits(s).and_then(|v| u32::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_large() {
        assert_eq!(Community::parse("65535:0").unwrap(), Community::Standard { asn: 65535, value: 0 });
        assert_eq!(Community::parse("007:1").unwrap(), Community::Standard { asn: 7, value: 1 });
        assert_eq!(
            Community::parse("large:4294967295:1:2").unwrap(),
            Community::Large { global: 4294967295, local1: 1, local2: 2 }
        );
        assert_eq!(Community::parse("large:1:2:3").unwrap().to_string(), "large:1:2:3");
        assert_eq!(Community::parse("1:2").unwrap().to_string(), "1:2");
    }

    #[test]
    fn value_errors() {
        for bad in ["65536:1", "1:65536", "-1:1", "+1:1", "a:b", ":1", "1:", "large:4294967296:1:1", "large:1:x:1", "big:1:2:3", "99999999999999999999999:1"] {
            let err = Community::parse(bad).unwrap_err();
            assert!(matches!(err, CommunityError::Value(_)), "{bad}: {err:?}");
            assert!(err.to_string().starts_with("invalid community value: "), "{bad}: {err}");
        }
    }

    #[test]
    fn format_errors() {
        for bad in ["word", "1:2:3", "", "large:1:2:3:4"] {
            assert_eq!(
                Community::parse(bad).unwrap_err().to_string(),
                format!("invalid community format: {bad}")
            );
        }
    }

    #[test]
    fn ordering_standard_as_large() {
        let s = Community::parse("1:2").unwrap();
        let l_low = Community::parse("large:65537:0:0").unwrap();
        let l_high = Community::parse("large:65538:0:0").unwrap();
        let l_small = Community::parse("large:1:0:0").unwrap();
        let mut v = vec![l_high, s, l_small, l_low];
        v.sort();
        // 1:2 is 65538:0:0, equal to l_high's key: standard sorts first, but they stay distinct.
        assert_eq!(v, vec![l_small, l_low, s, l_high]);
        assert_ne!(s.cmp(&l_high), Ordering::Equal);
    }
}
