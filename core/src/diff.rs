//! The diffs a view emits: from the list the app holds to the list the store now shows, as the
//! [`ListDiff`] operations that turn one into the other. Items keep their identity (`key`)
//! across changes of content: an echo that turns sent is a `Set`, not a remove and an insert.
//! When a change is closer to a new list than to an edit (a jump over a gap), one `Reset` says
//! it more cheaply.

use std::collections::HashSet;

use crate::model::ListDiff;

/// The operations that turn `old` into `new` (applied in order, with positions as they stand
/// at each step). Empty when they are equal.
pub(crate) fn diff<T: Clone + PartialEq, K: Eq + std::hash::Hash>(
    old: &[T],
    new: &[T],
    key: impl Fn(&T) -> K,
) -> Vec<ListDiff<T>> {
    if old == new {
        return Vec::new();
    }
    let wanted: HashSet<K> = new.iter().map(&key).collect();
    let mut current: Vec<T> = old.to_vec();
    let mut ops = Vec::new();
    // Removals first, from the end so earlier indexes stay valid.
    for index in (0..current.len()).rev() {
        if !wanted.contains(&key(&current[index])) {
            current.remove(index);
            ops.push(ListDiff::Remove {
                index: index as u32,
            });
        }
    }
    for (index, item) in new.iter().enumerate() {
        let k = key(item);
        match current.get(index) {
            Some(here) if key(here) == k => {
                if here != item {
                    current[index] = item.clone();
                    ops.push(ListDiff::Set {
                        index: index as u32,
                        item: item.clone(),
                    });
                }
            }
            _ => {
                // Moved from further down (its order changed): take it out there first.
                if let Some(from) = current[index..].iter().position(|c| key(c) == k) {
                    current.remove(index + from);
                    ops.push(ListDiff::Remove {
                        index: (index + from) as u32,
                    });
                }
                current.insert(index, item.clone());
                ops.push(if index + 1 == current.len() {
                    ListDiff::PushBack { item: item.clone() }
                } else if index == 0 {
                    ListDiff::PushFront { item: item.clone() }
                } else {
                    ListDiff::Insert {
                        index: index as u32,
                        item: item.clone(),
                    }
                });
            }
        }
    }
    debug_assert!(current == new);
    if ops.len() > new.len() {
        return vec![ListDiff::Reset {
            items: new.to_vec(),
        }];
    }
    ops
}

/// Applies `diffs` to `list`, as an app does with what a view emits (tests, and the CLI).
pub fn apply<T: Clone>(list: &mut Vec<T>, diffs: &[ListDiff<T>]) {
    for d in diffs {
        match d {
            ListDiff::Reset { items } => *list = items.clone(),
            ListDiff::PushBack { item } => list.push(item.clone()),
            ListDiff::PushFront { item } => list.insert(0, item.clone()),
            ListDiff::Insert { index, item } => list.insert(*index as usize, item.clone()),
            ListDiff::Set { index, item } => list[*index as usize] = item.clone(),
            ListDiff::Remove { index } => {
                list.remove(*index as usize);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Item(&'static str, u32);

    fn check(old: &[Item], new: &[Item]) -> Vec<ListDiff<Item>> {
        let ops = diff(old, new, |i| i.0);
        let mut applied = old.to_vec();
        apply(&mut applied, &ops);
        assert_eq!(applied, new, "{ops:?}");
        ops
    }

    #[test]
    fn each_kind_of_change_is_its_own_operation() {
        let a = Item("a", 0);
        let b = Item("b", 0);
        let c = Item("c", 0);
        assert!(check(&[a.clone(), b.clone()], &[a.clone(), b.clone()]).is_empty());
        assert_eq!(
            check(std::slice::from_ref(&a), &[a.clone(), b.clone()]),
            [ListDiff::PushBack { item: b.clone() }]
        );
        assert_eq!(
            check(std::slice::from_ref(&b), &[a.clone(), b.clone()]),
            [ListDiff::PushFront { item: a.clone() }]
        );
        assert_eq!(
            check(&[a.clone(), c.clone()], &[a.clone(), b.clone(), c.clone()]),
            [ListDiff::Insert {
                index: 1,
                item: b.clone()
            }]
        );
        assert_eq!(
            check(&[a.clone(), b.clone()], &[a.clone(), Item("b", 1)]),
            [ListDiff::Set {
                index: 1,
                item: Item("b", 1)
            }]
        );
        assert_eq!(
            check(&[a.clone(), b.clone()], std::slice::from_ref(&b)),
            [ListDiff::Remove { index: 0 }]
        );
    }

    #[test]
    fn random_lists_always_diff_to_their_target() {
        let mut rng = fastrand::Rng::with_seed(42);
        let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
        for _ in 0..2_000 {
            let pick = |rng: &mut fastrand::Rng| {
                let mut v = Vec::new();
                for k in keys {
                    if rng.bool() {
                        v.push(Item(k, rng.u32(0..2)));
                    }
                }
                rng.shuffle(&mut v);
                v
            };
            let old = pick(&mut rng);
            let new = pick(&mut rng);
            check(&old, &new);
        }
    }
}
