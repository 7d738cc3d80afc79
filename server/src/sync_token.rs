//! The sync tokens (`next_batch` / `since`). Clients treat them as opaque.
//!
//! - v1 ([`SyncPosition`], `s<message id>_<membership seq>`): a position in the server's two
//!   global sequences: the last message id the client has seen and the last membership change it
//!   has seen (so rooms joined since then can be reported).
//! - v2 ([`StreamToken`], `p<pos>_<typing mark>`): a position in the change stream, and the
//!   typing registry's mark (crate::typing), so a typing change that happened between two
//!   requests of a device is not lost. The position is what `chatsync_protocol::v2::parse_token`
//!   reads.
//!
//! Positions only grow, so a token is valid forever on the database that issued it.

use std::fmt;
use std::str::FromStr;

/// A position in the message-id and membership-change sequences.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SyncPosition {
    /// Every message with an id at or below this was covered.
    pub message_id: u64,
    /// Every membership change with a sequence number at or below this was covered.
    pub membership_seq: u64,
}

/// Why a `since` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed sync token")]
pub struct MalformedToken;

impl fmt::Display for SyncPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}_{}", self.message_id, self.membership_seq)
    }
}

impl FromStr for SyncPosition {
    type Err = MalformedToken;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix('s').ok_or(MalformedToken)?;
        let (m, j) = rest.split_once('_').ok_or(MalformedToken)?;
        let digits = |t: &str| -> Result<u64, MalformedToken> {
            // Plain decimal only: no sign, no leading "+", no empty part.
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(MalformedToken);
            }
            t.parse().map_err(|_| MalformedToken)
        };
        Ok(SyncPosition {
            message_id: digits(m)?,
            membership_seq: digits(j)?,
        })
    }
}

/// A v2 sync token: the position in the change stream the device has seen, and the typing mark
/// of the answer that gave it (typing changes after it are news).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamToken {
    /// Every change at or below it was covered.
    pub pos: u64,
    /// The typing registry's mark when the answer was made (0: none, as in a bare `p<pos>`).
    pub typing: u64,
}

impl fmt::Display for StreamToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}_{}", self.pos, self.typing)
    }
}

impl FromStr for StreamToken {
    type Err = MalformedToken;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let pos = chatsync_protocol::v2::parse_token(s).ok_or(MalformedToken)?;
        let typing = match s.split_once('_') {
            Some((_, mark)) => mark.parse().map_err(|_| MalformedToken)?,
            None => 0,
        };
        Ok(StreamToken { pos, typing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_tokens_round_trip_and_v1_tokens_are_not_stream_tokens() {
        let t = StreamToken { pos: 42, typing: 7 };
        assert_eq!(t.to_string(), "p42_7");
        assert_eq!("p42_7".parse::<StreamToken>(), Ok(t));
        assert_eq!(chatsync_protocol::v2::parse_token(&t.to_string()), Some(42));
        assert_eq!(
            "p42".parse::<StreamToken>(),
            Ok(StreamToken { pos: 42, typing: 0 })
        );
        for bad in [
            "s42_7", "p", "p_1", "p1_", "p-1_2", "p1_-2", "p1_2_3", "", "p 1",
        ] {
            assert_eq!(bad.parse::<StreamToken>(), Err(MalformedToken), "{bad}");
        }
    }

    #[test]
    fn round_trips() {
        let p = SyncPosition {
            message_id: 42,
            membership_seq: 7,
        };
        assert_eq!(p.to_string(), "s42_7");
        assert_eq!("s42_7".parse::<SyncPosition>(), Ok(p));
        assert_eq!("s0_0".parse::<SyncPosition>(), Ok(SyncPosition::default()));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "s",
            "s1",
            "42_7",
            "s_7",
            "s4_",
            "s+4_1",
            "s-1_2",
            "s1_2_3",
            "x1_2",
            "s99999999999999999999_1",
        ] {
            assert_eq!(bad.parse::<SyncPosition>(), Err(MalformedToken), "{bad}");
        }
    }
}
