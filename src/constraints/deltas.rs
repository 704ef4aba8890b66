//! The per-backend ledger behind `maintain_count()`, pure Rust. The child's row triggers add +1 or
//! -1 for a parent key as each row is written; the statement trigger at the end of the statement
//! takes the net change per parent, in one fixed order of keys, and applies it with one UPDATE
//! per parent. Taking the keys in the same order in every backend is what keeps concurrent
//! statements that touch several parents from deadlocking on them.
//!
//! Each delta remembers the subtransaction that wrote it: when a subtransaction rolls back (a
//! savepoint, a PL/pgSQL exception block) its deltas must go too, and only its own.

use std::collections::HashMap;

/// PostgreSQL's SubTransactionId: numbered upwards within a transaction, so the subtransactions
/// started inside one always carry higher numbers than it.
pub type SubXactId = u32;

/// How a parent key is stored as a Datum: its type, and the `typlen`/`typbyval` needed to turn
/// the bytes kept here back into a Datum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyType {
    pub oid: u32,
    pub len: i16,
    pub by_value: bool,
}

/// One parent's net change, ready to apply.
#[derive(Debug, PartialEq, Eq)]
pub struct NetChange {
    pub key_type: KeyType,
    pub key: Vec<u8>,
    pub delta: i64,
}

/// Per counter (identified by the text of its UPDATE), per parent key: the deltas not yet
/// applied, by subtransaction.
#[derive(Default)]
pub struct Ledger {
    counters: HashMap<String, HashMap<KeyType, HashMap<Vec<u8>, Vec<(SubXactId, i64)>>>>,
}

impl Ledger {
    /// Records `delta` for the parent `key` of `counter`, written in subtransaction `subxact`.
    pub fn add(&mut self, counter: &str, key_type: KeyType, key: &[u8], delta: i64, subxact: SubXactId) {
        // Looked up by reference first: the common case (a parent seen before in this statement)
        // then allocates nothing.
        let parents = match self.counters.get_mut(counter) {
            Some(parents) => parents,
            None => self.counters.entry(counter.to_owned()).or_default(),
        }
        .entry(key_type)
        .or_default();
        let deltas = match parents.get_mut(key) {
            Some(deltas) => deltas,
            None => parents.entry(key.to_vec()).or_default(),
        };
        match deltas.last_mut() {
            Some((last, sum)) if *last == subxact => *sum += delta,
            _ => deltas.push((subxact, delta)),
        }
    }

    /// Removes and returns the net change of every parent of `counter`, sorted by key (then by
    /// key type), leaving out parents whose changes cancel out.
    pub fn take(&mut self, counter: &str) -> Vec<NetChange> {
        let Some(parents) = self.counters.remove(counter) else {
            return Vec::new();
        };
        let mut changes: Vec<NetChange> = parents
            .into_iter()
            .flat_map(|(key_type, keys)| {
                keys.into_iter()
                    .map(move |(key, deltas)| NetChange { key_type, key, delta: deltas.iter().map(|(_, d)| d).sum() })
            })
            .filter(|change| change.delta != 0)
            .collect();
        changes.sort_by(|a, b| a.key.cmp(&b.key).then(a.key_type.cmp(&b.key_type)));
        changes
    }

    /// Drops what subtransaction `subxact` and the subtransactions inside it wrote: they rolled
    /// back.
    pub fn forget_from(&mut self, subxact: SubXactId) {
        for parents in self.counters.values_mut() {
            for keys in parents.values_mut() {
                for deltas in keys.values_mut() {
                    deltas.retain(|(written_in, _)| *written_in < subxact);
                }
                keys.retain(|_, deltas| !deltas.is_empty());
            }
            parents.retain(|_, keys| !keys.is_empty());
        }
        self.counters.retain(|_, parents| !parents.is_empty());
    }

    pub fn clear(&mut self) {
        self.counters.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INT4: KeyType = KeyType { oid: 23, len: 4, by_value: true };
    const TOP: SubXactId = 1;

    #[test]
    fn net_changes_per_parent_in_key_order_without_zeros() {
        let mut ledger = Ledger::default();
        ledger.add("c", INT4, &[2], 1, TOP);
        ledger.add("c", INT4, &[1], 1, TOP);
        ledger.add("c", INT4, &[2], 1, TOP);
        ledger.add("c", INT4, &[3], 1, TOP);
        ledger.add("c", INT4, &[3], -1, TOP);
        ledger.add("other", INT4, &[1], -1, TOP);
        let changes = ledger.take("c");
        let summary: Vec<(u8, i64)> = changes.iter().map(|c| (c.key[0], c.delta)).collect();
        assert_eq!(summary, vec![(1, 1), (2, 2)]);
        assert!(ledger.take("c").is_empty(), "taken once");
        assert!(!ledger.is_empty(), "the other counter stays");
        assert_eq!(ledger.take("other").len(), 1);
        assert!(ledger.is_empty());
    }

    #[test]
    fn a_rolled_back_subtransaction_loses_its_deltas_and_only_those() {
        let mut ledger = Ledger::default();
        ledger.add("c", INT4, &[1], 1, TOP);
        ledger.add("c", INT4, &[1], 1, 2);
        ledger.add("c", INT4, &[2], 1, 3); // inside 2
        ledger.add("c", INT4, &[3], 1, 4); // a later sibling, rolled back on its own first
        ledger.forget_from(4);
        ledger.forget_from(2);
        let changes = ledger.take("c");
        assert_eq!(changes, vec![NetChange { key_type: INT4, key: vec![1], delta: 1 }]);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut ledger = Ledger::default();
        ledger.add("c", INT4, &[1], 1, TOP);
        ledger.clear();
        assert!(ledger.is_empty());
    }

    proptest! {
        /// Whatever the order of the deltas and the rollbacks, each parent's net change is the
        /// sum of the deltas written in subtransactions that did not roll back.
        #[test]
        fn net_change_is_the_sum_of_surviving_deltas(
            writes in proptest::collection::vec((0u8..6, prop_oneof![Just(1i64), Just(-1i64)], 1u32..5), 0..200),
            rolled_back in proptest::option::of(2u32..5),
        ) {
            let mut ledger = Ledger::default();
            let mut expected: HashMap<u8, i64> = HashMap::new();
            // Subtransaction ids only go up over time: sort the writes by it.
            let mut writes = writes;
            writes.sort_by_key(|w| w.2);
            for (key, delta, subxact) in &writes {
                ledger.add("c", INT4, &[*key], *delta, *subxact);
            }
            if let Some(from) = rolled_back {
                ledger.forget_from(from);
            }
            for (key, delta, subxact) in &writes {
                if rolled_back.is_none_or(|from| *subxact < from) {
                    *expected.entry(*key).or_default() += delta;
                }
            }
            expected.retain(|_, d| *d != 0);
            let changes = ledger.take("c");
            let keys: Vec<u8> = changes.iter().map(|c| c.key[0]).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            prop_assert_eq!(&keys, &sorted);
            let got: HashMap<u8, i64> = changes.iter().map(|c| (c.key[0], c.delta)).collect();
            prop_assert_eq!(got, expected);
        }
    }
}
