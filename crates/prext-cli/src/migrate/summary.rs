//! What a `prext migrate` run did, per kind and in total, and how it is printed and turned
//! into an exit code.

use std::fmt::Write as _;

use super::convert::Rejection;

/// Exit code: some objects were refused or some kinds could not be read.
pub const EXIT_INCOMPLETE: u8 = 2;
/// Exit code: stopped by `--max-objects`; the checkpoint lets the next run continue.
pub const EXIT_STOPPED: u8 = 3;

/// How far a kind got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindState {
    /// Not reached (the run stopped before it).
    Pending,
    /// Being copied, or copied when the run ended normally.
    Copied,
    /// The source does not serve it (no CRD): nothing to copy.
    NotServed,
    /// Completed by an earlier run, according to the checkpoint.
    DoneEarlier,
    /// The source refused to list it; a later run retries it.
    Failed(String),
}

/// Object counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub listed: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.listed += other.listed;
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.skipped += other.skipped;
    }

    /// `N created, N updated, N unchanged, N skipped`.
    pub fn describe(&self) -> String {
        format!(
            "{} created, {} updated, {} unchanged, {} skipped",
            self.created, self.updated, self.unchanged, self.skipped
        )
    }
}

/// One kind's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindReport {
    /// `plural.group`.
    pub resource: String,
    pub state: KindState,
    pub counts: Counts,
}

/// One object that was not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub reason: Rejection,
}

impl Skip {
    /// Refused by validation (as opposed to skipped on purpose): the operator should look.
    pub fn needs_attention(&self) -> bool {
        matches!(self.reason, Rejection::Invalid(_) | Rejection::Malformed(_))
    }
}

/// The result of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub dry_run: bool,
    pub kinds: Vec<KindReport>,
    pub skipped: Vec<Skip>,
    /// Objects that had fields their schema does not know (pruned, as the CRD prunes them).
    pub pruned: u64,
    /// `ownerReferences` naming a report that has no copy in prext yet.
    pub unresolved_owners: u64,
    /// Stopped by `--max-objects`.
    pub stopped: bool,
    /// The error that ended the run early, if any.
    pub fatal: Option<String>,
}

impl Summary {
    /// The line of `resource`, created on first use.
    pub fn kind(&mut self, resource: &str) -> &mut KindReport {
        let i = match self.kinds.iter().position(|k| k.resource == resource) {
            Some(i) => i,
            None => {
                self.kinds.push(KindReport {
                    resource: resource.to_string(),
                    state: KindState::Pending,
                    counts: Counts::default(),
                });
                self.kinds.len() - 1
            }
        };
        &mut self.kinds[i]
    }

    /// The counts over every kind.
    pub fn total(&self) -> Counts {
        let mut total = Counts::default();
        for k in &self.kinds {
            total.add(&k.counts);
        }
        total
    }

    /// 0: complete and clean; 1: a fatal error; [`EXIT_STOPPED`]; [`EXIT_INCOMPLETE`].
    pub fn exit_code(&self) -> u8 {
        if self.fatal.is_some() {
            1
        } else if self.stopped {
            EXIT_STOPPED
        } else if self.skipped.iter().any(Skip::needs_attention)
            || self.kinds.iter().any(|k| matches!(k.state, KindState::Failed(_)))
        {
            EXIT_INCOMPLETE
        } else {
            0
        }
    }

