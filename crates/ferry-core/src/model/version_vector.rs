//! Version vectors: replica ID → counter. Comparing two says newer, older, equal or
//! concurrent without trusting clocks.

use crate::error::{Error, Result};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Identifies a replica (a location) inside version vectors.
pub type ReplicaId = u64;

/// How two version vectors relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    Equal,
    /// The left vector has seen everything the right one has, and more.
    Newer,
    /// The right vector has seen everything the left one has, and more.
    Older,
    /// Each has seen something the other has not.
    Concurrent,
}

/// A version vector. Zero counters are never stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct VersionVector(BTreeMap<ReplicaId, u64>);

impl VersionVector {
    /// An empty vector (no replica changed the path yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no replica has a counter.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Each replica's counter, by replica ID (zero counters are not there).
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.0.iter().map(|(&id, &c)| (id, c))
    }

    /// The counter of replica `id` (0 when absent).
    pub fn get(&self, id: ReplicaId) -> u64 {
        self.0.get(&id).copied().unwrap_or(0)
    }

    /// Sets replica `id`'s counter to `counter` (which the caller keeps monotonic).
    pub fn set(&mut self, id: ReplicaId, counter: u64) {
        if counter == 0 {
            self.0.remove(&id);
        } else {
            self.0.insert(id, counter);
        }
    }

    /// Records a local change by `id`, using a counter from the replica's monotonic clock.
    pub(crate) fn bumped(&self, id: ReplicaId, counter: u64) -> Self {
        let mut v = self.clone();
        v.set(id, counter.max(self.get(id) + 1));
        v
    }

    /// The element-wise maximum.
    pub fn merged(&self, other: &Self) -> Self {
        let mut v = self.clone();
        for (&id, &c) in &other.0 {
            if c > v.get(id) {
                v.0.insert(id, c);
            }
        }
        v
    }

    /// How this vector relates to `other`: equal, before, after or concurrent.
    pub fn compare(&self, other: &Self) -> Causality {
        let mut greater = false;
        let mut less = false;
        for id in self.0.keys().chain(other.0.keys()) {
            match self.get(*id).cmp(&other.get(*id)) {
                Ordering::Greater => greater = true,
                Ordering::Less => less = true,
                Ordering::Equal => {}
            }
        }
        match (greater, less) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Newer,
            (false, true) => Causality::Older,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Compact binary form for the index: pairs of little-endian u64.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 16);
        for (id, c) in &self.0 {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&c.to_le_bytes());
        }
        out
    }

    /// A vector stored by `to_bytes`.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        if b.len() % 16 != 0 {
            return Err(Error::Corrupt(format!(
                "version vector of {} bytes",
                b.len()
            )));
        }
        let mut v = VersionVector::new();
        for pair in b.chunks_exact(16) {
            let mut id = [0u8; 8];
            let mut c = [0u8; 8];
            id.copy_from_slice(&pair[..8]);
            c.copy_from_slice(&pair[8..]);
            v.set(u64::from_le_bytes(id), u64::from_le_bytes(c));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vv(pairs: &[(u64, u64)]) -> VersionVector {
        let mut v = VersionVector::new();
        for &(i, c) in pairs {
            v.set(i, c);
        }
        v
    }

    #[test]
    fn compare_cases() {
        assert_eq!(vv(&[]).compare(&vv(&[])), Causality::Equal);
        assert_eq!(vv(&[(1, 2)]).compare(&vv(&[(1, 1)])), Causality::Newer);
        assert_eq!(
            vv(&[(1, 1)]).compare(&vv(&[(1, 1), (2, 1)])),
            Causality::Older
        );
        assert_eq!(vv(&[(1, 2)]).compare(&vv(&[(2, 1)])), Causality::Concurrent);
        assert_eq!(vv(&[(1, 1)]).compare(&vv(&[])), Causality::Newer);
    }

    #[test]
    fn bump_is_monotonic() {
        let v = vv(&[(1, 5)]);
        assert_eq!(v.bumped(1, 3).get(1), 6);
        assert_eq!(v.bumped(1, 9).get(1), 9);
        assert_eq!(v.bumped(1, 9).compare(&v), Causality::Newer);
    }

    proptest! {
        #[test]
        fn bytes_roundtrip(pairs in proptest::collection::vec((0u64..5, 0u64..100), 0..6)) {
            let v = vv(&pairs);
            prop_assert_eq!(VersionVector::from_bytes(&v.to_bytes()).unwrap(), v);
        }

        #[test]
        fn merge_dominates_both(a in proptest::collection::vec((0u64..4, 0u64..5), 0..5),
                                b in proptest::collection::vec((0u64..4, 0u64..5), 0..5)) {
            let (a, b) = (vv(&a), vv(&b));
            let m = a.merged(&b);
            prop_assert!(matches!(m.compare(&a), Causality::Newer | Causality::Equal));
            prop_assert!(matches!(m.compare(&b), Causality::Newer | Causality::Equal));
            prop_assert_eq!(a.compare(&b) == Causality::Equal, a == b);
        }
    }
}
