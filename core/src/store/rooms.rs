//! The `rooms` tree: per-room state (which span of history is held, whether older history
//! exists on the server, the gaps left by `limited` syncs) and the room's metadata.
//!
//! Gap rules, the heart of "no visible hole":
//! - A gap `(after, before)` means messages with `after < id < before` may be missing locally.
//! - A `limited` sync page whose oldest message is newer than the newest *synced* message opens
//!   a gap between them. Messages received as send confirmations do not count as synced: other
//!   users' messages may lie below them.
//! - Paging back through history with a complete page closes the part of a gap it covers.
//! - Readers never scan across a gap: what is shown is contiguous with what is above it.

use serde::{Deserialize, Serialize};

/// A span of ids that may be missing locally: every `id` with `after < id < before`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Gap {
    pub after: u64,
    pub before: u64,
}

impl Gap {
    /// Whether the open interval holds any integer.
    fn is_empty(&self) -> bool {
        self.before <= self.after.saturating_add(1)
    }

    /// What is left of this gap once every id in `[from, to)` is known to be held.
    fn minus(self, from: u64, to: u64) -> Vec<Gap> {
        if to <= from || to <= self.after.saturating_add(1) || from >= self.before {
            return vec![self];
        }
        let mut left = Vec::new();
        let below = Gap {
            after: self.after,
            before: from.min(self.before),
        };
        if !below.is_empty() {
            left.push(below);
        }
        // `to` itself is unknown: the covered range ends just below it.
        let above = Gap {
            after: to.saturating_sub(1).max(self.after),
            before: self.before,
        };
        if !above.is_empty() {
            left.push(above);
        }
        left
    }
}

/// Metadata of a room as the server describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RoomInfo {
    pub name: Option<String>,
    pub member_ids: Vec<String>,
}

/// Everything the device records about one room (the value of the `rooms` tree).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RoomRecord {
    /// `None` until the server's description was fetched.
    pub info: Option<RoomInfo>,
    /// Number of messages held in the `messages` tree for this room.
    pub count: u64,
    pub newest_held: Option<u64>,
    pub oldest_held: Option<u64>,
    /// Newest id received through sync or history (not through a send confirmation).
    pub synced_newest: Option<u64>,
    /// Whether the server may hold messages older than `oldest_held`.
    pub older_exists: bool,
    /// Spans that may be missing, disjoint, ascending.
    pub gaps: Vec<Gap>,
    /// The user's unread messages in the room, as the server last counted them (format 2).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unread: u32,
    /// Members' read-up-to message ids (format 2).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub receipts: std::collections::BTreeMap<String, u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RoomRecord {
    /// A room seen for the first time. Until a page says otherwise, older history may exist.
    pub fn first_seen() -> Self {
        RoomRecord {
            older_exists: true,
            ..Default::default()
        }
    }

    /// Notes that message `id` is now held (`new` when it was not held before).
    pub fn note_held(&mut self, id: u64, new: bool) {
        if new {
            self.count += 1;
        }
        self.newest_held = Some(self.newest_held.map_or(id, |n| n.max(id)));
        self.oldest_held = Some(self.oldest_held.map_or(id, |o| o.min(id)));
    }

    /// Applies the span of one sync page (ids ascending, already inserted with `note_held`).
    /// `had_messages_below` says whether the room held messages older than the page's first.
    pub fn note_sync_page(
        &mut self,
        first: Option<u64>,
        last: Option<u64>,
        limited: bool,
        had_messages_below: bool,
        known_at_token: bool,
    ) {
        let (Some(first), Some(last)) = (first, last) else {
            if !limited && self.synced_newest.is_none() && self.count == 0 {
                // An empty, complete page for a room we hold nothing of: the room is empty.
                self.older_exists = false;
            }
            return;
        };
        match (limited, self.synced_newest) {
            (true, Some(synced)) if first > synced => self.add_gap(Gap {
                after: synced,
                before: first,
            }),
            (true, Some(_)) => {}
            (true, None) => {
                self.older_exists = true;
                // Only send confirmations are held below (none of it known to be contiguous),
                // or the room was known and empty at the token, so everything below the page
                // is new: either way a gap to fill, not merely older history.
                if had_messages_below || known_at_token {
                    self.add_gap(Gap {
                        after: 0,
                        before: first,
                    });
                }
            }
            (false, None) => {
                // Everything of this room after the token is here, and we held no synced
                // history: the room started after the token (or is complete).
                if !had_messages_below {
                    self.older_exists = false;
                }
            }
            (false, Some(_)) => {}
        }
        self.synced_newest = Some(self.synced_newest.map_or(last, |s| s.max(last)));
    }

    /// Applies a history page going older from `before` (exclusive): every id in
    /// `[first, before)` is now held, or every id below `before` when `!has_more`.
    pub fn note_older_page(
        &mut self,
        before: u64,
        first: Option<u64>,
        last: Option<u64>,
        has_more: bool,
    ) {
        let from = if has_more { first.unwrap_or(before) } else { 0 };
        let gaps = std::mem::take(&mut self.gaps);
        self.gaps = gaps
            .into_iter()
            .flat_map(|g| g.minus(from, before))
            .collect();
        let reaches_oldest = !matches!(self.oldest_held, Some(o) if from > o);
        if reaches_oldest {
            self.older_exists = has_more;
        }
        if let (None, Some(last)) = (self.synced_newest, last) {
            self.synced_newest = Some(last);
        }
    }

    /// Merges receipts: each member's read-up-to only moves forward.
    pub fn note_receipts<'a>(&mut self, receipts: impl IntoIterator<Item = (&'a String, &'a u64)>) {
        for (user, id) in receipts {
            let held = self.receipts.entry(user.clone()).or_insert(0);
            *held = (*held).max(*id);
        }
    }

    /// Records that the oldest messages were evicted; `new_oldest` is the oldest still held.
    pub fn note_evicted(&mut self, removed: u64, new_oldest: Option<u64>) {
        self.count = self.count.saturating_sub(removed);
        self.oldest_held = new_oldest;
        if new_oldest.is_none() {
            self.newest_held = None;
        }
        self.older_exists = true;
        let floor = new_oldest.unwrap_or(u64::MAX);
        self.gaps.retain(|g| g.before > floor);
    }

    fn add_gap(&mut self, gap: Gap) {
        if gap.is_empty() {
            return;
        }
        self.gaps.push(gap);
        self.gaps.sort_by_key(|g| g.after);
        // Merge overlapping spans.
        let mut merged: Vec<Gap> = Vec::with_capacity(self.gaps.len());
        for g in self.gaps.drain(..) {
            match merged.last_mut() {
                Some(last) if g.after < last.before => last.before = last.before.max(g.before),
                _ => merged.push(g),
            }
        }
        self.gaps = merged;
    }

    /// Where a newest-first read starting below `start` (exclusive) must stop: `Visible(floor)`
    /// means ids in `[floor, start)` are contiguous; `Hole` means the ids right below `start` may
    /// be missing, so nothing can be shown from the store.
    pub fn visible_floor(&self, start: u64) -> VisibleFloor {
        let mut floor = 0;
        for g in &self.gaps {
            if g.after.saturating_add(1) >= start {
                continue; // entirely at or above start
            }
            if g.before >= start {
                return VisibleFloor::Hole;
            }
            floor = floor.max(g.before);
        }
        VisibleFloor::Visible(floor)
    }
}

