//! Pages of summaries: the order of the groups (`sort`: by key, or by a count, descending),
//! `limit`, and the `continue` token that resumes after the last group of a page.
//!
//! * `sort` absent (or `group`): groups by their value, ascending (byte-wise);
//! * `sort=total`: by every result of the group, descending;
//! * `sort=<result>` (`fail`, `warn`, …): by the results with that value, descending;
//! * `sort=<result>.<severity>` (`fail.critical`): by one cell of the result × severity
//!   counts, descending.
//!
//! Ties fall back to the group's value, ascending, so the order is total and a page resumes
//! strictly after the previous page's last group (value and count), like a keyset page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::filter::FilterError;
use super::summary::{SummaryItem, RESULTS};

/// How the groups of a summary are ordered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum GroupRank {
    /// By the group's value, ascending.
    #[default]
    Key,
    /// By the group's count of results, descending.
    Total,
    /// By the group's count of results with this `result`, descending.
    Result(String),
    /// By the group's count of results with this `result` and `severity`, descending.
    Cell(String, String),
}

impl GroupRank {
    /// Parses `sort` of `resultsummaries`.
    pub fn parse(s: Option<&str>) -> Result<GroupRank, FilterError> {
        let s = s.unwrap_or("");
        let known = || {
            FilterError(format!(
                "sort: unsupported value {s:?}: \"group\", \"total\", a result ({}), or \
                 <result>.<severity> (\"fail.critical\")",
                RESULTS.join(", ")
            ))
        };
        Ok(match s {
            "" | "group" => GroupRank::Key,
            "total" => GroupRank::Total,
            _ => match s.split_once('.') {
                None if RESULTS.contains(&s) => GroupRank::Result(s.to_owned()),
                Some((r, sev))
                    if RESULTS.contains(&r)
                        && !sev.is_empty()
                        && sev
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
                {
                    GroupRank::Cell(r.to_owned(), sev.to_owned())
                }
                _ => return Err(known()),
            },
        })
    }

    /// The value as written in `sort`.
    pub fn tag(&self) -> String {
        match self {
            GroupRank::Key => "group".to_owned(),
            GroupRank::Total => "total".to_owned(),
            GroupRank::Result(r) => r.clone(),
            GroupRank::Cell(r, s) => format!("{r}.{s}"),
        }
    }

    /// The count an item is ranked by (0 in key order).
    pub fn value(&self, item: &SummaryItem) -> u64 {
        match self {
            GroupRank::Key => 0,
            GroupRank::Total => item.total(),
            GroupRank::Result(r) => item.by_result(r),
            GroupRank::Cell(r, s) => item.count(r, s),
        }
    }

    /// Whether a group ranked `(value, group)` comes strictly after `cursor`.
    pub fn after(&self, value: u64, group: &str, cursor: &GroupCursor) -> bool {
        match self {
            GroupRank::Key => group > cursor.group.as_str(),
            _ => value < cursor.value || (value == cursor.value && group > cursor.group.as_str()),
        }
    }
}

/// Where a page of groups resumes: the last group of the previous page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupCursor {
    /// Its count under the order (0 in key order).
    pub value: u64,
    /// Its value (`""` for the group of missing values).
    pub group: String,
}

/// A page of groups: the order, at most `limit` groups, after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPage {
    pub rank: GroupRank,
    pub limit: usize,
    pub after: Option<GroupCursor>,
}

/// The groups of a page, in order, and whether more follow (the reference semantics the
/// store implements in SQL, applied to items already counted).
pub fn page_items(mut items: Vec<SummaryItem>, page: &GroupPage) -> (Vec<SummaryItem>, bool) {
    items.sort_by(|a, b| {
        page.rank
            .value(b)
            .cmp(&page.rank.value(a))
            .then_with(|| a.group.cmp(&b.group))
    });
    items.retain(|i| {
        page.after
            .as_ref()
            .is_none_or(|c| page.rank.after(page.rank.value(i), &i.group, c))
    });
    let more = items.len() > page.limit;
    items.truncate(page.limit);
    (items, more)
}

/// Most groups one page holds.
pub const MAX_GROUPS: usize = 10_000;

/// What a summary list asks for: every group, or one page of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SummaryPaging {
    /// Every group, by value (no `sort`, `limit` or `continue`).
    All,
    /// Every group, in this order (`sort` without `limit`).
    Sorted(GroupRank),
    /// One page; `revision` is the first page's when this one continues it.
    Page { page: GroupPage, revision: Option<i64> },
}

