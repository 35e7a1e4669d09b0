//! The vocabulary of findings over time, shared by the API (which parses and serves it) and
//! the storage backends (which record findings and answer queries on them): see
//! `prext_store::findings` for the semantics and `docs/results-api.md` for the API.

use super::query::Condition;
use crate::report::Subject;

/// Which moment of a finding `since`/`until` bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FindingEvent {
    /// Open at some moment of the window: opened before its end, not resolved before its start.
    #[default]
    Active,
    /// Opened (first seen) in the window.
    Opened,
    /// Resolved in the window.
    Resolved,
}

/// Which findings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FindingFilter {
    /// Only findings whose (last) report is in this namespace (`Some("")`: cluster-scoped
    /// reports); `None` for every namespace.
    pub namespace: Option<String>,
    /// `In`/`NotIn` conditions on the finding's columns (the columns of [`ResultColumn`]);
    /// every one must hold. Other conditions are refused by the API before they get here.
    pub conditions: Vec<Condition>,
    /// Only open (`Some(true)`) or resolved (`Some(false)`) findings.
    pub open: Option<bool>,
    /// The window's start, Unix ms (inclusive).
    pub since: Option<i64>,
    /// The window's end, Unix ms (exclusive).
    pub until: Option<i64>,
    /// What the window bounds.
    pub event: FindingEvent,
}

/// One finding, as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finding {
    /// Stable and unique (its name in the API); increases with `first_seen`.
    pub id: i64,
    pub namespace: String,
    pub resource: String,
    pub report: String,
    pub policy: String,
    pub rule: String,
    pub result: String,
    pub severity: Option<String>,
    pub category: Option<String>,
    pub source: Option<String>,
    pub message: Option<String>,
    pub subject: Subject,
    pub first_seen: i64,
    pub first_seen_revision: i64,
    pub last_seen: i64,
    pub last_seen_revision: i64,
    pub resolved_at: Option<i64>,
    pub resolved_revision: Option<i64>,
}

/// The length of a trend's buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Interval {
    #[default]
    Day,
    Hour,
}

impl Interval {
    /// The length in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            Interval::Day => 86_400_000,
            Interval::Hour => 3_600_000,
        }
    }
}

/// One group's series: for each bucket start, the findings open at the bucket's end (or, for
/// the bucket holding `until`, at `until`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrendSeries {
    pub group: String,
    pub points: Vec<(i64, u64)>,
}

/// The bucket starts of a trend.
pub fn buckets(interval: Interval, since: i64, until: i64) -> Vec<i64> {
    let len = interval.millis();
    let mut start = since.div_euclid(len) * len;
    let mut out = Vec::new();
    if since >= until {
        return out;
    }
    while start < until {
        out.push(start);
        start += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_align_on_the_interval() {
        let day = Interval::Day.millis();
        assert_eq!(buckets(Interval::Day, day + 5, 3 * day), vec![day, 2 * day]);
        assert_eq!(buckets(Interval::Day, day, day + 1), vec![day]);
        assert!(buckets(Interval::Hour, 10, 10).is_empty());
    }
}