/// See [`RoomRecord::visible_floor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VisibleFloor {
    Visible(u64),
    Hole,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(after: u64, before: u64) -> Gap {
        Gap { after, before }
    }

    #[test]
    fn a_limited_page_above_synced_history_opens_a_gap() {
        let mut r = RoomRecord::first_seen();
        r.note_sync_page(Some(1), Some(10), false, false, false);
        r.note_sync_page(Some(50), Some(60), true, true, false);
        assert_eq!(r.gaps, vec![gap(10, 50)]);
        assert_eq!(r.visible_floor(u64::MAX), VisibleFloor::Visible(50));
        assert_eq!(r.visible_floor(50), VisibleFloor::Hole);
        assert_eq!(r.visible_floor(11), VisibleFloor::Visible(0));
        // The same page again opens nothing new.
        r.note_sync_page(Some(50), Some(60), true, true, false);
        assert_eq!(r.gaps, vec![gap(10, 50)]);
    }

    #[test]
    fn paging_back_closes_gaps_piece_by_piece() {
        let mut r = RoomRecord::first_seen();
        r.note_sync_page(Some(1), Some(10), false, false, false);
        r.note_sync_page(Some(50), Some(60), true, true, false);
        r.note_older_page(50, Some(30), Some(49), true);
        assert_eq!(r.gaps, vec![gap(10, 30)]);
        r.note_older_page(30, Some(5), Some(29), true);
        assert!(r.gaps.is_empty());
        assert_eq!(r.visible_floor(u64::MAX), VisibleFloor::Visible(0));
    }

    #[test]
    fn the_end_of_history_closes_every_gap_below() {
        let mut r = RoomRecord::first_seen();
        r.note_held(100, true);
        r.note_sync_page(Some(200), Some(210), true, true, false);
        assert_eq!(r.gaps, vec![gap(0, 200)]);
        r.note_older_page(200, Some(150), Some(199), false);
        assert!(r.gaps.is_empty());
        assert!(!r.older_exists);
    }

    #[test]
    fn gap_subtraction_keeps_the_uncovered_sides() {
        assert_eq!(gap(10, 50).minus(20, 30), vec![gap(10, 20), gap(29, 50)]);
        assert_eq!(gap(10, 50).minus(0, 60), vec![]);
        assert_eq!(gap(10, 50).minus(50, 60), vec![gap(10, 50)]);
        assert_eq!(gap(10, 50).minus(11, 50), vec![]);
    }

    #[test]
    fn a_limited_page_for_a_room_known_empty_at_the_token_is_a_gap() {
        let mut r = RoomRecord::first_seen();
        r.note_sync_page(None, None, false, false, false);
        r.note_sync_page(Some(500), Some(510), true, false, true);
        assert_eq!(r.gaps, vec![gap(0, 500)]);
        assert_eq!(r.visible_floor(u64::MAX), VisibleFloor::Visible(500));
        r.note_older_page(500, Some(100), Some(499), false);
        assert!(r.gaps.is_empty());
        assert!(!r.older_exists);
    }

    #[test]
    fn initial_pages_set_older_exists_from_limited() {
        let mut r = RoomRecord::first_seen();
        r.note_sync_page(Some(5), Some(9), false, false, false);
        assert!(!r.older_exists);
        let mut r = RoomRecord::first_seen();
        r.note_sync_page(Some(5), Some(9), true, false, false);
        assert!(r.older_exists);
        assert!(r.gaps.is_empty());
    }

    #[test]
    fn eviction_drops_gaps_below_the_new_oldest() {
        let mut r = RoomRecord::first_seen();
        for id in [1, 2, 3, 50, 51] {
            r.note_held(id, true);
        }
        r.gaps = vec![gap(3, 50)];
        r.note_evicted(3, Some(50));
        assert!(r.gaps.is_empty());
        assert_eq!(r.count, 2);
        assert!(r.older_exists);
    }
}
