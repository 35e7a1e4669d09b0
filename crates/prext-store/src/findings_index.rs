//! The findings indexer's backend-neutral part: what a change of the change log means for
//! findings, and the read-your-writes wait of findings reads.
//!
//! Findings are no longer recorded in the write's transaction (issue 14 item 4: it cost
//! writes with failing results 40-75 % more CPU). Each write stores, in its change-log row,
//! its time (`written_at`, Unix ms) and what it did to the report's result rows
//! ([`ResultsFlag`]); an indexer follows the log by revision and applies each change, in
//! order, exactly as the in-transaction recording did: the failing rows of a rewritten report
//! are taken from the change's body (`coalesce(c.body, o.body)`), derived by the same
//! [`prext_api::report::index`] the server stores result rows from ([`carried`]; PostgreSQL
//! derives the same from the report's result rows while the change is its newest write,
//! `postgres/findings_rows.rs`). The indexer keeps its
//! cursor (the newest revision applied) in the transaction of the findings it writes, so a
//! crash neither applies a change twice nor skips one; compaction keeps the changes above it.
//!
//! Findings reads wait until the cursor reaches the store revision taken when they start
//! ([`wait_indexed`]), so a read issued after an acknowledged write sees it; past the wait
//! they fail with [`Error::IndexBehind`] rather than answer stale data.

use std::time::Duration;

use prext_api::report::{self, ResultRow};
use prext_api::resources::{self, ReportLayout, ResourceDef};
use tokio::sync::watch;

use crate::{Error, Result};

/// How long a findings read waits for the indexer before failing with [`Error::IndexBehind`].
pub const INDEX_WAIT: Duration = Duration::from_secs(10);

/// Changes applied per indexer transaction.
pub const INDEX_BATCH: usize = 2000;

/// Bytes of bodies read per indexer transaction (SQLite; the batch ends with the change that
/// passes it). A burst of 197 KB reports from 16 clients leaves the indexer tens of changes
/// behind; at up to [`INDEX_BATCH`] changes a step would hold all their findings at once.
pub const INDEX_BATCH_BYTES: usize = 4 << 20;

/// What a write did to its report's result rows, stored with its change (`results_flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultsFlag {
    /// An update that kept the rows (same results digest): the findings are only seen again.
    Kept = 0,
    /// The rows were (re)written and none of them makes a finding.
    NoFailing = 1,
    /// The rows were (re)written and some make findings: the indexer reads the body.
    Failing = 2,
}

impl ResultsFlag {
    /// The flag of a write that rewrote its rows.
    pub(crate) fn rewritten(failing: bool) -> ResultsFlag {
        if failing {
            ResultsFlag::Failing
        } else {
            ResultsFlag::NoFailing
        }
    }

    pub(crate) fn as_i64(self) -> i64 {
        self as i64
    }
}

/// What the indexer does with one change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Mark the report's findings seen.
    Seen,
    /// The report now carries exactly these findings (none after a delete).
    Carry(Vec<Carried>),
}

/// One finding a report carries: its key and the fields of its first failing result (as JSON,
/// the rows PostgreSQL's `prext_index_change` reads).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Carried {
    pub(crate) subject_key: String,
    pub(crate) policy: String,
    pub(crate) rule: String,
    pub(crate) result: String,
    pub(crate) severity: Option<String>,
    pub(crate) category: Option<String>,
    pub(crate) source: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) subject_api_version: Option<String>,
    pub(crate) subject_kind: Option<String>,
    pub(crate) subject_namespace: Option<String>,
    pub(crate) subject_name: Option<String>,
    pub(crate) subject_uid: Option<String>,
}

/// The action of a change: `event` as stored, `flag` its `results_flag`, `body` the body it
/// wrote (needed only for [`ResultsFlag::Failing`]).
pub(crate) fn action(resource: &str, event: &str, flag: Option<i64>, body: Option<&str>) -> Result<Action> {
    if event == "DELETED" {
        return Ok(Action::Carry(Vec::new()));
    }
    match flag {
        Some(0) => Ok(Action::Seen),
        Some(1) => Ok(Action::Carry(Vec::new())),
        Some(2) => {
            let body = body.ok_or_else(|| {
                Error::internal(format!(
                    "the findings indexer found no body for a change of {resource}"
                ))
            })?;
            let value: serde_json::Value = serde_json::from_str(body)
                .map_err(|e| Error::internal(format!("a stored body of {resource} is not JSON: {e}")))?;
            Ok(Action::Carry(carried(
                &report::index(def(resource), &value).results,
            )))
        }
        other => Err(Error::internal(format!(
            "a change of {resource} has no results flag ({other:?}) above the findings cursor"
        ))),
    }
}

/// The served kind stored as `resource` (`plural.group`); another name is read with the
/// top-level layout of the wgpolicyk8s.io reports.
fn def(resource: &str) -> &'static ResourceDef {
    resources::RESOURCES
        .iter()
        .find(|d| {
            resource
                .strip_prefix(d.plural)
                .and_then(|rest| rest.strip_prefix('.'))
                == Some(d.group)
        })
        .or_else(|| {
            resources::RESOURCES
                .iter()
                .find(|d| d.layout() == Some(ReportLayout::TopLevel))
        })
        .unwrap_or(&resources::RESOURCES[0])
}

