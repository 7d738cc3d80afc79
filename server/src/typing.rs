//! Who is typing where (protocol v2): in memory only, never stored; a notice lasts
//! [`TYPING_TTL_MS`] unless renewed; at most one notice per user and room per
//! [`TYPING_MIN_INTERVAL_MS`] (a flood gets 429s). Each change of a room's typing set (a start,
//! a stop, an expiry; not a renewal) wakes the room's parked long-polls through the notifier.
//!
//! **The mark.** Typing is not in the change stream, yet a device must not miss a start or a
//! stop that happens between two of its syncs. Every change of a typing set takes the next
//! number of one counter (the mark); a v2 token carries the mark of the answer that gave it, and
//! the next sync reports the rooms whose typing changed after it. Marks are the wall clock in
//! microseconds (or the previous mark plus one, when that is more), so marks of an earlier run of
//! the server are below every mark of this one, and marks of several instances on one database
//! compare: a token from another instance is not mistaken for an old one. What is older than the
//! registry remembers (an earlier run, a change forgotten after [`FORGET_AFTER`]) cannot be told
//! apart: such a token gets every room of the user ([`Changed::All`]), with its typing list, once.
//! A mark ahead of the registry's (another instance's) reports nothing and is kept.
//!
//! Times are the runtime's clock (`tokio::time`), like long-poll holds, so a test on a paused
//! clock drives expiry and the rate limit without sleeping.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatsync_protocol::v2::{TYPING_MIN_INTERVAL_MS, TYPING_TTL_MS};
use tokio::time::Instant;

/// How long a typing notice lasts unless renewed.
pub const TTL: Duration = Duration::from_millis(TYPING_TTL_MS);
/// Fewest time between two notices of one user in one room.
pub const MIN_INTERVAL: Duration = Duration::from_millis(TYPING_MIN_INTERVAL_MS);
/// How long a change of a typing set is remembered for tokens that predate it.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The registry. A std Mutex: held for a few map operations, never across `.await`.
#[derive(Debug)]
pub struct Typing {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The mark of the newest change.
    mark: u64,
    /// Changes with marks up to this one are forgotten (or from an earlier run).
    forgotten_upto: u64,
    /// The changes remembered, oldest first: (mark, when, room, whose typing, the members).
    log: VecDeque<LogEntry>,
    /// Rooms with someone typing or a recent notice.
    rooms: HashMap<String, BTreeMap<String, Notice>>,
}

#[derive(Debug)]
struct LogEntry {
    mark: u64,
    at: Instant,
    room_id: String,
    typist: String,
    members: Arc<[String]>,
}

/// One user's typing in one room.
#[derive(Debug, Clone, Copy)]
struct Notice {
    /// Typing until then; `None`: not typing (kept for the rate limit).
    until: Option<Instant>,
    /// The last notice accepted.
    last: Instant,
}

/// A notice refused by the rate limit: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// Until the next notice is accepted.
    pub retry_after: Duration,
}

/// What an accepted notice did.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The room's typing set changed: wake these members (the typist excluded).
    pub announce: Option<Vec<String>>,
    /// The user now types until then: expire it at that time unless renewed.
    pub expires: Option<Instant>,
}

/// The rooms whose typing changed after a mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// These (the user's, where someone else's typing changed).
    Rooms(Vec<String>),
    /// The mark is older than what the registry remembers: every room of the user.
    All,
}

impl Default for Typing {
    fn default() -> Self {
        Self::new()
    }
}

/// The wall clock in microseconds since 1970.
fn wall_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
}

