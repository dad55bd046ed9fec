//! Time-based one-time passwords (RFC 6238) for the second factor.
//!
//! The clock is an argument: callers pass the Unix time, so tests drive the
//! window without sleeping. HMAC, truncation and the constant-time comparison
//! are totp-rs's; this module fixes the parameters and the input rules.
//! Replay protection (accept each step once) is the caller's: `verify` returns
//! the matched step so it can be stored.

use std::fmt;

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use totp_rs::{Algorithm, Builder, Totp};

use super::{DomainError, EmailAddress};

pub const TOTP_DIGITS: usize = 6;
pub const TOTP_STEP_SECS: u64 = 30;
/// 160 bits, the length RFC 4226 §4 recommends.
pub const TOTP_SECRET_BYTES: usize = 20;

/// Digit counts RFC 4226 §5.3 allows.
const DIGITS_RANGE: std::ops::RangeInclusive<usize> = 6..=8;
/// Steps accepted on either side of the current one, for clock drift and
/// typing time (RFC 6238 §5.2 recommends one).
const SKEW_STEPS: u16 = 1;
/// Byte-mode capacity of the largest QR code (version 40) at level M.
const QR_MAX_BYTES: usize = 2331;
const QR_MIN_PIXELS: u32 = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TotpAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl From<TotpAlgorithm> for Algorithm {
    fn from(algorithm: TotpAlgorithm) -> Self {
        match algorithm {
            TotpAlgorithm::Sha1 => Algorithm::SHA1,
            TotpAlgorithm::Sha256 => Algorithm::SHA256,
            TotpAlgorithm::Sha512 => Algorithm::SHA512,
        }
    }
}

/// A code as the user typed it: only ASCII digits, spaces removed. `Debug`
/// is redacted because a code is a credential until its step has passed.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCode(String);

impl TotpCode {
    /// Parses a 6-digit code; "123 456" is accepted as "123456".
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        Self::parse_with_digits(raw, TOTP_DIGITS)
    }

    /// Parses a code of exactly `digits` digits (6 to 8).
    pub fn parse_with_digits(raw: &str, digits: usize) -> Result<Self, DomainError> {
        if !DIGITS_RANGE.contains(&digits) {
            return Err(DomainError::InvalidTotpCode);
        }
        // Taking one character more than needed is enough to see a wrong
        // length, without copying arbitrarily long input.
        let code: String = raw
            .chars()
            .filter(|c| !c.is_whitespace())
            .take(digits + 1)
            .collect();
        if code.len() != digits || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::InvalidTotpCode);
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpCode([REDACTED])")
    }
}

/// The shared HMAC key. `Debug` is redacted.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A fresh 160-bit secret from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = vec![0; TOTP_SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// Wraps stored key bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding, as authenticator apps expect it.
    pub fn to_base32(&self) -> String {
        totp_rs::Secret::from(self.0.as_slice()).to_base32()
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// TOTP parameters. Valid by construction, so generating never fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TotpVerifier {
    algorithm: TotpAlgorithm,
    digits: u8,
    step: u64,
}

impl TotpVerifier {
    /// What every authenticator app supports: SHA-1, 6 digits, 30 seconds.
    pub fn standard() -> Self {
        Self {
            algorithm: TotpAlgorithm::Sha1,
            digits: TOTP_DIGITS as u8,
            step: TOTP_STEP_SECS,
        }
    }

    /// Other parameters; `None` unless `digits` is 6 to 8 and `step` is not 0.
    pub fn new(algorithm: TotpAlgorithm, digits: usize, step: u64) -> Option<Self> {
        if !DIGITS_RANGE.contains(&digits) || step == 0 {
            return None;
        }
        Some(Self {
            algorithm,
            digits: u8::try_from(digits).ok()?,
            step,
        })
    }

    /// Digits a code has under these parameters, for [`TotpCode::parse_with_digits`].
    pub fn digits(&self) -> usize {
        usize::from(self.digits)
    }

    /// Returns the time step (`unix_time / step`) the code belongs to if it is
    /// the current step or one step either side, otherwise `None`.
    pub fn verify(&self, secret: &TotpSecret, code: &TotpCode, unix_time: u64) -> Option<u64> {
        // The last window step would overflow `u64` past this point.
        unix_time.checked_add(self.step)?;
        self.totp(secret).check(code.as_str(), unix_time)
    }

