//! Password rules after NIST SP 800-63B §5.1.1 and OWASP ASVS V2.1: a minimum
//! length, a generous maximum, no composition rules, no truncation, and a
//! check against guessable passwords (zxcvbn).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use unicode_normalization::UnicodeNormalization;
use zxcvbn::{Score, zxcvbn};

use super::DomainError;

/// Hard cap on the raw input, checked before anything else so that a huge
/// password is refused without normalizing, scoring or hashing it. 1024 bytes
/// hold 256 characters of any script (at most 4 bytes each in UTF-8).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// zxcvbn's matching grows faster than linearly with the input, so it only
/// scores this many leading characters, bounding the cost of a 256-character
/// password. Appending characters does not make a password easier to guess, so
/// a strong prefix means a strong password; a long password whose first 100
/// characters are guessable is refused, which errs on the safe side.
const ZXCVBN_MAX_CHARS: usize = 100;

/// The lowest zxcvbn score we accept: "safely unguessable" (about 10^8
/// guesses or more), enough against online attacks.
const MIN_SCORE: Score = Score::Three;

/// Rules for choosing a new password. Lengths count Unicode code points after
/// NFKC normalization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 8,
            max_chars: 256,
        }
    }
}

impl PasswordPolicy {
    /// Validates a password being set (sign-up, change, reset).
    ///
    /// `user_inputs` are words zxcvbn should consider guessable for this user,
    /// such as the email's local part and the display name.
    pub fn check_new(&self, raw: &str, user_inputs: &[&str]) -> Result<Password, DomainError> {
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(DomainError::PasswordTooLong {
                max: self.max_chars,
            });
        }
        let normalized = normalize(raw);
        let chars = normalized.chars().count();
        if chars < self.min_chars {
            return Err(DomainError::PasswordTooShort {
                min: self.min_chars,
            });
        }
        if chars > self.max_chars {
            return Err(DomainError::PasswordTooLong {
                max: self.max_chars,
            });
        }
        let entropy = zxcvbn(scored_prefix(&normalized), user_inputs);
        if entropy.score() < MIN_SCORE {
            return Err(DomainError::WeakPassword(weakness(entropy.feedback())));
        }
        Ok(Password(SecretString::from(normalized)))
    }
}

/// A password in NFKC form, ready for the hasher. `Debug` is redacted.
pub struct Password(SecretString);

impl Password {
    /// Accepts a password typed at login: only the byte cap and normalization
    /// apply, so passwords set under an older policy still verify.
    pub fn new_for_login(raw: &str) -> Result<Self, DomainError> {
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(DomainError::PasswordTooLong {
                max: MAX_PASSWORD_BYTES,
            });
        }
        Ok(Self(SecretString::from(normalize(raw))))
    }

    /// The normalized text, for the password hasher only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

/// NFKC, as 800-63B §5.1.1.2 recommends, so that the same password typed on
/// different keyboards or input methods hashes the same.
fn normalize(raw: &str) -> String {
    raw.nfkc().collect()
}

fn scored_prefix(password: &str) -> &str {
    match password.char_indices().nth(ZXCVBN_MAX_CHARS) {
        Some((end, _)) => &password[..end],
        None => password,
    }
}