/// Parses `sort`, `limit` and `continue` of a summary list grouped by `group_by`.
pub fn parse_paging(
    sort: Option<&str>,
    limit: Option<&str>,
    token: Option<&str>,
    group_by: &str,
) -> Result<SummaryPaging, FilterError> {
    let rank = GroupRank::parse(sort)?;
    let limit = match limit.filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let n: i64 = s
                .parse()
                .map_err(|_| FilterError(format!("limit: invalid value {s:?}: must be an integer")))?;
            usize::try_from(n).ok().filter(|n| *n > 0)
        }
    };
    let (after, revision) = match token.filter(|s| !s.is_empty()) {
        Some(t) => {
            let t = SummaryToken::decode(t, group_by, &rank).map_err(|e| FilterError(e.to_string()))?;
            (Some(t.cursor), Some(t.revision))
        }
        None => (None, None),
    };
    Ok(match (limit, after) {
        (None, None) if rank == GroupRank::Key => SummaryPaging::All,
        (None, None) => SummaryPaging::Sorted(rank),
        (limit, after) => SummaryPaging::Page {
            page: GroupPage {
                rank,
                limit: limit.unwrap_or(MAX_GROUPS).min(MAX_GROUPS),
                after,
            },
            revision,
        },
    })
}

/// `items` in the order of `groups` (the store's page), dropping any other.
pub fn in_order(items: Vec<SummaryItem>, groups: &[String]) -> Vec<SummaryItem> {
    let mut by_group: std::collections::BTreeMap<String, SummaryItem> =
        items.into_iter().map(|i| (i.group.clone(), i)).collect();
    groups.iter().filter_map(|g| by_group.remove(g)).collect()
}

/// The continue token of a summary page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryToken {
    /// The first page's revision.
    pub revision: i64,
    /// `groupBy` of the list (a token resumes only the same grouping and order).
    pub group_by: String,
    pub rank: GroupRank,
    pub cursor: GroupCursor,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid continue token: {0}")]
pub struct InvalidSummaryToken(String);

const VERSION: &str = "prext-summaries/v1";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: String,
    rv: i64,
    by: String,
    o: String,
    n: u64,
    g: String,
    sum: String,
}

fn checksum(w: &Wire) -> String {
    let mut h = Sha256::new();
    for part in [
        w.v.as_str(),
        &w.rv.to_string(),
        &w.by,
        &w.o,
        &w.n.to_string(),
        &w.g,
    ] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

impl SummaryToken {
    /// Encodes the token for `metadata.continue`.
    pub fn encode(&self) -> String {
        let mut w = Wire {
            v: VERSION.into(),
            rv: self.revision,
            by: self.group_by.clone(),
            o: self.rank.tag(),
            n: self.cursor.value,
            g: self.cursor.group.clone(),
            sum: String::new(),
        };
        w.sum = checksum(&w);
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&w).unwrap_or_default())
    }

    /// Decodes a token sent back for a list grouped by `group_by` in order `rank`.
    pub fn decode(
        token: &str,
        group_by: &str,
        rank: &GroupRank,
    ) -> Result<SummaryToken, InvalidSummaryToken> {
        let bad = |m: String| InvalidSummaryToken(m);
        if token.len() > 4096 {
            return Err(bad("too long".into()));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|e| bad(format!("not URL-safe base64: {e}")))?;
        let w: Wire = serde_json::from_slice(&bytes).map_err(|e| bad(format!("malformed: {e}")))?;
        if w.v != VERSION {
            return Err(bad(format!("version {:?} is not supported", w.v)));
        }
        if w.sum != checksum(&w) {
            return Err(bad("checksum does not match its content".into()));
        }
        if w.by != group_by || w.o != rank.tag() {
            return Err(bad(format!(
                "it continues a summary grouped by {} sorted by {}, not by {group_by} sorted by {}",
                w.by,
                w.o,
                rank.tag()
            )));
        }
        Ok(SummaryToken {
            revision: w.rv,
            group_by: w.by,
            rank: rank.clone(),
            cursor: GroupCursor {
                value: w.n,
                group: w.g,
            },
        })
    }
}

#[cfg(test)]
#[path = "rank_tests.rs"]
mod tests;