impl Typing {
    /// An empty registry whose marks start at the current time in microseconds.
    pub fn new() -> Typing {
        let start = wall_micros();
        Typing {
            state: Mutex::new(State {
                mark: start,
                forgotten_upto: start,
                log: VecDeque::new(),
                rooms: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A notice of `user_id` in the room `room_id` (whose members are `members`, sorted) at
    /// `now`: started (or still) typing, or stopped. Refused when the last accepted notice of the
    /// user in the room is less than [`MIN_INTERVAL`] ago, except a stop that ends a typing.
    pub fn notice(
        &self,
        room_id: &str,
        members: &Arc<[String]>,
        user_id: &str,
        typing: bool,
        now: Instant,
    ) -> Result<Accepted, RateLimited> {
        self.apply(room_id, members, user_id, typing, now, true)
    }

    /// A notice another instance on the same database accepted (its rate limit already held):
    /// taken as it is.
    pub fn notice_from_elsewhere(
        &self,
        room_id: &str,
        members: &Arc<[String]>,
        user_id: &str,
        typing: bool,
        now: Instant,
    ) -> Accepted {
        match self.apply(room_id, members, user_id, typing, now, false) {
            Ok(accepted) => accepted,
            Err(_) => unreachable!("no rate limit without limiting"),
        }
    }

    fn apply(
        &self,
        room_id: &str,
        members: &Arc<[String]>,
        user_id: &str,
        typing: bool,
        now: Instant,
        limit: bool,
    ) -> Result<Accepted, RateLimited> {
        let mut state = self.lock();
        state.forget(now);
        let room = state.rooms.entry(room_id.to_owned()).or_default();
        let before = room.get(user_id).copied();
        let was_typing = before.is_some_and(|n| n.until.is_some());
        if let Some(before) = before {
            let since = now.saturating_duration_since(before.last);
            let ends_typing = !typing && was_typing;
            if limit && since < MIN_INTERVAL && !ends_typing {
                return Err(RateLimited {
                    retry_after: MIN_INTERVAL - since,
                });
            }
        }
        let until = typing.then(|| now + TTL);
        room.insert(user_id.to_owned(), Notice { until, last: now });
        let announce =
            (typing != was_typing).then(|| state.changed(room_id, user_id, members, now));
        Ok(Accepted {
            announce,
            expires: until,
        })
    }

    /// Ends `user_id`'s typing in `room_id` if it still ends at `at` (not renewed since);
    /// returns the members to wake when it did.
    pub fn expire(
        &self,
        room_id: &str,
        members: &Arc<[String]>,
        user_id: &str,
        at: Instant,
    ) -> Option<Vec<String>> {
        let mut state = self.lock();
        let notice = state.rooms.get_mut(room_id)?.get_mut(user_id)?;
        if notice.until != Some(at) {
            return None;
        }
        notice.until = None;
        Some(state.changed(room_id, user_id, members, at))
    }

    /// The mark now: a token made now reports typing changes after it.
    pub fn mark(&self) -> u64 {
        self.lock().mark
    }

    /// The mark now, and the rooms of `user_id` where someone else's typing changed after
    /// `mark` (a token's).
    pub fn changed_since(&self, user_id: &str, mark: u64) -> (u64, Changed) {
        let state = self.lock();
        if mark < state.forgotten_upto {
            // Older than what is remembered.
            return (state.mark, Changed::All);
        }
        if mark > state.mark {
            // From another instance (or a run whose clock was ahead): nothing this registry
            // knows came after it, and later changes here take marks from the clock, above it
            // but for the clocks' skew. The token keeps its mark.
            return (mark, Changed::Rooms(Vec::new()));
        }
        let first = state.log.partition_point(|e| e.mark <= mark);
        let mut rooms: Vec<String> = state
            .log
            .range(first..)
            .filter(|e| e.typist != user_id)
            .filter(|e| {
                e.members
                    .binary_search_by(|m| m.as_str().cmp(user_id))
                    .is_ok()
            })
            .map(|e| e.room_id.clone())
            .collect();
        rooms.sort();
        rooms.dedup();
        (state.mark, Changed::Rooms(rooms))
    }

    /// Who types in `room_id` now, `except` excluded, sorted.
    pub fn typing_in(&self, room_id: &str, except: &str) -> Vec<String> {
        self.lock()
            .rooms
            .get(room_id)
            .map_or_else(Vec::new, |room| {
                room.iter()
                    .filter(|(user, notice)| notice.until.is_some() && user.as_str() != except)
                    .map(|(user, _)| user.clone())
                    .collect()
            })
    }
}

impl State {
    /// Records a change of a room's typing set; returns the members to wake.
    fn changed(
        &mut self,
        room_id: &str,
        typist: &str,
        members: &Arc<[String]>,
        now: Instant,
    ) -> Vec<String> {
        // The clock, so that marks of several instances on one database are comparable (a
        // device's next request may reach another instance); +1 keeps them strictly growing.
        self.mark = (self.mark + 1).max(wall_micros());
        self.log.push_back(LogEntry {
            mark: self.mark,
            at: now,
            room_id: room_id.to_owned(),
            typist: typist.to_owned(),
            members: Arc::clone(members),
        });
        members.iter().filter(|m| *m != typist).cloned().collect()
    }

    /// Forgets changes older than [`FORGET_AFTER`] and notices that neither type nor limit.
    fn forget(&mut self, now: Instant) {
        while let Some(old) = self.log.front() {
            if now.saturating_duration_since(old.at) < FORGET_AFTER {
                break;
            }
            self.forgotten_upto = old.mark;
            self.log.pop_front();
        }
        // A sweep over all rooms at most once per interval's worth of notices is cheap enough
        // here: notices are rate-limited, and the map holds only recent ones.
        self.rooms.retain(|_, room| {
            room.retain(|_, n| {
                n.until.is_some() || now.saturating_duration_since(n.last) < MIN_INTERVAL
            });
            !room.is_empty()
        });
    }
}

/// What follows an accepted notice: the members to wake are woken now, and a typing ends by itself
/// at its deadline unless renewed (then this finds a later deadline and does nothing). On the
/// runtime's clock, like long-poll holds.
pub fn follow_up(
    typing: &Arc<Typing>,
    notifier: &Arc<crate::notify::Notifier>,
    accepted: Accepted,
    room_id: String,
    members: Arc<[String]>,
    user_id: String,
) {
    if let Some(woken) = accepted.announce {
        notifier.announce_to(woken);
    }
    if let Some(until) = accepted.expires {
        let typing = Arc::clone(typing);
        let notifier = Arc::clone(notifier);
        tokio::spawn(async move {
            tokio::time::sleep_until(until).await;
            if let Some(woken) = typing.expire(&room_id, &members, &user_id, until) {
                notifier.announce_to(woken);
            }
        });
    }
}

/// Applies the typing notices of other instances on the same database (the store's
/// [`crate::store::TypingSink`]): each is taken into this instance's registry and wakes its
/// long-polls, as a local one does.
pub struct FromElsewhere {
    /// Where rooms' members are found. Weak: the store holds this sink, and a strong
    /// reference back would keep both alive after the server stops.
    pub store: std::sync::Weak<dyn crate::store::Store>,
    /// This instance's registry.
    pub typing: Arc<Typing>,
    /// This instance's long-polls.
    pub notifier: Arc<crate::notify::Notifier>,
    /// The runtime the server runs on (notices arrive on the store's listener thread).
    pub runtime: tokio::runtime::Handle,
}

impl crate::store::TypingSink for FromElsewhere {
    fn typed(&self, notice: crate::store::TypingNotice) {
        let Some(store) = self.store.upgrade() else {
            return;
        };
        let typing = Arc::clone(&self.typing);
        let notifier = Arc::clone(&self.notifier);
        self.runtime.spawn(async move {
            let room = match store.cached_room(&notice.room_id) {
                Some(room) => Some(room),
                None => {
                    let (store, id) = (Arc::clone(&store), notice.room_id.clone());
                    tokio::task::spawn_blocking(move || store.room(&id))
                        .await
                        .ok()
                        .and_then(Result::ok)
                        .flatten()
                }
            };
            let Some(room) = room else {
                return;
            };
            let members: Arc<[String]> = room.member_ids.clone().into();
            let accepted = typing.notice_from_elsewhere(
                &notice.room_id,
                &members,
                &notice.user_id,
                notice.typing,
                Instant::now(),
            );
            follow_up(
                &typing,
                &notifier,
                accepted,
                notice.room_id,
                members,
                notice.user_id,
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Arc<[String]> {
        vec!["alice".to_owned(), "bob".to_owned(), "carol".to_owned()].into()
    }

    #[tokio::test(start_paused = true)]
    async fn a_start_and_a_stop_are_changes_a_renewal_is_not_and_the_mark_tells_them() {
        let t = Typing::new();
        let m = members();
        let (mark0, changed) = t.changed_since("bob", t.mark());
        assert_eq!(changed, Changed::Rooms(vec![]));
        let now = Instant::now();
        let started = t.notice("r", &m, "alice", true, now).unwrap();
        assert_eq!(started.announce, Some(vec!["bob".into(), "carol".into()]));
        assert_eq!(started.expires, Some(now + TTL));
        assert_eq!(t.typing_in("r", "bob"), vec!["alice".to_owned()]);
        assert!(t.typing_in("r", "alice").is_empty(), "not to herself");
        let (mark1, changed) = t.changed_since("bob", mark0);
        assert_eq!(changed, Changed::Rooms(vec!["r".into()]));
        assert_eq!(t.changed_since("alice", mark0).1, Changed::Rooms(vec![]));
        assert_eq!(t.changed_since("dave", mark0).1, Changed::Rooms(vec![]));
        // A renewal a second later: accepted, nothing to tell.
        tokio::time::advance(MIN_INTERVAL).await;
        let renewed = t.notice("r", &m, "alice", true, Instant::now()).unwrap();
        assert_eq!(renewed.announce, None);
        assert_eq!(t.changed_since("bob", mark1).1, Changed::Rooms(vec![]));
        // The first deadline passed by the renewal does nothing; the renewed one ends it.
        assert_eq!(t.expire("r", &m, "alice", now + TTL), None);
        let woken = t.expire("r", &m, "alice", Instant::now() + TTL).unwrap();
        assert_eq!(woken, vec!["bob".to_owned(), "carol".to_owned()]);
        assert!(t.typing_in("r", "bob").is_empty());
        assert_eq!(
            t.changed_since("bob", mark1).1,
            Changed::Rooms(vec!["r".into()])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn notices_faster_than_one_a_second_are_refused_but_a_stop_ends_a_typing() {
        let t = Typing::new();
        let m = members();
        t.notice("r", &m, "alice", true, Instant::now()).unwrap();
        tokio::time::advance(Duration::from_millis(300)).await;
        assert_eq!(
            t.notice("r", &m, "alice", true, Instant::now())
                .unwrap_err(),
            RateLimited {
                retry_after: Duration::from_millis(700)
            }
        );
        // Another room, another user: their own limits.
        t.notice("r2", &m, "alice", true, Instant::now()).unwrap();
        t.notice("r", &m, "bob", true, Instant::now()).unwrap();
        // A stop that ends the typing is taken at once; a second stop is a flood.
        let stopped = t.notice("r", &m, "alice", false, Instant::now()).unwrap();
        assert!(stopped.announce.is_some() && stopped.expires.is_none());
        assert!(t.notice("r", &m, "alice", false, Instant::now()).is_err());
        tokio::time::advance(MIN_INTERVAL).await;
        assert!(t.notice("r", &m, "alice", false, Instant::now()).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_older_than_what_is_remembered_get_every_room() {
        let t = Typing::new();
        let m = members();
        assert_eq!(t.changed_since("bob", 0).1, Changed::All, "a bare p<pos>");
        // Ahead of this registry (another instance's token): nothing here came after it, and
        // the answer keeps it.
        let ahead = t.mark() + 5;
        assert_eq!(
            t.changed_since("bob", ahead),
            (ahead, Changed::Rooms(vec![]))
        );
        let mark = t.mark();
        t.notice("r", &m, "alice", true, Instant::now()).unwrap();
        tokio::time::advance(FORGET_AFTER).await;
        // The next notice anywhere forgets the old change: the old mark can no longer tell.
        t.notice("r2", &m, "carol", true, Instant::now()).unwrap();
        assert_eq!(t.changed_since("bob", mark).1, Changed::All);
        let (now, _) = t.changed_since("bob", t.mark());
        assert_eq!(t.changed_since("bob", now).1, Changed::Rooms(vec![]));
    }
}
