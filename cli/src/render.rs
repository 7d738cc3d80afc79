//! How the core's types look in a terminal. JSON output is the core's own serde shape (what the
//! apps get), so only the human-readable text is decided here.

use std::io::{self, Write};

use chatsync_core::{ChatMessage, MessageState, OutboxEntry, RoomSummary};
use serde::Serialize;

/// Writes `value` as pretty JSON plus a newline to stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)
}

/// `2026-11-25T06:00:00.123Z` -> `2026-11-25 06:00`; anything unexpected is shown as it is.
pub fn short_time(rfc3339: &str) -> String {
    let b = rfc3339.as_bytes();
    if b.len() >= 16 && b[10] == b'T' {
        format!("{} {}", &rfc3339[..10], &rfc3339[11..16])
    } else {
        rfc3339.to_owned()
    }
}

/// The delivery marker shown after a message's text.
pub fn state_marker(message: &ChatMessage) -> String {
    match message.state {
        MessageState::Sent => String::new(),
        MessageState::Pending => "  [pending]".to_owned(),
        MessageState::Failed => match &message.failure_reason {
            Some(reason) => format!("  [failed: {reason}]"),
            None => "  [failed]".to_owned(),
        },
    }
}

/// What happened to a message after it was sent, as a suffix: ` (edited)`, `[👍2*]` (`*`: you).
pub fn annotations(message: &ChatMessage) -> String {
    let mut out = String::new();
    if message.edited_at.is_some() && !message.deleted {
        out.push_str(" (edited)");
    }
    if !message.reactions.is_empty() {
        let shown: Vec<String> = message
            .reactions
            .iter()
            .map(|r| format!("{}{}{}", r.key, r.count, if r.me { "*" } else { "" }))
            .collect();
        out.push_str(&format!("  [{}]", shown.join(" ")));
    }
    out
}

/// A message's text, or `(deleted)` for a tombstone.
pub fn body(message: &ChatMessage) -> String {
    if message.deleted {
        "(deleted)".to_owned()
    } else {
        one_line(&message.text)
    }
}

/// One message on one line: `#12 2026-11-25 06:00 alice: hello (edited)  [👍2*]  [pending]`.
pub fn message_line(message: &ChatMessage) -> String {
    let id = match message.server_id {
        Some(id) => format!("#{id}"),
        None => format!("({})", message.id),
    };
    format!(
        "{id} {} {}: {}{}{}",
        short_time(&message.created_at),
        message.sender.name,
        body(message),
        annotations(message),
        state_marker(message)
    )
}

/// One room on one line: id, members, and the newest message held.
pub fn room_line(room: &RoomSummary) -> String {
    let name = room
        .name
        .as_deref()
        .map(|n| format!(" \"{n}\""))
        .unwrap_or_default();
    let last = match &room.last_message {
        Some(m) => format!("  last: {}: {}", m.sender.name, one_line(&m.text)),
        None => String::new(),
    };
    let unread = if room.unread > 0 {
        format!("  ({} unread)", room.unread)
    } else {
        String::new()
    };
    format!(
        "{}{name}  members: {}{unread}{last}",
        room.id,
        room.member_ids.join(",")
    )
}

/// One outbox entry on one line.
pub fn outbox_line(entry: &OutboxEntry) -> String {
    let state = match entry.state {
        MessageState::Pending => "pending",
        MessageState::Failed => "failed",
        MessageState::Sent => "sent",
    };
    let reason = entry
        .failure_reason
        .as_deref()
        .map(|r| format!("  ({r})"))
        .unwrap_or_default();
    format!(
        "{}  {state}  attempts={}  room={}  {}{reason}",
        entry.local_id,
        entry.attempts,
        entry.room_id,
        one_line(&entry.text)
    )
}

/// Text with its line breaks shown as `⏎`, so one message stays one line.
pub fn one_line(text: &str) -> String {
    text.replace("\r\n", "⏎").replace(['\n', '\r'], "⏎")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatsync_core::ChatUser;

    fn message(state: MessageState, server_id: Option<u64>) -> ChatMessage {
        ChatMessage {
            id: server_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "txn-1".into()),
            server_id,
            local_id: Some("txn-1".into()),
            room_id: "r1".into(),
            text: "hello\nworld".into(),
            created_at: "2026-11-25T06:00:00.123Z".into(),
            sender: ChatUser {
                id: "alice".into(),
                name: "Alice".into(),
                avatar_url: None,
            },
            state,
            failure_reason: (state == MessageState::Failed).then(|| "too large".into()),
            parts: vec![],
            edited_at: None,
            deleted: false,
            reactions: vec![],
            read_by: vec![],
            pending_change: false,
        }
    }

    #[test]
    fn message_lines_show_id_time_sender_text_and_state() {
        assert_eq!(
            message_line(&message(MessageState::Sent, Some(12))),
            "#12 2026-11-25 06:00 Alice: hello⏎world"
        );
        assert_eq!(
            message_line(&message(MessageState::Pending, None)),
            "(txn-1) 2026-11-25 06:00 Alice: hello⏎world  [pending]"
        );
        assert!(message_line(&message(MessageState::Failed, None)).ends_with("[failed: too large]"));
    }

    /// Issue 14 fixes these JSON names for `messages --json` (the core's serde shape, which the
    /// CLI prints as it is): a rename in the core would silently break scripts.
    #[test]
    fn message_json_has_the_names_issue_14_fixes() {
        let mut m = message(MessageState::Sent, Some(12));
        let plain = serde_json::to_value(&m).unwrap();
        assert_eq!(plain["edited"], false);
        assert_eq!(plain["deleted"], false);
        assert_eq!(plain["reactions"], serde_json::json!({}));
        assert_eq!(plain["read_by"], serde_json::json!([]));
        assert!(plain.get("edited_at").is_none(), "{plain}");

        m.edited_at = Some("2026-11-25T06:01:00.000Z".into());
        m.reactions = vec![chatsync_core::ReactionSummary {
            key: "👍".into(),
            count: 2,
            me: true,
        }];
        m.read_by = vec!["bob".into()];
        let changed = serde_json::to_value(&m).unwrap();
        assert_eq!(changed["edited"], "2026-11-25T06:01:00.000Z");
        assert_eq!(
            changed["reactions"],
            serde_json::json!({"👍": {"count": 2, "me": true}})
        );
        assert_eq!(changed["read_by"], serde_json::json!(["bob"]));
    }

    #[test]
    fn odd_timestamps_are_shown_as_they_are() {
        assert_eq!(short_time("yesterday"), "yesterday");
    }
}
