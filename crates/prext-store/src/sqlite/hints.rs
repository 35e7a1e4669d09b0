//! What a committed write means for findings, handed from the writer to the findings indexer
//! in memory, so that the indexer need not read the body back and parse it.
//!
//! A write whose result rows make findings is stored with [`ResultsFlag::Failing`], and the
//! indexer then derives the report's findings from the change's body (`findings_index.rs`):
//! read from SQLite, decompressed, parsed into a `serde_json::Value` and indexed again,
//! for every such create (a 7.4 KB Kyverno report: the largest single cost of a create after
//! the request's own decode). The request task already has the result rows the server indexed
//! from that same body (`report::index`), so it derives the findings there ([`Prepared`]'s
//! `carried`), and the writer, once the batch has committed and before it publishes the
//! revision, leaves them here under the change's revision and key. The indexer takes the hint
//! of a change instead of its body; a change without one (the hint was dropped, the server
//! restarted, a staged write, a restore) is read from its body as before, with the same
//! result: both come from `report::index` of the same object.
//!
//! Hints are bounded ([`MAX_BYTES`] of findings, counted roughly): when the indexer falls
//! behind, later writes leave none and are read from their bodies. The indexer forgets every
//! hint at or below the cursor it reached (those of updates that kept their rows are never
//! asked for).
//!
//! [`ResultsFlag::Failing`]: crate::findings_index::ResultsFlag
//! [`Prepared`]: super::prepared::Prepared

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::findings_index::Carried;
use crate::ObjectKey;

/// Most bytes of findings held (their strings and a fixed cost per finding).
pub(crate) const MAX_BYTES: usize = 4 << 20;

/// The findings of one committed write, keyed by its change.
#[derive(Debug)]
struct Hint {
    key: ObjectKey,
    carried: Vec<Carried>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Held {
    by_revision: BTreeMap<i64, Hint>,
    bytes: usize,
}

/// The hints shared by the writer (which leaves them) and the indexer (which takes them).
#[derive(Debug, Clone, Default)]
pub(crate) struct Hints(Arc<Mutex<Held>>);

/// Roughly what a finding holds in memory.
fn size(carried: &[Carried]) -> usize {
    carried
        .iter()
        .map(|c| {
            let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
            256 + c.subject_key.len()
                + c.policy.len()
                + c.rule.len()
                + c.result.len()
                + opt(&c.severity)
                + opt(&c.category)
                + opt(&c.source)
                + opt(&c.message)
                + opt(&c.subject_api_version)
                + opt(&c.subject_kind)
                + opt(&c.subject_namespace)
                + opt(&c.subject_name)
                + opt(&c.subject_uid)
        })
        .sum()
}

impl Hints {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // A panic while holding the lock leaves a consistent map (every change is one insert
        // or remove): the hints stay usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leaves the findings of the write committed at `revision` of `key`, unless that would
    /// pass [`MAX_BYTES`]. Called only after the write's transaction committed.
    pub(crate) fn put(&self, revision: i64, key: ObjectKey, carried: Vec<Carried>) {
        let bytes = size(&carried);
        let mut held = self.held();
        if held.bytes.saturating_add(bytes) > MAX_BYTES {
            return;
        }
        held.bytes += bytes;
        if let Some(old) = held.by_revision.insert(revision, Hint { key, carried, bytes }) {
            held.bytes -= old.bytes;
        }
    }

    /// The findings left for the change at `revision` of `key`, taken out.
    pub(crate) fn take(&self, revision: i64, key: &ObjectKey) -> Option<Vec<Carried>> {
        let mut held = self.held();
        let hint = held.by_revision.remove(&revision)?;
        held.bytes -= hint.bytes;
        (hint.key == *key).then_some(hint.carried)
    }

    /// Forgets every hint at or below `revision` (the indexer's cursor).
    pub(crate) fn forget_through(&self, revision: i64) {
        let mut held = self.held();
        let above = match revision.checked_add(1) {
            Some(next) => held.by_revision.split_off(&next),
            None => BTreeMap::new(),
        };
        let dropped = std::mem::replace(&mut held.by_revision, above);
        held.bytes -= dropped.values().map(|h| h.bytes).sum::<usize>();
    }

    /// How many hints are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held().by_revision.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(policy: &str, message_len: usize) -> Carried {
        Carried {
            subject_key: "uid-1".into(),
            policy: policy.into(),
            rule: "r".into(),
            result: "fail".into(),
            severity: None,
            category: None,
            source: None,
            message: Some("m".repeat(message_len)),
            subject_api_version: None,
            subject_kind: None,
            subject_namespace: None,
            subject_name: None,
            subject_uid: Some("uid-1".into()),
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("policyreports.wgpolicyk8s.io", "ns", name)
    }

    #[test]
    fn a_hint_is_taken_once_and_only_for_its_key() {
        let hints = Hints::default();
        hints.put(5, key("a"), vec![finding("p", 10)]);
        hints.put(6, key("b"), vec![finding("q", 10)]);
        assert_eq!(hints.take(5, &key("a")), Some(vec![finding("p", 10)]));
        assert_eq!(hints.take(5, &key("a")), None, "taken");
        // Another key at that revision is not this change's hint (and it is dropped).
        assert_eq!(hints.take(6, &key("a")), None);
        assert_eq!(hints.take(6, &key("b")), None);
        assert_eq!(hints.held().bytes, 0);
    }

    #[test]
    fn hints_are_bounded_and_forgotten_below_the_cursor() {
        let hints = Hints::default();
        let big = MAX_BYTES / 2;
        hints.put(1, key("a"), vec![finding("p", big)]);
        hints.put(2, key("b"), vec![finding("p", big)]);
        assert_eq!(hints.len(), 1, "the second would pass the bound");
        assert_eq!(hints.take(2, &key("b")), None);
        hints.put(3, key("c"), vec![finding("p", 1)]);
        hints.put(4, key("d"), vec![finding("p", 1)]);
        hints.forget_through(3);
        assert_eq!(hints.len(), 1);
        assert_eq!(hints.take(4, &key("d")), Some(vec![finding("p", 1)]));
        assert_eq!(hints.held().bytes, 0);
        hints.put(5, key("e"), vec![finding("p", big)]);
        assert_eq!(hints.len(), 1, "room again once forgotten");
        hints.forget_through(i64::MAX);
        assert_eq!((hints.len(), hints.held().bytes), (0, 0));
    }
}
