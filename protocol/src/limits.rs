//! The protocol's input rules, in one place: the server refuses what breaks them (400, or 413
//! for sizes), and the device core refuses the same input before queueing it, so a message the
//! server would refuse never sits in an outbox. docs/protocol.md and the OpenAPI document state
//! the same numbers.

use crate::{Part, MAX_TEXT_PART_BYTES, TEXT_PLAIN};

/// Longest user, room or transaction id, in bytes.
pub const MAX_ID_BYTES: usize = 255;
/// Longest room or user name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Most members a room can be created with.
pub const MAX_ROOM_MEMBERS: usize = 1000;
/// Most parts in one message.
pub const MAX_PARTS: usize = 32;

/// Why an input breaks the protocol's rules. `what` names the input ("room id", ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Empty where something is required.
    Empty {
        /// The input.
        what: &'static str,
    },
    /// Longer than its limit, in bytes.
    TooLong {
        /// The input.
        what: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
    /// Contains a character the rule forbids.
    BadCharacter {
        /// The input.
        what: &'static str,
        /// Which characters are forbidden.
        rule: &'static str,
    },
    /// Too many of something (parts, members).
    TooMany {
        /// The input.
        what: &'static str,
        /// The most allowed.
        limit: usize,
    },
    /// A part is malformed (no type, a text part without content).
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// A text part over [`MAX_TEXT_PART_BYTES`]: the server answers 413, not 400.
    TooLarge {
        /// The input.
        what: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Empty { what } => write!(f, "{what} must not be empty"),
            Invalid::TooLong { what, limit } => write!(f, "{what} is longer than {limit} bytes"),
            Invalid::BadCharacter { what, rule } => write!(f, "{what} must not contain {rule}"),
            Invalid::TooMany { what, limit } => write!(f, "at most {limit} {what}"),
            Invalid::Malformed { reason } => f.write_str(reason),
            Invalid::TooLarge { what, limit } => write!(f, "{what} is at most {limit} bytes"),
        }
    }
}

impl std::error::Error for Invalid {}

/// An id (user, room, transaction): 1 to [`MAX_ID_BYTES`] bytes, no whitespace, control
/// characters or `/` (ids travel in URL paths).
pub fn check_id(what: &'static str, value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::Empty { what });
    }
    if value.len() > MAX_ID_BYTES {
        return Err(Invalid::TooLong {
            what,
            limit: MAX_ID_BYTES,
        });
    }
    if value
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/')
    {
        return Err(Invalid::BadCharacter {
            what,
            rule: "whitespace, control characters or '/'",
        });
    }
    Ok(())
}

/// A display name: at most [`MAX_NAME_BYTES`] bytes, no control characters.
pub fn check_name(what: &'static str, value: &str) -> Result<(), Invalid> {
    if value.len() > MAX_NAME_BYTES {
        return Err(Invalid::TooLong {
            what,
            limit: MAX_NAME_BYTES,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(Invalid::BadCharacter {
            what,
            rule: "control characters",
        });
    }
    Ok(())
}

/// Message parts: at least one, at most [`MAX_PARTS`], each with a type; a `text/plain` part
/// carries content of at most [`MAX_TEXT_PART_BYTES`]. Parts of other types pass untouched.
pub fn check_parts(parts: &[Part]) -> Result<(), Invalid> {
    if parts.is_empty() {
        return Err(Invalid::Malformed {
            reason: "a message needs at least one part",
        });
    }
    if parts.len() > MAX_PARTS {
        return Err(Invalid::TooMany {
            what: "parts in a message",
            limit: MAX_PARTS,
        });
    }
    for part in parts {
        if part.mime_type.is_empty() {
            return Err(Invalid::Malformed {
                reason: "a part's type must not be empty",
            });
        }
        if part.mime_type == TEXT_PLAIN {
            let Some(content) = &part.content else {
                return Err(Invalid::Malformed {
                    reason: "a text/plain part needs content",
                });
            };
            if content.len() > MAX_TEXT_PART_BYTES {
                return Err(Invalid::TooLarge {
                    what: "a text part",
                    limit: MAX_TEXT_PART_BYTES,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_documented_rule() {
        assert!(check_id("room id", "r1").is_ok());
        assert!(check_id("room id", &"é".repeat(127)).is_ok()); // 254 bytes
        assert_eq!(
            check_id("room id", ""),
            Err(Invalid::Empty { what: "room id" })
        );
        assert!(matches!(
            check_id("room id", &"x".repeat(256)),
            Err(Invalid::TooLong { .. })
        ));
        for bad in ["a b", "a/b", "a\nb", "a\u{0}b", "a\u{a0}b"] {
            assert!(
                matches!(check_id("room id", bad), Err(Invalid::BadCharacter { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_id("room id", "a/b").unwrap_err().to_string(),
            "room id must not contain whitespace, control characters or '/'"
        );
    }

    #[test]
    fn parts_follow_the_documented_rule() {
        assert!(check_parts(&[Part::text("hi")]).is_ok());
        assert!(matches!(check_parts(&[]), Err(Invalid::Malformed { .. })));
        let big = Part::text("x".repeat(MAX_TEXT_PART_BYTES + 1));
        assert!(matches!(check_parts(&[big]), Err(Invalid::TooLarge { .. })));
        let many = vec![Part::text("x"); MAX_PARTS + 1];
        assert!(matches!(check_parts(&many), Err(Invalid::TooMany { .. })));
    }
}
