//! Account attributes other than credentials.

use std::fmt;

use super::DomainError;

pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// The name shown for an account, as the user wrote it (trimmed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Trims `raw`; blank means "no display name" (`Ok(None)`). At most 100
    /// characters, no control characters, and no invisible characters that
    /// reorder text or break lines, which could disguise the name.
    pub fn parse(raw: &str) -> Result<Option<Self>, DomainError> {
        let name = raw.trim();
        if name.is_empty() {
            return Ok(None);
        }
        if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(DomainError::FieldTooLong {
                field: "display name",
                max: MAX_DISPLAY_NAME_CHARS,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(DomainError::InvalidDisplayName(
                "it must not contain control characters",
            ));
        }
        if name.chars().any(is_bidi_control_or_separator) {
            return Err(DomainError::InvalidDisplayName(
                "it must not contain text direction or line separator characters",
            ));
        }
        Ok(Some(Self(name.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Unicode bidirectional formatting characters (UAX #9) and the line and
/// paragraph separators, none of which `char::is_control` covers.
fn is_bidi_control_or_separator(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            | '\u{2028}' | '\u{2029}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed() {
        let name = DisplayName::parse("  Ada Lovelace \n").unwrap().unwrap();
        assert_eq!(name.as_str(), "Ada Lovelace");
        assert_eq!(name.to_string(), "Ada Lovelace");
        assert_eq!(name.into_inner(), "Ada Lovelace");
    }

    #[test]
    fn a_blank_name_means_no_name() {
        assert_eq!(DisplayName::parse(""), Ok(None));
        assert_eq!(DisplayName::parse(" \t "), Ok(None));
    }

    #[test]
    fn a_name_of_100_characters_in_any_script_is_accepted() {
        let name = "李".repeat(100);
        assert_eq!(DisplayName::parse(&name).unwrap().unwrap().as_str(), name);
    }

    #[test]
    fn a_name_of_101_characters_is_too_long() {
        assert_eq!(
            DisplayName::parse(&"a".repeat(101)),
            Err(DomainError::FieldTooLong {
                field: "display name",
                max: 100
            })
        );
    }

    #[test]
    fn a_name_with_control_characters_is_rejected() {
        for raw in ["Ada\nLovelace", "Ada\u{7}", "Ada\u{9b}x"] {
            assert!(
                matches!(
                    DisplayName::parse(raw),
                    Err(DomainError::InvalidDisplayName(_))
                ),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn a_name_with_a_right_to_left_override_is_rejected() {
        assert!(matches!(
            DisplayName::parse("admin\u{202E}nimda"),
            Err(DomainError::InvalidDisplayName(_))
        ));
    }

    #[test]
    fn right_to_left_scripts_are_accepted() {
        assert!(DisplayName::parse("مريم").unwrap().is_some());
    }
}
