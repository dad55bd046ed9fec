//! Single-use recovery codes for when the authenticator is lost.
//!
//! Each code carries 80 random bits, written as 16 characters of Crockford's
//! base32 (digits and lowercase letters without i, l, o and u) and shown as
//! `xxxx-xxxx-xxxx-xxxx`.
//!
//! Only [`RecoveryCode::hash`] is stored. 80 bits cannot be brute-forced, so
//! a fast, unsalted SHA-256 is enough (a slow password hash protects
//! low-entropy secrets) and lets the store look a code up by its hash.

use std::fmt;

use sha2::{Digest, Sha256};

use super::DomainError;

pub const RECOVERY_CODE_COUNT: usize = 10;

const CODE_BYTES: usize = 10;
const CODE_CHARS: usize = 16;
const GROUP_CHARS: usize = 4;
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A recovery code in canonical form: 16 lowercase base32 characters, no
/// hyphens. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; CODE_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(encode(bytes)))
    }

    /// [`RECOVERY_CODE_COUNT`] distinct codes.
    pub fn generate_set() -> Result<Vec<Self>, getrandom::Error> {
        let mut codes: Vec<Self> = Vec::with_capacity(RECOVERY_CODE_COUNT);
        while codes.len() < RECOVERY_CODE_COUNT {
            let code = Self::generate()?;
            // A repeat of 80 random bits means a broken random source.
            if codes.contains(&code) {
                return Err(getrandom::Error::UNEXPECTED);
            }
            codes.push(code);
        }
        Ok(codes)
    }

    /// Reads a code as a user types it: any case, hyphens and spaces ignored,
    /// and `o`, `i`, `l` read as the digits they resemble.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let mut canonical = String::with_capacity(CODE_CHARS);
        for c in raw.chars().filter(|&c| c != '-' && !c.is_whitespace()) {
            let c = match c.to_ascii_lowercase() {
                'o' => '0',
                'i' | 'l' => '1',
                c => c,
            };
            if canonical.len() == CODE_CHARS || !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
                return Err(DomainError::InvalidRecoveryCode);
            }
            canonical.push(c);
        }
        if canonical.len() != CODE_CHARS {
            return Err(DomainError::InvalidRecoveryCode);
        }
        Ok(Self(canonical))
    }

    /// The grouped form shown to the user, e.g. `7k2m-9x4p-q0rt-w3vz`.
    pub fn display(&self) -> String {
        let mut shown = String::with_capacity(CODE_CHARS + CODE_CHARS / GROUP_CHARS - 1);
        for (i, c) in self.0.chars().enumerate() {
            if i > 0 && i % GROUP_CHARS == 0 {
                shown.push('-');
            }
            shown.push(c);
        }
        shown
    }

    /// SHA-256 of the canonical form, for storage and lookup.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode([REDACTED])")
    }
}

/// 80 bits as 16 groups of 5, most significant first.
fn encode(bytes: [u8; CODE_BYTES]) -> String {
    let bits = bytes
        .iter()
        .fold(0u128, |acc, &byte| (acc << 8) | u128::from(byte));
    (0..CODE_CHARS)
        .rev()
        .map(|group| char::from(ALPHABET[((bits >> (group * 5)) & 0x1f) as usize]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_code_has_16_characters_from_the_alphabet() {
        let code = RecoveryCode::generate().unwrap();
        assert_eq!(code.0.len(), 16);
        assert!(code.0.bytes().all(|b| ALPHABET.contains(&b)));
    }

    #[test]
    fn encoding_uses_all_80_bits_in_order() {
        assert_eq!(encode([0; 10]), "0000000000000000");
        assert_eq!(encode([0xff; 10]), "zzzzzzzzzzzzzzzz");
        assert_eq!(encode([0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), "0000000000000001");
        assert_eq!(
            encode([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            "g000000000000000"
        );
    }

    #[test]
    fn a_code_is_displayed_in_four_groups() {
        let code = RecoveryCode::parse("abcd0123efgh4567").unwrap();
        assert_eq!(code.display(), "abcd-0123-efgh-4567");
    }

    #[test]
    fn the_displayed_form_parses_back_to_the_same_code() {
        let code = RecoveryCode::generate().unwrap();
        assert_eq!(RecoveryCode::parse(&code.display()).unwrap(), code);
    }

    #[test]
    fn parsing_ignores_case_hyphens_and_spaces() {
        let expected = RecoveryCode::parse("abcd0123efgh4567").unwrap();
        for raw in [
            "ABCD-0123-EFGH-4567",
            " abcd 0123 efgh 4567 ",
            "abcd0123-EFGH4567",
        ] {
            assert_eq!(RecoveryCode::parse(raw).unwrap(), expected, "{raw:?}");
        }
    }

    #[test]
    fn letters_that_look_like_digits_are_read_as_digits() {
        let expected = RecoveryCode::parse("1000-1000-1000-1000").unwrap();
        assert_eq!(
            RecoveryCode::parse("iooo-LOOO-lOoO-I000").unwrap(),
            expected
        );
    }

    #[test]
    fn a_code_of_the_wrong_length_is_rejected() {
        for raw in ["", "abcd-0123-efgh-456", "abcd-0123-efgh-45678"] {
            assert_eq!(
                RecoveryCode::parse(raw),
                Err(DomainError::InvalidRecoveryCode),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn characters_outside_the_alphabet_are_rejected() {
        for raw in [
            "abcd-0123-efgh-456u",
            "abcd-0123-efgh-456!",
            "abcd-0123-efgh-456é",
        ] {
            assert_eq!(
                RecoveryCode::parse(raw),
                Err(DomainError::InvalidRecoveryCode),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn the_hash_is_sha256_of_the_canonical_form() {
        let code = RecoveryCode::parse("ABCD-0123-EFGH-4567").unwrap();
        let expected: [u8; 32] = Sha256::digest(b"abcd0123efgh4567").into();
        assert_eq!(code.hash(), expected);
        assert_eq!(
            code.hash(),
            RecoveryCode::parse("abcd0123efgh4567").unwrap().hash()
        );
    }

    #[test]
    fn a_set_has_ten_distinct_codes() {
        let codes = RecoveryCode::generate_set().unwrap();
        assert_eq!(codes.len(), RECOVERY_CODE_COUNT);
        for (i, code) in codes.iter().enumerate() {
            assert!(!codes[i + 1..].contains(code));
        }
    }

    #[test]
    fn debug_output_does_not_reveal_the_code() {
        let code = RecoveryCode::parse("abcd0123efgh4567").unwrap();
        assert_eq!(format!("{code:?}"), "RecoveryCode([REDACTED])");
    }
}