fn weakness(feedback: Option<&zxcvbn::feedback::Feedback>) -> String {
    let advice = feedback.and_then(|feedback| {
        feedback
            .warning()
            .map(|warning| warning.to_string())
            .or_else(|| feedback.suggestions().first().map(ToString::to_string))
    });
    advice.unwrap_or_else(|| "Add a few more uncommon words.".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    #[test]
    fn the_default_policy_is_8_to_256_characters() {
        assert_eq!(policy().min_chars, 8);
        assert_eq!(policy().max_chars, 256);
    }

    #[test]
    fn password_is_rejected_as_weak() {
        let err = policy().check_new("password", &[]).unwrap_err();
        assert_eq!(
            err,
            DomainError::WeakPassword("This is a top-10 common password.".to_owned())
        );
    }

    #[test]
    fn a_run_of_digits_is_rejected_as_weak() {
        assert!(matches!(
            policy().check_new("12345678", &[]),
            Err(DomainError::WeakPassword(_))
        ));
    }

    #[test]
    fn a_password_built_from_the_users_own_details_is_rejected_as_weak() {
        let password = "margarethe.vonsteinfeld";
        assert!(policy().check_new(password, &[]).is_ok());
        assert!(matches!(
            policy().check_new(password, &["margarethe.vonsteinfeld", "Margarethe"]),
            Err(DomainError::WeakPassword(_))
        ));
    }

    #[test]
    fn a_passphrase_of_four_words_is_accepted() {
        let password = policy()
            .check_new("correct horse battery staple", &[])
            .unwrap();
        assert_eq!(password.expose(), "correct horse battery staple");
    }

    #[test]
    fn a_64_character_random_passphrase_is_accepted() {
        let raw = "q7Vf-Lr2xZp9@Tm4Wn8#Kc3Hs6!Jd1Bg5$Yv0Ne2%Ua7^Oi4&Ew9*Rt3(Pl6)Mk8";
        assert_eq!(raw.chars().count(), 64);
        assert!(policy().check_new(raw, &[]).is_ok());
    }

    #[test]
    fn a_password_of_seven_characters_is_too_short() {
        assert_eq!(
            policy().check_new("Zq7#kP2", &[]).unwrap_err(),
            DomainError::PasswordTooShort { min: 8 }
        );
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let seven_accented = "éàüöñçø";
        assert_eq!(seven_accented.len(), 14);
        assert_eq!(
            policy().check_new(seven_accented, &[]).unwrap_err(),
            DomainError::PasswordTooShort { min: 8 }
        );
    }

    #[test]
    fn a_password_over_1024_bytes_is_refused_before_anything_else() {
        let huge = "a".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(
            policy().check_new(&huge, &[]).unwrap_err(),
            DomainError::PasswordTooLong { max: 256 }
        );
        assert!(matches!(
            Password::new_for_login(&huge),
            Err(DomainError::PasswordTooLong { .. })
        ));
    }

    #[test]
    fn a_password_over_the_character_limit_is_too_long() {
        let raw = "Zq7#kP2x".repeat(33);
        assert_eq!(raw.len(), 264);
        assert_eq!(
            policy().check_new(&raw, &[]).unwrap_err(),
            DomainError::PasswordTooLong { max: 256 }
        );
    }

    #[test]
    fn fullwidth_characters_normalize_to_their_ascii_form() {
        let fullwidth = Password::new_for_login("ｐａｓｓｗｏｒｄ").unwrap();
        let ascii = Password::new_for_login("password").unwrap();
        assert_eq!(fullwidth.expose(), "password");
        assert_eq!(fullwidth.expose(), ascii.expose());

        let new = policy().check_new("ｃｏｒｒｅｃｔ ｈｏｒｓｅ ｂａｔｔｅｒｙ ｓｔａｐｌｅ", &[]);
        assert_eq!(new.unwrap().expose(), "correct horse battery staple");
    }

    #[test]
    fn nothing_is_truncated() {
        let prefix = "correct horse battery staple ".repeat(7);
        let first = format!("{}a{}", &prefix[..199], "z".repeat(50));
        let second = format!("{}b{}", &prefix[..199], "z".repeat(50));
        let first = policy().check_new(&first, &[]).unwrap();
        let second = policy().check_new(&second, &[]).unwrap();
        assert_eq!(first.expose().chars().count(), 250);
        assert_ne!(first.expose(), second.expose());
    }

    #[test]
    fn login_accepts_passwords_the_current_policy_would_refuse() {
        assert_eq!(Password::new_for_login("1234").unwrap().expose(), "1234");
    }

    #[test]
    fn debug_output_does_not_reveal_the_password() {
        let password = Password::new_for_login("hunter2hunter2").unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
    }

    #[test]
    fn the_weak_password_message_does_not_repeat_the_password() {
        let err = policy().check_new("qwertyuiop", &[]).unwrap_err();
        assert!(!err.to_string().contains("qwertyuiop"));
    }
}