    /// The code for the step containing `unix_time`.
    pub fn generate(&self, secret: &TotpSecret, unix_time: u64) -> String {
        self.totp(secret).generate(unix_time).to_string()
    }

    fn totp(&self, secret: &TotpSecret) -> Totp {
        // The parameters were checked in `new`, which is all `build` would
        // add besides refusing keys under 128 bits; ours are 160.
        Builder::new()
            .with_algorithm(self.algorithm.into())
            .with_digits(self.digits)
            .with_step_duration(self.step)
            .with_skew(SKEW_STEPS)
            .with_secret(secret.as_bytes())
            .build_noncompliant()
    }
}

/// The `otpauth://totp/Issuer:email?secret=...&issuer=Issuer` URI that
/// authenticator apps import, for the standard parameters.
///
/// The issuer must be non-empty and neither part may contain ':' (the label
/// separator); the email must be a valid [`EmailAddress`].
pub fn otpauth_uri(
    secret: &TotpSecret,
    issuer: &str,
    account_email: &str,
) -> Result<String, DomainError> {
    if issuer.trim().is_empty() {
        return Err(DomainError::InvalidTotpIssuer("it is empty"));
    }
    if issuer.contains(':') {
        return Err(DomainError::InvalidTotpIssuer("it must not contain ':'"));
    }
    let email = EmailAddress::parse(account_email)?;
    Builder::new()
        .with_secret(secret.as_bytes())
        .with_issuer(Some(issuer))
        .with_account_name(email.as_str())
        .build_noncompliant()
        .to_url()
        // Unreachable: the account name is a non-empty address without ':'.
        .map_err(|_| DomainError::InvalidEmail("it cannot be used as an authenticator label"))
}

