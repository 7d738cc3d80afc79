//! The benchmark's data: deterministic messages (a ~60-character text in protocol v1's message
//! shape, about 230 bytes of JSON), and the checks every scenario uses to prove it read back
//! exactly what was written.

use chatsync_protocol::{Message, Part};

/// Room id of room number `i` (fixed width, so every room id costs the same bytes).
pub fn room_id(i: usize) -> String {
    format!("room-{i:03}")
}

/// The text of message `id`: what a chat message reads like, ~60 characters.
pub fn text_of(id: u64) -> String {
    format!("message {id:09}: see you at the station at half past, ok?")
}

/// Message `id` of `room`, as the server would send it.
pub fn message(room: &str, id: u64) -> Message {
    let second = id % 60;
    let minute = (id / 60) % 60;
    let stamp = format!("2026-11-25T06:{minute:02}:{second:02}.000Z");
    Message {
        id,
        user_id: if id.is_multiple_of(2) { "alice" } else { "bob" }.to_owned(),
        room_id: room.to_owned(),
        parts: vec![Part::text(text_of(id))],
        created_at: stamp.clone(),
        updated_at: stamp,
    }
}

/// `total` messages with ids 1..=total spread round-robin over `rooms` rooms (id `i` goes to
/// room `i % rooms`), as an interleaved real history would be.
pub fn history(total: u64, rooms: usize) -> impl Iterator<Item = Message> {
    (1..=total).map(move |id| message(&room_id((id % rooms as u64) as usize), id))
}

/// The id of the newest message of room `r` in [`history`]`(total, rooms)`.
pub fn newest_id_of_room(total: u64, rooms: usize, r: usize) -> u64 {
    let rooms = rooms as u64;
    let r = r as u64;
    // Largest id <= total with id % rooms == r.
    let base = total - (total % rooms);
    if base + r <= total {
        base + r
    } else {
        base + r - rooms
    }
}

/// Checks that `page` is the newest `len` messages of room `r` of [`history`]`(total, rooms)`,
/// newest first, with the expected texts. The error says what differs.
pub fn check_newest_page(
    page: &[(u64, String)],
    total: u64,
    rooms: usize,
    r: usize,
    len: usize,
) -> Result<(), String> {
    if page.len() != len {
        return Err(format!("expected {len} messages, read {}", page.len()));
    }
    let mut expected = newest_id_of_room(total, rooms, r);
    for (id, text) in page {
        if *id != expected || *text != text_of(expected) {
            return Err(format!("expected message {expected}, read {id} ({text:?})"));
        }
        expected = expected.saturating_sub(rooms as u64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_about_230_bytes_of_json() {
        let len = serde_json::to_vec(&message(&room_id(7), 123_456))
            .unwrap()
            .len();
        assert!((210..=250).contains(&len), "{len} bytes");
    }

    #[test]
    fn newest_id_of_each_room_matches_the_history() {
        for (total, rooms) in [(1_000u64, 100usize), (1_003, 7), (20, 20), (25, 20)] {
            for r in 0..rooms {
                let newest = history(total, rooms)
                    .filter(|m| m.room_id == room_id(r))
                    .map(|m| m.id)
                    .max()
                    .unwrap();
                assert_eq!(
                    newest_id_of_room(total, rooms, r),
                    newest,
                    "{total} {rooms} {r}"
                );
            }
        }
    }

    #[test]
    fn a_wrong_page_is_refused() {
        let page: Vec<_> = [30u64, 20, 10].iter().map(|&i| (i, text_of(i))).collect();
        assert!(check_newest_page(&page, 30, 10, 0, 3).is_ok());
        assert!(check_newest_page(&page[1..], 30, 10, 0, 2).is_err());
        let mut bad = page.clone();
        bad[1].1 = "tampered".into();
        assert!(check_newest_page(&bad, 30, 10, 0, 3).is_err());
    }
}
