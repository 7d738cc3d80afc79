//! What went wrong, as one line on stderr and an exit code a script can branch on. The mapping
//! from the core's [`ChatError`] lives here and nowhere else, so every command reports the same
//! failure the same way.

use std::fmt;
use std::process::ExitCode;

use chatsync_core::ChatError;

/// The documented exit codes (see `chatsync --help` and cli/README.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    Internal = 1,
    Usage = 2,
    Offline = 3,
    Refused = 4,
    Storage = 5,
    Busy = 6,
    Protocol = 7,
    NotFound = 8,
    /// `doctor` rebuilt the store but could not read all of it.
    Salvaged = 9,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// A failed command: the line to print and the exit code.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    /// A bad flag value or input the core would refuse.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    /// A failure that fits no other code.
    pub fn internal(message: impl Into<String>) -> Self {
        CliError {
            exit: Exit::Internal,
            message: message.into(),
        }
    }

    /// The same error with `context` (what the command was doing) in front.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The exit code for an error of the core.
pub fn exit_for(error: &ChatError) -> Exit {
    match error {
        ChatError::Offline(_) | ChatError::Unavailable { .. } => Exit::Offline,
        ChatError::Unauthorized(_) | ChatError::Rejected { .. } => Exit::Refused,
        ChatError::NotFound(_) => Exit::NotFound,
        ChatError::Protocol(_) => Exit::Protocol,
        ChatError::Storage(_) => Exit::Storage,
        ChatError::InvalidInput(_) => Exit::Usage,
        ChatError::Busy(_) => Exit::Busy,
        ChatError::ShutDown | ChatError::Internal(_) => Exit::Internal,
    }
}

impl From<ChatError> for CliError {
    fn from(error: ChatError) -> Self {
        let exit = exit_for(&error);
        // The core's messages are one line already; keep them so, whatever the server sent.
        let mut message = error.to_string().replace(['\n', '\r'], " ");
        if let ChatError::Storage(text) = &error {
            if let Some(advice) = storage_advice(text) {
                message.push_str("; ");
                message.push_str(advice);
            }
        }
        CliError { exit, message }
    }
}

/// What to do about a storage error. A full or read-only disk and a store from a newer version
/// say so themselves (nothing is damaged); anything else is a store to check and repair.
fn storage_advice(text: &str) -> Option<&'static str> {
    let fine_once_fixed = ["disk is full", "read-only", "newer than this build"];
    if fine_once_fixed.iter().any(|f| text.contains(f)) {
        return None;
    }
    Some("`chatsync doctor` checks the store and rebuilds it if it is damaged, keeping every queued message it can read")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_has_its_documented_code() {
        let cases = [
            (ChatError::Offline("x".into()), 3),
            (
                ChatError::Unavailable {
                    status: 503,
                    retry_after_secs: Some(7),
                    reason: "x".into(),
                },
                3,
            ),
            (ChatError::Unauthorized("x".into()), 4),
            (
                ChatError::Rejected {
                    code: "forbidden".into(),
                    reason: "x".into(),
                },
                4,
            ),
            (ChatError::Storage("x".into()), 5),
            (ChatError::Busy("x".into()), 6),
            (ChatError::Protocol("x".into()), 7),
            (ChatError::NotFound("x".into()), 8),
            (ChatError::InvalidInput("x".into()), 2),
            (ChatError::ShutDown, 1),
        ];
        for (error, code) in cases {
            assert_eq!(CliError::from(error.clone()).exit as u8, code, "{error:?}");
        }
    }

    #[test]
    fn storage_errors_say_what_to_do() {
        let damaged = CliError::from(ChatError::Storage("store is corrupt: x".into()));
        assert!(
            damaged.message.contains("chatsync doctor"),
            "{}",
            damaged.message
        );
        for fine in [
            "the disk is full (No space left on device (os error 28)); free some space",
            "store format version 9 is newer than this build supports (1); update the app",
        ] {
            let e = CliError::from(ChatError::Storage(fine.into()));
            assert!(!e.message.contains("doctor"), "{}", e.message);
        }
    }

    #[test]
    fn messages_stay_on_one_line() {
        let e = CliError::from(ChatError::Protocol("line one\nline two".into())).context("sync");
        assert_eq!(e.message, "sync: protocol error: line one line two");
    }
}