/// Renders `data` (an otpauth URI) as an SVG QR code of at least 200×200
/// pixels with the standard quiet zone.
pub fn qr_code_svg(data: &str) -> Result<String, DomainError> {
    // With automatic version selection, too much data is the only failure.
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).map_err(|_| {
        DomainError::FieldTooLong {
            field: "QR code data",
            max: QR_MAX_BYTES,
        }
    })?;
    Ok(code
        .render::<svg::Color<'_>>()
        .min_dimensions(QR_MIN_PIXELS, QR_MIN_PIXELS)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1_SEED: &[u8] = b"12345678901234567890";
    const SHA256_SEED: &[u8] = b"12345678901234567890123456789012";
    const SHA512_SEED: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    /// RFC 6238 Appendix B: (time, SHA-1, SHA-256, SHA-512).
    const RFC_6238_VECTORS: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];

    fn rfc_cases() -> Vec<(TotpAlgorithm, &'static [u8], u64, &'static str)> {
        RFC_6238_VECTORS
            .iter()
            .flat_map(|&(time, sha1, sha256, sha512)| {
                [
                    (TotpAlgorithm::Sha1, SHA1_SEED, time, sha1),
                    (TotpAlgorithm::Sha256, SHA256_SEED, time, sha256),
                    (TotpAlgorithm::Sha512, SHA512_SEED, time, sha512),
                ]
            })
            .collect()
    }

    fn sha1_secret() -> TotpSecret {
        TotpSecret::from_bytes(SHA1_SEED.to_vec())
    }

    fn code(raw: &str) -> TotpCode {
        TotpCode::parse(raw).unwrap()
    }

    #[test]
    fn the_rfc_6238_vectors_are_generated() {
        for (algorithm, seed, time, expected) in rfc_cases() {
            let verifier = TotpVerifier::new(algorithm, 8, 30).unwrap();
            let secret = TotpSecret::from_bytes(seed.to_vec());
            assert_eq!(
                verifier.generate(&secret, time),
                expected,
                "{algorithm:?} at {time}"
            );
        }
    }

    #[test]
    fn the_rfc_6238_vectors_verify_in_their_own_step() {
        for (algorithm, seed, time, expected) in rfc_cases() {
            let verifier = TotpVerifier::new(algorithm, 8, 30).unwrap();
            let secret = TotpSecret::from_bytes(seed.to_vec());
            let code = TotpCode::parse_with_digits(expected, 8).unwrap();
            assert_eq!(
                verifier.verify(&secret, &code, time),
                Some(time / 30),
                "{algorithm:?} at {time}"
            );
        }
    }

    #[test]
    fn an_rfc_code_is_refused_under_another_algorithm() {
        let verifier = TotpVerifier::new(TotpAlgorithm::Sha256, 8, 30).unwrap();
        let sha1_code = TotpCode::parse_with_digits("94287082", 8).unwrap();
        assert_eq!(verifier.verify(&sha1_secret(), &sha1_code, 59), None);
    }

    #[test]
    fn the_window_accepts_the_previous_and_current_step_and_returns_them() {
        let verifier = TotpVerifier::standard();
        assert_eq!(
            verifier.verify(&sha1_secret(), &code("287082"), 59),
            Some(1)
        );
        assert_eq!(
            verifier.verify(&sha1_secret(), &code("755224"), 59),
            Some(0)
        );
    }

    #[test]
    fn the_window_accepts_the_next_step() {
        let verifier = TotpVerifier::standard();
        let next = verifier.generate(&sha1_secret(), 60);
        assert_eq!(verifier.verify(&sha1_secret(), &code(&next), 59), Some(2));
    }

    #[test]
    fn a_code_two_steps_ahead_is_refused() {
        let verifier = TotpVerifier::standard();
        // 969429 is the code of step 3 (t = 90..120); at t = 59 the window is 0..=2.
        assert_eq!(verifier.generate(&sha1_secret(), 90), "969429");
        assert_eq!(verifier.verify(&sha1_secret(), &code("969429"), 59), None);
        assert_eq!(
            verifier.verify(&sha1_secret(), &code("969429"), 60),
            Some(3)
        );
    }

    #[test]
    fn a_code_with_a_leading_zero_verifies() {
        let verifier = TotpVerifier::standard();
        let secret = sha1_secret();
        let time = (0..10_000u64)
            .map(|step| step * TOTP_STEP_SECS)
            .find(|&time| verifier.generate(&secret, time).starts_with('0'))
            .unwrap();
        let with_zero = verifier.generate(&secret, time);
        assert_eq!(with_zero.len(), 6);

        let step = verifier.verify(&secret, &code(&with_zero), time);
        assert_eq!(step, Some(time / TOTP_STEP_SECS));
        assert_eq!(
            TotpCode::parse(&with_zero[1..]).unwrap_err(),
            DomainError::InvalidTotpCode
        );
    }

    #[test]
    fn a_wrong_code_is_refused() {
        let verifier = TotpVerifier::standard();
        assert_eq!(verifier.verify(&sha1_secret(), &code("000000"), 59), None);
    }

    #[test]
    fn a_code_of_another_length_than_the_verifier_expects_is_refused() {
        let code = TotpCode::parse_with_digits("94287082", 8).unwrap();
        assert_eq!(
            TotpVerifier::standard().verify(&sha1_secret(), &code, 59),
            None
        );
    }

    #[test]
    fn times_at_the_end_of_u64_are_refused_instead_of_overflowing() {
        let verifier = TotpVerifier::new(TotpAlgorithm::Sha1, 6, 1).unwrap();
        assert_eq!(
            verifier.verify(&sha1_secret(), &code("123456"), u64::MAX),
            None
        );
    }

    #[test]
    fn a_code_with_seven_digits_is_rejected() {
        assert_eq!(
            TotpCode::parse("1234567"),
            Err(DomainError::InvalidTotpCode)
        );
    }

    #[test]
    fn a_code_with_five_digits_is_rejected() {
        assert_eq!(TotpCode::parse("12345"), Err(DomainError::InvalidTotpCode));
    }

    #[test]
    fn a_code_with_non_digits_is_rejected() {
        for raw in ["12345a", "+12345", "١٢٣٤٥٦", "12-456", ""] {
            assert_eq!(
                TotpCode::parse(raw),
                Err(DomainError::InvalidTotpCode),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn spaces_inside_and_around_a_code_are_ignored() {
        assert_eq!(TotpCode::parse(" 123 456\n").unwrap().as_str(), "123456");
    }

    #[test]
    fn eight_digit_codes_parse_when_asked_for() {
        assert_eq!(
            TotpCode::parse_with_digits("1234 5678", 8)
                .unwrap()
                .as_str(),
            "12345678"
        );
        assert!(TotpCode::parse_with_digits("12345678", 9).is_err());
    }

    #[test]
    fn verifier_parameters_outside_the_rfc_are_refused() {
        assert!(TotpVerifier::new(TotpAlgorithm::Sha1, 5, 30).is_none());
        assert!(TotpVerifier::new(TotpAlgorithm::Sha1, 9, 30).is_none());
        assert!(TotpVerifier::new(TotpAlgorithm::Sha1, 6, 0).is_none());
        assert_eq!(
            TotpVerifier::new(TotpAlgorithm::Sha1, 6, 30),
            Some(TotpVerifier::standard())
        );
    }

    #[test]
    fn a_generated_secret_has_160_bits_and_differs_each_time() {
        let first = TotpSecret::generate().unwrap();
        let second = TotpSecret::generate().unwrap();
        assert_eq!(first.as_bytes().len(), TOTP_SECRET_BYTES);
        assert_ne!(first.as_bytes(), second.as_bytes());
    }

    #[test]
    fn the_secret_is_shown_in_unpadded_base32() {
        assert_eq!(
            sha1_secret().to_base32(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        let odd = TotpSecret::from_bytes(b"ab".to_vec());
        assert_eq!(odd.to_base32(), "MFRA");
    }

    #[test]
    fn debug_output_does_not_reveal_secrets_or_codes() {
        assert_eq!(format!("{:?}", sha1_secret()), "TotpSecret([REDACTED])");
        assert_eq!(format!("{:?}", code("287082")), "TotpCode([REDACTED])");
    }

    #[test]
    fn the_otpauth_uri_carries_secret_issuer_and_email_label() {
        let uri = otpauth_uri(&sha1_secret(), "recapp", "Alice@Example.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/recapp:alice%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("issuer=recapp"), "{uri}");
    }

    #[test]
    fn the_otpauth_uri_percent_encodes_the_issuer() {
        let uri = otpauth_uri(&sha1_secret(), "recapp dev", "alice@example.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/recapp%20dev:alice%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains("issuer=recapp%20dev"), "{uri}");
    }

    #[test]
    fn the_otpauth_uri_round_trips_through_totp_rs() {
        let secret = TotpSecret::generate().unwrap();
        let uri = otpauth_uri(&secret, "recapp", "alice@example.com").unwrap();
        let parsed = Totp::from_url(&uri).unwrap();
        assert_eq!(parsed.secret().as_bytes(), secret.as_bytes());
        assert_eq!(parsed.account_name(), "alice@example.com");
        assert_eq!(parsed.issuer(), Some("recapp"));
        assert_eq!(
            parsed.generate(1_700_000_000).to_string(),
            TotpVerifier::standard().generate(&secret, 1_700_000_000)
        );
    }

    #[test]
    fn an_issuer_with_a_colon_or_nothing_in_it_is_refused() {
        assert!(matches!(
            otpauth_uri(&sha1_secret(), "re:capp", "alice@example.com"),
            Err(DomainError::InvalidTotpIssuer(_))
        ));
        assert!(matches!(
            otpauth_uri(&sha1_secret(), " ", "alice@example.com"),
            Err(DomainError::InvalidTotpIssuer(_))
        ));
    }

    #[test]
    fn an_invalid_account_email_is_refused() {
        assert!(matches!(
            otpauth_uri(&sha1_secret(), "recapp", "alice:x@example.com"),
            Err(DomainError::InvalidEmail(_))
        ));
    }

    #[test]
    fn the_qr_code_is_an_svg_of_at_least_200_pixels() {
        let uri = otpauth_uri(&sha1_secret(), "recapp", "alice@example.com").unwrap();
        let svg = qr_code_svg(&uri).unwrap();
        assert!(svg.starts_with("<?xml") || svg.starts_with("<svg"));
        assert!(svg.contains("<svg"));
        let width: u32 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!(width >= 200, "{width}");
    }

    #[test]
    fn data_too_long_for_a_qr_code_is_refused() {
        let too_long = "x".repeat(QR_MAX_BYTES + 1);
        assert_eq!(
            qr_code_svg(&too_long),
            Err(DomainError::FieldTooLong {
                field: "QR code data",
                max: QR_MAX_BYTES
            })
        );
    }
}
