//! Email addresses as accounts know them.

use std::fmt;

/// Why an address was refused (a sentence fragment: "it is empty").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("The email address is not valid: {0}.")]
pub struct InvalidEmail(pub &'static str);

/// RFC 5321 limits: a forward path of 256 octets minus the angle brackets.
const MAX_ADDRESS_BYTES: usize = 254;
const MAX_LOCAL_PART_BYTES: usize = 64;
const MAX_LABEL_BYTES: usize = 63;

/// A syntactically valid, normalized email address.
///
/// We accept the RFC 5322 dot-atom form only (no quoted local parts, no
/// comments, no IP literals) and ASCII only: internationalized domains must be
/// given in punycode, and SMTPUTF8 local parts are refused.
///
/// Normalization is our choice: the whole address is ASCII-lowercased, so the
/// local part is treated as case-insensitive like nearly every provider does.
/// Two addresses that differ only by case are the same account.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Trims, validates and lowercases `raw`.
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let address = raw.trim();
        if address.is_empty() {
            return Err(InvalidEmail("it is empty"));
        }
        if address.len() > MAX_ADDRESS_BYTES {
            return Err(InvalidEmail("it is longer than 254 characters"));
        }
        if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidEmail(
                "it must not contain spaces or control characters",
            ));
        }
        let (local, domain) = match address.split_once('@') {
            Some((local, domain)) if !domain.contains('@') => (local, domain),
            _ => return Err(InvalidEmail("it must contain exactly one '@'")),
        };
        check_local_part(local)?;
        check_domain(domain)?;
        Ok(Self(address.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn check_local_part(local: &str) -> Result<(), InvalidEmail> {
    if local.is_empty() {
        return Err(InvalidEmail("the part before '@' is empty"));
    }
    if local.len() > MAX_LOCAL_PART_BYTES {
        return Err(InvalidEmail(
            "the part before '@' is longer than 64 characters",
        ));
    }
    if !local.bytes().all(is_local_part_byte) {
        return Err(InvalidEmail(
            "the part before '@' may only contain letters, digits, '.' and !#$%&'*+/=?^_`{|}~-",
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(InvalidEmail(
            "the part before '@' must not start or end with a dot or contain two dots in a row",
        ));
    }
    Ok(())
}

/// RFC 5322 `atext` plus the dot of `dot-atom`.
fn is_local_part_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-.".contains(&b)
}

fn check_domain(domain: &str) -> Result<(), InvalidEmail> {
    if domain.is_empty() {
        return Err(InvalidEmail("the domain after '@' is empty"));
    }
    if !domain.is_ascii() {
        return Err(InvalidEmail(
            "internationalized domains must be entered in punycode (xn--...)",
        ));
    }
    if !domain
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(InvalidEmail(
            "the domain may only contain letters, digits, '-' and '.'",
        ));
    }
    if !domain.contains('.') {
        return Err(InvalidEmail("the domain must contain a dot"));
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(InvalidEmail(
                "the domain must not start or end with a dot or contain two dots in a row",
            ));
        }
        if label.len() > MAX_LABEL_BYTES {
            return Err(InvalidEmail(
                "a part of the domain is longer than 63 characters",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(InvalidEmail(
                "a part of the domain must not start or end with '-'",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(raw: &str) -> &'static str {
        match EmailAddress::parse(raw) {
            Err(InvalidEmail(why)) => why,
            other => panic!("expected InvalidEmail for {raw:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_address_is_accepted() {
        let email = EmailAddress::parse("alice@example.com").unwrap();
        assert_eq!(email.as_str(), "alice@example.com");
        assert_eq!(email.to_string(), "alice@example.com");
        assert_eq!(email.into_inner(), "alice@example.com");
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        let email = EmailAddress::parse("  alice@example.com\n").unwrap();
        assert_eq!(email.as_str(), "alice@example.com");
    }

    #[test]
    fn the_whole_address_is_lowercased() {
        let email = EmailAddress::parse("Alice.Smith@Example.COM").unwrap();
        assert_eq!(email.as_str(), "alice.smith@example.com");
        assert_eq!(
            email,
            EmailAddress::parse("alice.smith@example.com").unwrap()
        );
    }

    #[test]
    fn every_dot_atom_character_is_allowed_in_the_local_part() {
        let raw = "a!#$%&'*+/=?^_`{|}~-.z@example.com";
        assert_eq!(EmailAddress::parse(raw).unwrap().as_str(), raw);
    }

    #[test]
    fn subaddresses_and_subdomains_are_accepted() {
        assert!(EmailAddress::parse("bob+news@mail.eu.example.org").is_ok());
    }

    #[test]
    fn an_empty_address_is_rejected() {
        assert_eq!(reason("   "), "it is empty");
    }

    #[test]
    fn an_address_longer_than_254_bytes_is_rejected() {
        let domain = format!(
            "{}.{}.{}.com",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63)
        );
        let at_limit = format!("{}@{domain}", "x".repeat(254 - 1 - domain.len()));
        assert_eq!(at_limit.len(), 254);
        assert!(EmailAddress::parse(&at_limit).is_ok());
        assert_eq!(
            reason(&format!("x{at_limit}")),
            "it is longer than 254 characters"
        );
    }

    #[test]
    fn a_local_part_longer_than_64_bytes_is_rejected() {
        assert!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(64))).is_ok());
        let too_long = format!("{}@example.com", "a".repeat(65));
        assert!(reason(&too_long).contains("longer than 64"));
    }

    #[test]
    fn an_address_without_at_sign_is_rejected() {
        assert_eq!(
            reason("alice.example.com"),
            "it must contain exactly one '@'"
        );
    }

    #[test]
    fn an_address_with_two_at_signs_is_rejected() {
        assert_eq!(
            reason("alice@home@example.com"),
            "it must contain exactly one '@'"
        );
    }

    #[test]
    fn an_empty_local_part_or_domain_is_rejected() {
        assert_eq!(reason("@example.com"), "the part before '@' is empty");
        assert_eq!(reason("alice@"), "the domain after '@' is empty");
    }

    #[test]
    fn inner_whitespace_and_control_characters_are_rejected() {
        for raw in [
            "al ice@example.com",
            "alice@exa\tmple.com",
            "alice\u{0}@example.com",
        ] {
            assert!(reason(raw).contains("spaces or control"), "{raw:?}");
        }
    }

    #[test]
    fn a_domain_without_a_dot_is_rejected() {
        assert_eq!(reason("alice@localhost"), "the domain must contain a dot");
    }

    #[test]
    fn a_domain_with_an_empty_label_is_rejected() {
        for raw in [
            "alice@example..com",
            "alice@.example.com",
            "alice@example.com.",
        ] {
            assert!(reason(raw).contains("two dots"), "{raw:?}");
        }
    }

    #[test]
    fn a_domain_label_longer_than_63_bytes_is_rejected() {
        assert!(EmailAddress::parse(&format!("a@{}.com", "b".repeat(63))).is_ok());
        assert!(reason(&format!("a@{}.com", "b".repeat(64))).contains("longer than 63"));
    }

    #[test]
    fn a_label_starting_or_ending_with_a_hyphen_is_rejected() {
        assert!(EmailAddress::parse("a@my-host.example.com").is_ok());
        for raw in ["a@-host.example.com", "a@host-.example.com"] {
            assert!(reason(raw).contains("'-'"), "{raw:?}");
        }
    }

    #[test]
    fn an_internationalized_domain_must_be_given_in_punycode() {
        assert!(reason("hans@bücher.de").contains("punycode"));
        assert!(EmailAddress::parse("hans@xn--bcher-kva.de").is_ok());
    }

    #[test]
    fn other_characters_in_the_domain_are_rejected() {
        assert!(reason("alice@exam_ple.com").contains("may only contain"));
        assert!(reason("alice@[127.0.0.1]").contains("may only contain"));
    }

    #[test]
    fn characters_outside_the_dot_atom_set_are_rejected_in_the_local_part() {
        for raw in [
            "\"al\"@example.com",
            "al(ice)@example.com",
            "al,ice@example.com",
            "jürgen@example.com",
        ] {
            assert!(reason(raw).contains("may only contain"), "{raw:?}");
        }
    }

    #[test]
    fn dots_at_the_edges_or_doubled_in_the_local_part_are_rejected() {
        for raw in [
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
        ] {
            assert!(reason(raw).contains("dot"), "{raw:?}");
        }
    }
}
