//! What notification to show for messages found by a background sync, decided once for both
//! platforms: one per room, titled with who wrote, saying what (or how many), the room with the
//! newest message first, none while the app is in the foreground or when the app turned them
//! off. Android's `NotificationManager` and iOS's `UNUserNotificationCenter` only post them.

use crate::model::NewMessagePreview;

/// One local notification to post.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RoomNotification {
    /// Stable per room (`chatsync.room.<room id>`): a newer batch replaces the room's
    /// notification instead of stacking (Android's notification tag, iOS's request identifier).
    pub key: String,
    /// The room, for the tap (Android intent extra / iOS `userInfo` `chatsyncRoomId`).
    pub room_id: String,
    /// Who wrote: the senders' names, in order of first message.
    pub title: String,
    /// The text, or `N new messages: <newest text>`.
    pub body: String,
    /// Server id of the newest message in the room.
    pub newest_message_id: u64,
}

/// The key of a room's notification.
pub fn notification_key(room_id: &str) -> String {
    format!("chatsync.room.{room_id}")
}

/// The notifications for `previews`: one per room, newest room first.
#[uniffi::export]
pub fn plan_notifications(previews: Vec<NewMessagePreview>) -> Vec<RoomNotification> {
    let mut rooms: Vec<(String, Vec<NewMessagePreview>)> = Vec::new();
    for p in previews {
        match rooms.iter_mut().find(|(room, _)| *room == p.room_id) {
            Some((_, list)) => list.push(p),
            None => rooms.push((p.room_id.clone(), vec![p])),
        }
    }
    let mut out: Vec<RoomNotification> = rooms
        .into_iter()
        .filter_map(|(room_id, in_room)| {
            let newest = in_room.iter().max_by_key(|p| p.message_id)?;
            let mut senders: Vec<&str> = Vec::new();
            for p in &in_room {
                if !senders.contains(&p.sender_name.as_str()) {
                    senders.push(&p.sender_name);
                }
            }
            let body = if in_room.len() == 1 {
                newest.preview.clone()
            } else {
                format!("{} new messages: {}", in_room.len(), newest.preview)
            };
            Some(RoomNotification {
                key: notification_key(&room_id),
                title: senders.join(", "),
                body,
                newest_message_id: newest.message_id,
                room_id,
            })
        })
        .collect();
    out.sort_by_key(|n| std::cmp::Reverse(n.newest_message_id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(room: &str, id: u64, sender: &str, text: &str) -> NewMessagePreview {
        NewMessagePreview {
            room_id: room.into(),
            message_id: id,
            sender_id: sender.to_lowercase(),
            sender_name: sender.into(),
            preview: text.into(),
        }
    }

    #[test]
    fn one_per_room_newest_room_first_with_a_stable_key() {
        let out = plan_notifications(vec![
            p("r1", 10, "Bob", "hi"),
            p("r2", 12, "Carol", "lunch?"),
            p("r1", 11, "Bob", "are you there?"),
            p("r1", 13, "Dan", "hey"),
        ]);
        let rooms: Vec<_> = out.iter().map(|n| n.room_id.as_str()).collect();
        assert_eq!(rooms, ["r1", "r2"]);
        assert_eq!(out[0].title, "Bob, Dan");
        assert_eq!(out[0].body, "3 new messages: hey");
        assert_eq!(out[0].key, "chatsync.room.r1");
        assert_eq!(
            (out[1].title.as_str(), out[1].body.as_str()),
            ("Carol", "lunch?")
        );
        assert_eq!(out[1].newest_message_id, 12);
        assert!(plan_notifications(vec![]).is_empty());
    }
}
