//! A least-recently-used map bounded in bytes: the label embeddings of
//! zero-shot calls and the query embeddings of repeated searches.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Entries with their size; the least recently used go first when a new
/// one would pass the capacity. Not synchronised: callers hold it in a
/// `Mutex`.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    /// Key -> (value, bytes, last use).
    map: HashMap<K, (V, u64, u64)>,
    /// Last use -> key; the first entry is the least recently used.
    order: BTreeMap<u64, K>,
    tick: u64,
    capacity: u64,
    bytes: u64,
    evictions: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> Lru<K, V> {
    /// Empty, holding at most `capacity` bytes (0 holds nothing).
    pub(crate) fn new(capacity: u64) -> Self {
        Lru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            capacity,
            bytes: 0,
            evictions: 0,
        }
    }

    /// The value of `key`, which becomes the most recently used.
    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        let (v, _, last) = self.map.get_mut(key)?;
        let old = std::mem::replace(last, tick);
        let v = v.clone();
        if let Some(k) = self.order.remove(&old) {
            self.order.insert(tick, k);
        }
        Some(v)
    }

    /// Inserts (or replaces) `key`, which `bytes` says how much it holds;
    /// one larger than the whole capacity is not kept.
    pub(crate) fn insert(&mut self, key: K, value: V, bytes: u64) {
        if let Some((_, b, last)) = self.map.remove(&key) {
            self.order.remove(&last);
            self.bytes -= b;
        }
        if bytes > self.capacity {
            return;
        }
        while self.bytes + bytes > self.capacity {
            let Some((_, k)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, b, _)) = self.map.remove(&k) {
                self.bytes -= b;
                self.evictions += 1;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.map.insert(key, (value, bytes, self.tick));
        self.bytes += bytes;
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Entries dropped to stay within the capacity so far.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn drops_the_least_recently_used_first() {
        let mut lru = Lru::new(30);
        lru.insert("a", 1, 10);
        lru.insert("b", 2, 10);
        lru.insert("c", 3, 10);
        assert_eq!(lru.get(&"a"), Some(1)); // b is now the oldest
        lru.insert("d", 4, 10);
        assert_eq!(lru.get(&"b"), None);
        assert_eq!(
            (lru.get(&"a"), lru.get(&"c"), lru.get(&"d")),
            (Some(1), Some(3), Some(4))
        );
        assert_eq!((lru.len(), lru.bytes(), lru.evictions()), (3, 30, 1));
    }

    #[test]
    fn replacing_a_key_updates_its_size_and_oversized_entries_are_not_kept() {
        let mut lru = Lru::new(30);
        lru.insert("a", 1, 10);
        lru.insert("a", 2, 25);
        assert_eq!((lru.get(&"a"), lru.bytes(), lru.len()), (Some(2), 25, 1));
        lru.insert("big", 3, 31);
        assert_eq!((lru.get(&"big"), lru.bytes()), (None, 25));
        lru.insert("a", 4, 31);
        assert_eq!((lru.get(&"a"), lru.bytes(), lru.len()), (None, 0, 0));
        let mut none = Lru::new(0);
        none.insert("x", 1, 1);
        assert_eq!(none.get(&"x"), None);
    }
}
