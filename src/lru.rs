//! A map bounded by a total cost (entries, bytes…) that evicts the least recently used
//! entries to make room, instead of clearing everything once full.
//!
//! Recency is a counter stamped on each entry when it is inserted or read through
//! [`Lru::get_mut`]; an ordered index from stamp to key finds the oldest entry in
//! O(log n). Peeking ([`Lru::peek`]) does not count as a use.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// A cost-bounded map with least-recently-used eviction.
#[derive(Debug)]
pub struct Lru<K, V> {
    map: HashMap<K, Slot<V>>,
    order: BTreeMap<u64, K>,
    next_stamp: u64,
    cost: usize,
    max_cost: usize,
}

#[derive(Debug)]
struct Slot<V> {
    value: V,
    stamp: u64,
    cost: usize,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty map holding entries of total cost at most `max_cost`.
    pub fn new(max_cost: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: BTreeMap::new(),
            next_stamp: 0,
            cost: 0,
            max_cost,
        }
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    /// The value for `key`, marked as just used.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let stamp = self.stamp();
        let slot = self.map.get_mut(key)?;
        if let Some(k) = self.order.remove(&slot.stamp) {
            self.order.insert(stamp, k);
        }
        slot.stamp = stamp;
        Some(&mut slot.value)
    }

    /// The value for `key`, without marking it used.
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|s| &s.value)
    }

    /// Inserts (or replaces) `key` with `value` of `cost`, evicting least recently used
    /// entries until it fits. An entry costlier than the whole bound is not stored.
    pub fn insert(&mut self, key: K, value: V, cost: usize) {
        self.remove(&key);
        if cost > self.max_cost {
            return;
        }
        while self.cost + cost > self.max_cost {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.map.remove(&oldest) {
                self.cost -= slot.cost;
            }
        }
        let stamp = self.stamp();
        self.order.insert(stamp, key.clone());
        self.map.insert(key, Slot { value, stamp, cost });
        self.cost += cost;
    }

    /// Removes `key`, returning its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let slot = self.map.remove(key)?;
        self.order.remove(&slot.stamp);
        self.cost -= slot.cost;
        Some(slot.value)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let (order, cost) = (&mut self.order, &mut self.cost);
        self.map.retain(|k, slot| {
            let kept = keep(k, &slot.value);
            if !kept {
                order.remove(&slot.stamp);
                *cost -= slot.cost;
            }
            kept
        });
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Total cost of the entries.
    pub fn cost(&self) -> usize {
        self.cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_is_evicted_first() {
        let mut lru = Lru::new(3);
        lru.insert("a", 1, 1);
        lru.insert("b", 2, 1);
        lru.insert("c", 3, 1);
        assert_eq!(lru.get_mut("a"), Some(&mut 1)); // b is now the oldest
        lru.insert("d", 4, 1);
        assert_eq!(lru.peek("b"), None);
        assert_eq!(lru.peek("a"), Some(&1));
        assert_eq!(lru.peek("c"), Some(&3));
        assert_eq!(lru.len(), 3);
    }

    #[test]
    fn cost_bounds_the_map_and_oversized_entries_are_not_stored() {
        let mut lru = Lru::new(100);
        lru.insert("a", (), 40);
        lru.insert("b", (), 40);
        lru.insert("c", (), 40); // evicts a
        assert_eq!(lru.cost(), 80);
        assert!(lru.peek("a").is_none());
        lru.insert("huge", (), 101);
        assert!(lru.peek("huge").is_none());
        assert_eq!(lru.cost(), 80);
        // Replacing an entry replaces its cost.
        lru.insert("b", (), 10);
        assert_eq!(lru.cost(), 50);
        lru.retain(|k, _| *k != "c");
        assert_eq!((lru.len(), lru.cost()), (1, 10));
        assert_eq!(lru.remove("b"), Some(()));
        assert!(lru.is_empty());
        assert_eq!(lru.cost(), 0);
    }

    #[test]
    fn peeking_does_not_count_as_a_use() {
        let mut lru = Lru::new(2);
        lru.insert(1, (), 1);
        lru.insert(2, (), 1);
        assert!(lru.peek(&1).is_some());
        lru.insert(3, (), 1);
        assert!(lru.peek(&1).is_none(), "1 was least recently used");
    }
}
