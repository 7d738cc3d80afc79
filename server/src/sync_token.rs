//! The `/v1/sync` token (`next_batch` / `since`). Clients treat it as opaque; inside it is a
//! position in the server's two global sequences: the last message id the client has seen and the
//! last membership change it has seen (so rooms joined since then can be reported). Both only
//! grow, so a token is valid forever on the database that issued it.

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

#[cfg(test)]
mod tests {
    use super::*;

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