    /// The report printed at the end of a run.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.dry_run {
            out.push_str("dry run: nothing was written; the counts are what a real run would do\n");
        }
        let width = self
            .kinds
            .iter()
            .map(|k| k.resource.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "{:width$}  {:>7}  {:>7}  {:>7}  {:>9}  {:>7}  STATE",
            "KIND", "LISTED", "CREATED", "UPDATED", "UNCHANGED", "SKIPPED"
        );
        for k in &self.kinds {
            let c = &k.counts;
            let state = match &k.state {
                KindState::Pending => "not reached".to_string(),
                KindState::Copied => "copied".to_string(),
                KindState::NotServed => "not served by the source (no CRD)".to_string(),
                KindState::DoneEarlier => "done by an earlier run".to_string(),
                KindState::Failed(why) => format!("FAILED: {why}"),
            };
            let _ = writeln!(
                out,
                "{:width$}  {:>7}  {:>7}  {:>7}  {:>9}  {:>7}  {state}",
                k.resource, c.listed, c.created, c.updated, c.unchanged, c.skipped
            );
        }
        let t = self.total();
        let _ = writeln!(out, "total: {} listed, {}", t.listed, t.describe());
        if !self.skipped.is_empty() {
            out.push_str("skipped objects:\n");
            for s in &self.skipped {
                let at = if s.namespace.is_empty() {
                    s.name.clone()
                } else {
                    format!("{}/{}", s.namespace, s.name)
                };
                let _ = writeln!(out, "  {} {at}: {}", s.resource, s.reason);
            }
        }
        if self.pruned > 0 {
            let _ = writeln!(
                out,
                "note: {} objects had fields unknown to their schema; they were pruned, as the CRD prunes them",
                self.pruned
            );
        }
        if self.unresolved_owners > 0 {
            let _ = writeln!(
                out,
                "note: {} ownerReferences name reports not copied yet; run again once their kinds are migrated",
                self.unresolved_owners
            );
        }
        if t.created + t.updated > 0 && !self.dry_run {
            out.push_str("note: copies have new uids and resourceVersions; names, labels, annotations, finalizers, ownerReferences and creationTimestamps are kept\n");
        }
        if self.stopped {
            out.push_str(
                "stopped at --max-objects: run the same command again to continue from the checkpoint\n",
            );
        }
        if let Some(fatal) = &self.fatal {
            let _ = writeln!(
                out,
                "error: {fatal}\nrun the same command again to resume from the checkpoint"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        let mut s = Summary::default();
        let k = s.kind("policyreports.wgpolicyk8s.io");
        k.state = KindState::Copied;
        k.counts = Counts {
            listed: 5,
            created: 3,
            updated: 1,
            unchanged: 1,
            skipped: 0,
        };
        s.kind("reports.openreports.io").state = KindState::NotServed;
        s
    }

    #[test]
    fn renders_a_table_and_a_total() {
        let text = summary().render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("KIND"), "{text}");
        assert!(lines[1].starts_with("policyreports.wgpolicyk8s.io"), "{text}");
        assert!(lines[1].ends_with("copied"), "{text}");
        assert!(lines[2].contains("not served"), "{text}");
        assert!(
            text.contains("total: 5 listed, 3 created, 1 updated, 1 unchanged, 0 skipped"),
            "{text}"
        );
        assert!(text.contains("new uids and resourceVersions"), "{text}");
    }

    #[test]
    fn exit_codes_rank_fatal_stopped_incomplete() {
        let mut s = summary();
        assert_eq!(s.exit_code(), 0);
        s.skipped.push(Skip {
            resource: "r".into(),
            namespace: String::new(),
            name: "n".into(),
            reason: Rejection::BeingDeleted,
        });
        assert_eq!(s.exit_code(), 0, "skipping a deleted object is not a problem");
        s.skipped.push(Skip {
            resource: "r".into(),
            namespace: "ns".into(),
            name: "bad".into(),
            reason: Rejection::Invalid(vec!["metadata.name: bad".into()]),
        });
        assert_eq!(s.exit_code(), EXIT_INCOMPLETE);
        assert!(s.render().contains("  r ns/bad: invalid: metadata.name: bad"));
        s.stopped = true;
        assert_eq!(s.exit_code(), EXIT_STOPPED);
        s.fatal = Some("store: storage unavailable".into());
        assert_eq!(s.exit_code(), 1);
    }
}