/// The findings of a report's result rows: one per key (subject, policy, rule), from its
/// first failing row by position, in key order (the order the in-transaction recording
/// opened them in).
pub(crate) fn carried(rows: &[ResultRow]) -> Vec<Carried> {
    let mut out: Vec<Carried> = Vec::new();
    for r in rows {
        let Some(result) = r
            .result
            .as_deref()
            .filter(|v| crate::findings::is_failing(Some(v)))
        else {
            continue;
        };
        let s = &r.subject;
        let subject_key = match s.uid.as_deref() {
            Some(uid) if !uid.is_empty() => uid.to_owned(),
            _ => format!(
                "{}/{}/{}",
                s.kind.as_deref().unwrap_or(""),
                s.namespace.as_deref().unwrap_or(""),
                s.name.as_deref().unwrap_or("")
            ),
        };
        out.push(Carried {
            subject_key,
            policy: r.policy.clone().unwrap_or_default(),
            rule: r.rule.clone().unwrap_or_default(),
            result: result.to_owned(),
            severity: r.severity.clone(),
            category: r.category.clone(),
            source: r.source.clone(),
            message: r.message.clone(),
            subject_api_version: s.api_version.clone(),
            subject_kind: s.kind.clone(),
            subject_namespace: s.namespace.clone(),
            subject_name: s.name.clone(),
            subject_uid: s.uid.clone(),
        });
    }
    // Stable: the first row of each key stays first.
    out.sort_by(|a, b| (&a.subject_key, &a.policy, &a.rule).cmp(&(&b.subject_key, &b.policy, &b.rule)));
    out.dedup_by(|later, first| {
        (&later.subject_key, &later.policy, &later.rule) == (&first.subject_key, &first.policy, &first.rule)
    });
    out
}

/// Waits until the indexer's cursor (`indexed`, refreshed by `refresh` when it may be stale,
/// e.g. read from the database when another replica indexes) reaches `target`, at most
/// `timeout`.
pub(crate) async fn wait_indexed<F, Fut>(
    indexed: &mut watch::Receiver<i64>,
    target: i64,
    timeout: Duration,
    mut refresh: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<i64>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut current = *indexed.borrow_and_update();
        if current >= target {
            return Ok(());
        }
        if let Some(persisted) = refresh().await? {
            current = current.max(persisted);
            if current >= target {
                return Ok(());
            }
        }
        // Woken by the local indexer at once; re-read the persisted cursor every 20 ms in
        // case another replica is the one indexing.
        let tick = tokio::time::Instant::now() + Duration::from_millis(20);
        let wake = tick.min(deadline);
        tokio::select! {
            changed = indexed.changed() => {
                // The local indexer has stopped: only the persisted cursor can still move.
                if changed.is_err() {
                    tokio::time::sleep_until(wake).await;
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let last = (*indexed.borrow()).max(current);
            if last >= target {
                return Ok(());
            }
            return Err(Error::IndexBehind {
                requested: target,
                current: last,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use prext_api::report::Subject;

    use super::*;

    fn row(index: i64, policy: &str, result: &str, uid: Option<&str>, message: &str) -> ResultRow {
        ResultRow {
            index,
            policy: Some(policy.into()),
            result: Some(result.into()),
            message: Some(message.into()),
            subject: Subject {
                kind: Some("Pod".into()),
                namespace: Some("a".into()),
                name: Some("web".into()),
                uid: uid.map(str::to_owned),
                ..Subject::default()
            },
            ..ResultRow::default()
        }
    }

    #[test]
    fn carried_is_one_per_key_from_its_first_failing_row() {
        let rows = vec![
            row(0, "p2", "fail", Some("u1"), "first"),
            row(1, "p1", "pass", Some("u1"), "passing"),
            row(2, "p2", "warn", Some("u1"), "second"),
            row(3, "p1", "error", Some(""), "no uid"),
            row(4, "p0", "skip", None, "skipped"),
        ];
        let got = carried(&rows);
        let keys: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|c| {
                (
                    c.subject_key.as_str(),
                    c.policy.as_str(),
                    c.message.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(keys, vec![("Pod/a/web", "p1", "no uid"), ("u1", "p2", "first")]);
        assert_eq!(got[1].result, "fail");
    }

    #[test]
    fn actions_follow_the_flag() {
        assert_eq!(
            action("x", "DELETED", None, None).expect("delete"),
            Action::Carry(vec![])
        );
        assert_eq!(
            action("x", "MODIFIED", Some(0), None).expect("kept"),
            Action::Seen
        );
        assert_eq!(
            action("x", "ADDED", Some(1), None).expect("none"),
            Action::Carry(vec![])
        );
        assert!(
            action("x", "ADDED", Some(2), None).is_err(),
            "a failing write needs its body"
        );
        assert!(
            action("x", "ADDED", None, None).is_err(),
            "unflagged changes are not indexed"
        );
        let body = r#"{"results": [{"policy": "p", "result": "fail", "resources": [{"uid": "u"}]}]}"#;
        let Action::Carry(c) =
            action("policyreports.wgpolicyk8s.io", "ADDED", Some(2), Some(body)).expect("body")
        else {
            panic!("not a carry");
        };
        assert_eq!((c.len(), c[0].subject_key.as_str()), (1, "u"));
        assert_eq!(
            def("ephemeralreports.reports.kyverno.io").layout(),
            Some(ReportLayout::Spec)
        );
    }
}
