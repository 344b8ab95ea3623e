//! The built-in patterns of `mask` rules: what sensitive values look like in text.
//!
//! Each pattern is a regular expression that finds candidates, and, where a shape
//! alone matches too much, a check of the candidate (Luhn for card numbers, a real
//! parse for IPv6). Patterns are compiled once per rule set, never per value.

use std::net::Ipv6Addr;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// A built-in pattern a `mask` rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinPattern {
    /// `user@example.com`.
    Email,
    /// 13 to 19 digits, optionally grouped by spaces or dashes, passing the Luhn check.
    CardNumber,
    /// Dotted-quad IPv4 addresses.
    Ipv4,
    /// IPv6 addresses in any of their textual forms.
    Ipv6,
    /// `Bearer <token>` (as in an `Authorization` header).
    BearerToken,
    /// JSON Web Tokens: three base64url parts, the first a JSON object (`eyJ`).
    Jwt,
    /// Common API-key shapes: AWS access key ids, GitHub, Slack and Stripe tokens.
    ApiKey,
}

/// Every built-in pattern, in the order they are applied.
pub const ALL_PATTERNS: [BuiltinPattern; 7] = [
    // Tokens first: a JWT or a bearer token may contain what looks like an email or
    // digits, and masking it whole keeps nothing of it.
    BuiltinPattern::BearerToken,
    BuiltinPattern::Jwt,
    BuiltinPattern::ApiKey,
    BuiltinPattern::Email,
    BuiltinPattern::CardNumber,
    BuiltinPattern::Ipv6,
    BuiltinPattern::Ipv4,
];

/// Shortest and longest payment card number, in digits (ISO/IEC 7812).
const CARD_DIGITS: std::ops::RangeInclusive<usize> = 13..=19;

impl BuiltinPattern {
    /// The pattern's name in rules, in masks (`[email]`) and on `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinPattern::Email => "email",
            BuiltinPattern::CardNumber => "card_number",
            BuiltinPattern::Ipv4 => "ipv4",
            BuiltinPattern::Ipv6 => "ipv6",
            BuiltinPattern::BearerToken => "bearer_token",
            BuiltinPattern::Jwt => "jwt",
            BuiltinPattern::ApiKey => "api_key",
        }
    }

    /// The regular expression finding candidates.
    pub fn regex(self) -> &'static str {
        match self {
            BuiltinPattern::Email => {
                r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
            }
            // Digits in groups separated by one space or dash; the length and the Luhn
            // check are verified on the candidate.
            BuiltinPattern::CardNumber => r"\b\d(?:[ \-]?\d){12,18}\b",
            BuiltinPattern::Ipv4 => {
                r"\b(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\b"
            }
            // Hex groups and colons (and a trailing dotted quad, tried first so it is
            // taken whole); parsed to confirm.
            BuiltinPattern::Ipv6 => {
                r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{1,4})?"
            }
            BuiltinPattern::BearerToken => r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*",
            BuiltinPattern::Jwt => r"\beyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*",
            BuiltinPattern::ApiKey => concat!(
                r"\b(?:(?:AKIA|ASIA)[0-9A-Z]{16}",
                r"|gh[pousr]_[A-Za-z0-9]{36,255}",
                r"|github_pat_[A-Za-z0-9_]{22,255}",
                r"|xox[abposr]-[A-Za-z0-9\-]{10,}",
                r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,})\b"
            ),
        }
    }

    /// Whether a candidate the regex found really is one (patterns whose shape
    /// alone is enough accept every candidate).
    pub fn confirms(self, candidate: &str) -> bool {
        match self {
            BuiltinPattern::CardNumber => is_card_number(candidate),
            BuiltinPattern::Ipv6 => is_ipv6(candidate),
            _ => true,
        }
    }

    /// The compiled regex (the pattern strings are constants, tested below).
    pub fn compile(self) -> Result<Regex, regex::Error> {
        Regex::new(self.regex())
    }
}

/// Whether `candidate` (digits, spaces, dashes) is a card number: 13 to 19 digits
/// whose Luhn checksum is 0.
pub fn is_card_number(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    CARD_DIGITS.contains(&digits.len()) && luhn_valid(&digits)
}

