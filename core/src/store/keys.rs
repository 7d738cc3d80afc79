//! Byte encodings of the store's keys. Kept in one place because a key layout is an on-disk
//! format: changing one silently reorders or hides data, so each encoding is pinned by tests.

/// Key of a message: `u16` big-endian length of the room id, the room id, then the server id
/// as `u64` big-endian. All messages of a room form one contiguous range ordered by id, so
/// "newest N" is a reverse range scan and no room's range can bleed into another's.
pub(crate) fn message_key(room_id: &str, id: u64) -> Vec<u8> {
    let mut key = room_prefix(room_id);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// The prefix shared by every message key of `room_id`.
pub(crate) fn room_prefix(room_id: &str) -> Vec<u8> {
    let bytes = room_id.as_bytes();
    // Room ids are at most 255 bytes (the protocol's `limits::check_id`, checked at the API
    // boundary); the u16 prefix holds far more.
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    let mut key = Vec::with_capacity(2 + bytes.len() + 8);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(&bytes[..usize::from(len)]);
    key
}

/// The server id at the end of a message key, or `None` for a malformed key.
pub(crate) fn message_id_of_key(key: &[u8]) -> Option<u64> {
    if key.len() < 10 {
        return None;
    }
    let tail: [u8; 8] = key[key.len() - 8..].try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// Key of an outbox entry: its sequence number, big-endian, so iteration is queue order.
pub(crate) fn outbox_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number of an outbox key.
pub(crate) fn outbox_seq_of_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_have_a_pinned_layout() {
        assert_eq!(
            message_key("ab", 258),
            vec![0, 2, b'a', b'b', 0, 0, 0, 0, 0, 0, 1, 2]
        );
        assert_eq!(
            message_id_of_key(&message_key("room", u64::MAX - 1)),
            Some(u64::MAX - 1)
        );
    }

    #[test]
    fn rooms_never_interleave_even_when_one_id_prefixes_another() {
        // Without the length prefix "a" ++ id could sort inside "ab"'s range.
        let mut keys = vec![
            message_key("ab", 1),
            message_key("a", u64::MAX),
            message_key("a", 0),
            message_key("ab", 0),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                message_key("a", 0),
                message_key("a", u64::MAX),
                message_key("ab", 0),
                message_key("ab", 1)
            ]
        );
        assert!(!message_key("ab", 0).starts_with(&room_prefix("a")));
    }

    #[test]
    fn ids_sort_numerically() {
        assert!(message_key("r", 9) < message_key("r", 10));
        assert!(message_key("r", 255) < message_key("r", 256));
        assert!(outbox_key(9) < outbox_key(300));
        assert_eq!(outbox_seq_of_key(&outbox_key(77)), Some(77));
    }
}
