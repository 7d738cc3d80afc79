//! Checks on client-supplied identifiers and message parts, shared by the routes. Everything a
//! client sends is checked here before it reaches storage, so bad input is a 400/413, never a 500.

use chatsync_protocol::{Part, MAX_TEXT_PART_BYTES, TEXT_PLAIN};

use crate::error::ApiError;

/// Longest user, room or transaction id, in bytes.
pub const MAX_ID_BYTES: usize = chatsync_protocol::MAX_ID_BYTES;
/// Longest room or user name, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Most members a room can be created with.
pub const MAX_ROOM_MEMBERS: usize = 1000;
/// Most parts in one message.
pub const MAX_PARTS: usize = 32;

/// An id is 1..=255 bytes with no control characters, spaces or slashes.
pub fn id(what: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::bad_request(format!("{what} must not be empty")));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(ApiError::bad_request(format!(
            "{what} is longer than {MAX_ID_BYTES} bytes"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/')
    {
        return Err(ApiError::bad_request(format!(
            "{what} must not contain whitespace, control characters or '/'"
        )));
    }
    Ok(())
}

/// A display name: at most 1 KiB, no control characters.
pub fn name(what: &str, value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_NAME_BYTES {
        return Err(ApiError::bad_request(format!(
            "{what} is longer than {MAX_NAME_BYTES} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// Message parts: at least one, at most [`MAX_PARTS`], each with a type; text parts carry content
/// of at most 16 KiB (413 beyond). Parts of other types pass untouched.
pub fn parts(parts: &[Part]) -> Result<(), ApiError> {
    if parts.is_empty() {
        return Err(ApiError::bad_request("a message needs at least one part"));
    }
    if parts.len() > MAX_PARTS {
        return Err(ApiError::bad_request(format!(
            "a message has at most {MAX_PARTS} parts"
        )));
    }
    for part in parts {
        if part.mime_type.is_empty() {
            return Err(ApiError::bad_request("a part's type must not be empty"));
        }
        if part.mime_type == TEXT_PLAIN {
            let Some(content) = &part.content else {
                return Err(ApiError::bad_request("a text/plain part needs content"));
            };
            if content.len() > MAX_TEXT_PART_BYTES {
                return Err(ApiError::payload_too_large(format!(
                    "a text part is at most {MAX_TEXT_PART_BYTES} bytes"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn ids() {
        assert!(id("x", "alice").is_ok());
        assert!(id("x", "alice@example.com").is_ok());
        for bad in ["", "a b", "a/b", "a\nb", &"x".repeat(256)] {
            assert_eq!(
                id("x", bad).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad:?}"
            );
        }
    }

    /// The character class of [`chatsync_protocol::ID_PATTERN`] (what the OpenAPI document
    /// tells clients) refuses exactly the characters [`id`] refuses, over all of Unicode.
    #[test]
    fn the_documented_id_pattern_matches_the_check() {
        let pattern = chatsync_protocol::ID_PATTERN;
        let class = pattern
            .strip_prefix("^[^")
            .and_then(|p| p.strip_suffix("]+$"))
            .expect("^[^...]+$");
        // Parse the class: \uXXXX escapes, plain characters, and ranges between them.
        let mut items: Vec<char> = Vec::new();
        let mut rest = class;
        let mut ranges: Vec<(char, char)> = Vec::new();
        let mut dash = false;
        while !rest.is_empty() {
            if let Some(hex) = rest.strip_prefix("\\u") {
                let c = char::from_u32(u32::from_str_radix(&hex[..4], 16).unwrap()).unwrap();
                items.push(c);
                rest = &hex[4..];
            } else if let Some(r) = rest.strip_prefix('-') {
                dash = true;
                rest = r;
                continue;
            } else {
                let c = rest.chars().next().unwrap();
                items.push(c);
                rest = &rest[c.len_utf8()..];
            }
            let c = items.pop().unwrap();
            if dash {
                let start = ranges.pop().unwrap().0;
                ranges.push((start, c));
                dash = false;
            } else {
                ranges.push((c, c));
            }
        }
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let documented_forbidden = ranges.iter().any(|(a, b)| (*a..=*b).contains(&c));
            let refused = id("x", &c.to_string()).is_err();
            assert_eq!(documented_forbidden, refused, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn text_parts_are_capped_at_16_kib() {
        assert!(parts(&[Part::text("a".repeat(MAX_TEXT_PART_BYTES))]).is_ok());
        let err = parts(&[Part::text("a".repeat(MAX_TEXT_PART_BYTES + 1))]).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(parts(&[]).unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