/// The Luhn check: doubling every second digit from the right, the sum is a
/// multiple of 10.
pub fn luhn_valid(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether `candidate` parses as an IPv6 address (`12:30:45` does not).
pub fn is_ipv6(candidate: &str) -> bool {
    candidate.parse::<Ipv6Addr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finds(pattern: BuiltinPattern, text: &str) -> Vec<String> {
        let regex = pattern.compile().unwrap();
        regex
            .find_iter(text)
            .map(|found| found.as_str())
            .filter(|found| pattern.confirms(found))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_pattern_compiles() {
        for pattern in ALL_PATTERNS {
            pattern.compile().unwrap();
        }
    }

    #[test]
    fn luhn_accepts_real_test_numbers_and_refuses_one_digit_off() {
        assert!(is_card_number("4111111111111111"));
        assert!(is_card_number("4111 1111 1111 1111"));
        assert!(is_card_number("5500-0000-0000-0004"));
        assert!(is_card_number("378282246310005"));
        assert!(!is_card_number("4111111111111112"));
        assert!(!is_card_number("411111111111")); // 12 digits
        assert!(!is_card_number("41111111111111111111")); // 20 digits
    }

    #[test]
    fn card_numbers_are_found_in_text_but_not_inside_hex_ids() {
        assert_eq!(
            finds(
                BuiltinPattern::CardNumber,
                "paid with 4111-1111-1111-1111 today"
            ),
            ["4111-1111-1111-1111"]
        );
        assert!(finds(BuiltinPattern::CardNumber, "order 4111111111111112").is_empty());
        // A Luhn-valid digit run inside a hex trace id is no card.
        assert!(finds(BuiltinPattern::CardNumber, "ab4111111111111111cd").is_empty());
    }

    #[test]
    fn emails_are_found() {
        assert_eq!(
            finds(
                BuiltinPattern::Email,
                "to: Jane.Doe+x@mail.example.co.uk, cc"
            ),
            ["Jane.Doe+x@mail.example.co.uk"]
        );
        assert!(finds(BuiltinPattern::Email, "not@an-address").is_empty());
    }

    #[test]
    fn ipv4_addresses_are_found_and_bounded() {
        assert_eq!(
            finds(BuiltinPattern::Ipv4, "from 192.168.10.254:443"),
            ["192.168.10.254"]
        );
        assert!(finds(BuiltinPattern::Ipv4, "256.1.1.1").is_empty());
    }

    #[test]
    fn ipv6_addresses_are_parsed_and_times_are_not() {
        assert_eq!(
            finds(BuiltinPattern::Ipv6, "client=2001:db8::8a2e:370:7334;"),
            ["2001:db8::8a2e:370:7334"]
        );
        assert_eq!(finds(BuiltinPattern::Ipv6, "lo ::1 up"), ["::1"]);
        assert_eq!(
            finds(BuiltinPattern::Ipv6, "mapped ::ffff:192.0.2.1"),
            ["::ffff:192.0.2.1"]
        );
        assert_eq!(
            finds(BuiltinPattern::Ipv6, "fe80:0:0:0:0:0:0:1"),
            ["fe80:0:0:0:0:0:0:1"]
        );
        assert!(finds(BuiltinPattern::Ipv6, "at 12:30:45").is_empty());
    }

    #[test]
    fn tokens_and_keys_are_found() {
        let jwt =
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(finds(BuiltinPattern::Jwt, &format!("token={jwt}")), [jwt]);
        assert_eq!(
            finds(
                BuiltinPattern::BearerToken,
                "Authorization: Bearer abc.DEF-123="
            ),
            ["Bearer abc.DEF-123="]
        );
        for key in [
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
            "xoxb-123456789012-abcdefghij",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        ] {
            assert_eq!(
                finds(BuiltinPattern::ApiKey, &format!("key {key} end")),
                [key]
            );
        }
        assert!(finds(BuiltinPattern::ApiKey, "AKIA-not-a-key").is_empty());
    }
}
