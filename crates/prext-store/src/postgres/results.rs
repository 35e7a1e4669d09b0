//! Result queries and summaries over the `results` table of one cluster (see
//! [`crate::results`] for the semantics, which are the SQLite backend's), lowered to SQL with
//! every value bound as a parameter.
//!
//! Each query is one statement: the cluster's revision, the optional count and the page (or
//! the groups) come from the same snapshot without holding a transaction open, and take one
//! round trip. Keys compare byte-wise (`COLLATE "C"`), like SQLite, whatever the database's
//! collation.

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::error::pg_error;
use crate::results::{
    Compare, Condition, PropertyTest, ResultColumn, ResultCursor, ResultFilter, ResultOrder, ResultPage,
    ResultQuery, ResultRecord,
};
use crate::Result;

mod counts;
mod summary;
pub(crate) use summary::summarize;

/// Most rows one page returns, whatever the query asks (as on SQLite).
const MAX_PAGE: usize = 10_000;
/// Below this many matches a page is read through the filter's indexes and sorted; from it
/// on, in report order. The probe that tells reads up to this many matches, so it is kept
/// small: at 10,001 it cost 0.3 s on a filter matching 5 % of 1,000,000 results, at 501
/// about 10 ms (BENCHMARKS.md).
const SORT_THRESHOLD: usize = 500;

/// ASCII-only lower-casing (SQLite's `lower` and `LIKE` fold ASCII only): `lower` under the
/// "C" collation folds A-Z alone, whatever the database's collation. It was a `translate` of
/// the 26 letters, which cost 17 times as much per row: a `message~` scan of 1,000,000
/// results took 7.9 s in `EXPLAIN ANALYZE`, 0.46 s this way (BENCHMARKS.md, session 8).
fn ascii_lower(sql: &str) -> String {
    format!("lower(({sql}) COLLATE \"C\")")
}

/// The SQL rank of a severity (`crate::results::severity_rank`).
fn rank_sql() -> String {
    format!(
        "(CASE {} WHEN 'critical' THEN 5 WHEN 'high' THEN 4 WHEN 'medium' THEN 3 \
         WHEN 'low' THEN 2 WHEN 'info' THEN 1 ELSE 0 END)::bigint",
        ascii_lower("r.severity")
    )
}

/// The SQL timestamp key: missing timestamps sort as the oldest.
const TIME_SQL: &str = "coalesce(r.\"timestamp\", -9223372036854775808)";

/// The columns of a [`ResultRecord`], in its field order.
const RECORD_COLUMNS: &str = "o.namespace, o.resource, o.name, o.uid, o.revision, o.created, r.idx, \
     r.policy, r.rule, r.result, r.severity, r.category, r.source, r.scored, r.\"timestamp\", \
     r.message, r.properties::text AS properties, r.resources::text AS resources, \
     r.subject_api_version, r.subject_kind, r.subject_namespace, r.subject_name, r.subject_uid";

pub(super) use crate::rows::result_column as column;

/// Text as the result rows store it: PostgreSQL text cannot hold NUL, which the write path
/// turns into U+FFFD.
fn clean(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

fn clean_all(values: &[String]) -> Vec<String> {
    values.iter().map(|v| clean(v)).collect()
}

/// A statement's conditions and bound parameters, built up condition by condition.
#[derive(Debug, Default)]
pub(super) struct Sql {
    conditions: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    /// Binds a parameter; returns its placeholder with `cast` (e.g. `$3::text`).
    pub(super) fn bind<T: ToSql + Sync + Send + 'static>(&mut self, value: T, cast: &str) -> String {
        self.params.push(Box::new(value));
        format!("${}::{cast}", self.params.len())
    }

    pub(super) fn push(&mut self, condition: impl Into<String>) {
        self.conditions.push(condition.into());
    }

    /// ` WHERE c1 AND c2 …` (every query has at least its cluster condition).
    pub(super) fn where_sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }

    pub(super) fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The filter of `cluster`'s results as conditions; returns the cluster's placeholder.
pub(super) fn lower(sql: &mut Sql, cluster: &str, filter: &ResultFilter) -> String {
    lower_rows(sql, cluster, filter, true)
}

/// [`lower`], with the report's cluster tested only when `report` (the statement joins
/// `objects AS o`); else the result rows' own cluster only.
pub(super) fn lower_rows(sql: &mut Sql, cluster: &str, filter: &ResultFilter, report: bool) -> String {
    lower_filter(sql, cluster, filter, report, true)
}

/// [`lower_rows`]; a numeric test also tests the result and severity conditions beside its
/// numbers ([`beside`]) when `in_range`.
fn lower_filter(sql: &mut Sql, cluster: &str, filter: &ResultFilter, report: bool, in_range: bool) -> String {
    let c = sql.bind(cluster.to_owned(), "text");
    match report {
        true => sql.push(format!("o.cluster = {c} AND r.cluster = {c}")),
        false => sql.push(format!("r.cluster = {c}")),
    }
    if let Some(ns) = &filter.namespace {
        let n = sql.bind(clean(ns), "text");
        sql.push(format!("o.namespace = {n}"));
    }
    let numeric = filter.conditions.iter().any(|c| {
        matches!(
            c,
            Condition::Property {
                test: PropertyTest::Number(..),
                ..
            }
        )
    });
    let beside = if numeric && in_range {
        beside(sql, filter, "n")
    } else {
        String::new()
    };
    for condition in &filter.conditions {
        match condition {
            Condition::In(col, values) => set_condition(sql, *col, values, false),
            Condition::NotIn(col, values) => set_condition(sql, *col, values, true),
            Condition::MessageContains(text) if text.is_empty() => {}
            Condition::MessageContains(text) => {
                // `LIKE` on the ASCII-lower-cased message (like SQLite's `LIKE`): an
                // expression a trigram index can serve (docs/postgres.md), unlike `strpos`.
                let pattern = format!("%{}%", escape_like(&clean(text).to_ascii_lowercase()));
                let t = sql.bind(pattern, "text");
                sql.push(format!("{} LIKE {t} ESCAPE '\\'", ascii_lower("r.message")));
            }
            // One probe per property key, below.
            Condition::Property {
                test: PropertyTest::Number(..),
                ..
            } => {}
            Condition::Property { key, test } => property_condition(sql, key, test),
            Condition::Index(i) => {
                let i = sql.bind(*i, "bigint");
                sql.push(format!("r.idx = {i}"));
            }
        }
    }
    for (key, bounds) in numbers_by_key(filter) {
        number_condition(sql, &key, &bounds, &beside);
    }
    c
}

/// The numeric tests of a filter, grouped by property key (as stored), in the filter's order.
fn numbers_by_key(filter: &ResultFilter) -> Vec<(String, Vec<(Compare, f64)>)> {
    let mut keys: Vec<(String, Vec<(Compare, f64)>)> = Vec::new();
    for condition in &filter.conditions {
        let Condition::Property {
            key,
            test: PropertyTest::Number(op, bound),
        } = condition
        else {
            continue;
        };
        let key = clean(key);
        match keys.iter_mut().find(|(k, _)| *k == key) {
            Some((_, bounds)) => bounds.push((*op, *bound)),
            None => keys.push((key, vec![(*op, *bound)])),
        }
    }
    keys
}

/// The numeric tests of one property: one probe of `result_numbers` (as on SQLite,
/// `result_stats.rs`: a range of `result_numbers_key_value`, joined to the result row by its
/// key) testing every bound. A result has one number per key, so this is the same as a probe
/// per test; two probes of one key (`score>=9.9` with `score>=8`) were planned as a scan of
/// every number hashed against the narrower range (192 ms on 1,000,000 results at load 17),
/// one as the narrower range alone (14-37 ms; BENCHMARKS.md, session 9).
fn number_condition(sql: &mut Sql, key: &str, bounds: &[(Compare, f64)], beside: &str) {
    if bounds.iter().any(|(_, bound)| bound.is_nan()) {
        // Nothing compares with NaN.
        sql.push("false");
        return;
    }
    let k = sql.bind(key.to_owned(), "text");
    let mut tests = String::new();
    for (op, bound) in bounds {
        let b = sql.bind(*bound, "float8");
        tests.push_str(&format!(" AND n.value {} {b}", compare_sql(*op)));
    }
    sql.push(format!(
        "EXISTS (SELECT 1 FROM result_numbers AS n WHERE n.object_id = r.object_id \
         AND n.idx = r.idx AND n.key = {k}{tests}{beside})"
    ));
}

/// Escapes `%`, `_` and the escape character itself for `LIKE … ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `col in (values)` or `col notin (values)`, where a missing value counts as `""`.
fn set_condition(sql: &mut Sql, col: ResultColumn, values: &[String], negated: bool) {
    let (c, nullable) = column(col);
    if let Some(test) = set_test(sql, c, nullable, values, negated) {
        sql.push(test);
    }
}

/// The test of column expression `c` against `values` (`None`: it holds for every row).
fn set_test(sql: &mut Sql, c: &str, nullable: bool, values: &[String], negated: bool) -> Option<String> {
    if values.is_empty() {
        // `in ()` matches nothing, `notin ()` everything.
        return (!negated).then(|| "false".to_owned());
    }
    let empty_listed = values.iter().any(String::is_empty);
    let list = sql.bind(clean_all(values), "text[]");
    Some(match (negated, nullable, empty_listed) {
        (false, true, true) => format!("({c} = ANY({list}) OR {c} IS NULL)"),
        (false, _, _) => format!("{c} = ANY({list})"),
        (true, true, false) => format!("({c} IS NULL OR NOT {c} = ANY({list}))"),
        (true, true, true) => format!("({c} IS NOT NULL AND NOT {c} = ANY({list}))"),
        (true, false, _) => format!("NOT {c} = ANY({list})"),
    })
}

/// Whether `result_numbers` holds the column beside each number (schema version 13).
fn copied(col: ResultColumn) -> bool {
    matches!(col, ResultColumn::Result | ResultColumn::Severity)
}

/// The filter's conditions on the result and the severity as tests of `result_numbers AS
/// {alias}`, each as ` AND …`: a numeric range tests them inside its index, and only its
/// matches reach their result rows (`property=score>=8` with `severity in (medium,low)`
/// probed the result rows of the range's 83,498 numbers for none).
fn beside(sql: &mut Sql, filter: &ResultFilter, alias: &str) -> String {
    let mut out = String::new();
    for condition in &filter.conditions {
        let (col, values, negated) = match condition {
            Condition::In(col, values) if copied(*col) => (*col, values, false),
            Condition::NotIn(col, values) if copied(*col) => (*col, values, true),
            _ => continue,
        };
        // The same test as on the result row, of the copy: `r.severity` → `{alias}.severity`.
        let (plain, nullable) = column(col);
        let copy = plain.replacen("r.", &format!("{alias}."), 1);
        if let Some(test) = set_test(sql, &copy, nullable, values, negated) {
            out.push_str(" AND ");
            out.push_str(&test);
        }
    }
    out
}

fn property_condition(sql: &mut Sql, key: &str, test: &PropertyTest) {
    let k = sql.bind(clean(key), "text");
    let value = format!("(r.properties ->> {k})");
    match test {
        PropertyTest::Exists => sql.push(format!("{value} IS NOT NULL")),
        PropertyTest::Missing => sql.push(format!("{value} IS NULL")),
        PropertyTest::In(values) if values.is_empty() => sql.push("false"),
        PropertyTest::In(values) => {
            let list = sql.bind(clean_all(values), "text[]");
            sql.push(format!("{value} = ANY({list})"));
        }
        PropertyTest::NotIn(values) if values.is_empty() => {}
        PropertyTest::NotIn(values) => {
            let list = sql.bind(clean_all(values), "text[]");
            sql.push(format!("({value} IS NULL OR NOT {value} = ANY({list}))"));
        }
        // Lowered per key by `number_condition`.
        PropertyTest::Number(..) => {}
    }
}

/// The SQL operator of a numeric comparison.
fn compare_sql(op: Compare) -> &'static str {
    match op {
        Compare::Greater => ">",
        Compare::GreaterOrEqual => ">=",
        Compare::Less => "<",
        Compare::LessOrEqual => "<=",
    }
}

/// The sort key leading `order` (0 in report order), and its direction.
fn lead(order: ResultOrder) -> (String, &'static str) {
    match order {
        ResultOrder::Report => ("0::bigint".to_owned(), "ASC"),
        ResultOrder::Severity { ascending } => (rank_sql(), direction(ascending)),
        ResultOrder::Timestamp { ascending } => (TIME_SQL.to_owned(), direction(ascending)),
    }
}

fn direction(ascending: bool) -> &'static str {
    if ascending {
        "ASC"
    } else {
        "DESC"
    }
}

/// Keeps the rows strictly after `cursor` in `order`.
fn after(sql: &mut Sql, order: ResultOrder, cursor: &ResultCursor) {
    let ns = sql.bind(clean(&cursor.namespace), "text");
    let name = sql.bind(clean(&cursor.report), "text");
    let resource = sql.bind(clean(&cursor.resource), "text");
    let idx = sql.bind(cursor.index, "bigint");
    let tail = format!("(o.namespace, o.name, o.resource, r.idx) > ({ns}, {name}, {resource}, {idx})");
    if order == ResultOrder::Report {
        sql.push(tail);
        return;
    }
    let (lead, dir) = lead(order);
    let beyond = if dir == "ASC" { ">" } else { "<" };
    let key = sql.bind(cursor.key, "bigint");
    sql.push(format!("({lead} {beyond} {key} OR ({lead} = {key} AND {tail}))"));
}

/// Reads one page of `cluster`'s results, and the count when asked, from one snapshot.
pub(crate) async fn query(
    client: &deadpool_postgres::Object,
    cluster: &str,
    q: &ResultQuery,
) -> Result<ResultPage> {
    if crate::results::matches_nothing(&q.filter) {
        // No result can match: the snapshot's revision only.
        let row = client
            .query_opt("SELECT revision FROM meta WHERE cluster = $1::text", &[&cluster])
            .await
            .map_err(pg_error)?
            .ok_or_else(|| missing_counter(cluster))?;
        return Ok(ResultPage {
            revision: row.try_get(0).map_err(pg_error)?,
            items: Vec::new(),
            more: false,
            total: q.count.then_some(0),
        });
    }
    let mut sql = Sql::default();
    let c = lower(&mut sql, cluster, &q.filter);
    let filter_where = sql.where_sql();
    if let Some(cursor) = &q.after {
        after(&mut sql, q.order, cursor);
    }
    let page_where = sql.where_sql();
    // The walk in report order (many matches) tests the result and severity on the result
    // rows only: with them beside the numbers too, the planner counted both tests' selectivity
    // (541 rows estimated for the 43,916 of `score>=8` with `severity=critical`) and read and
    // sorted every match instead of walking the reports in order (0.1 → 0.9 s).
    let mut walk = Sql {
        conditions: Vec::new(),
        params: std::mem::take(&mut sql.params),
    };
    lower_filter(&mut walk, cluster, &q.filter, true, false);
    if let Some(cursor) = &q.after {
        after(&mut walk, q.order, cursor);
    }
    let walk_where = walk.where_sql();
    sql.params = walk.params;
    let limit = q.limit.clamp(1, MAX_PAGE);
    let l = sql.bind(
        i64::try_from(plan_limit(&q.filter, limit) + 1).unwrap_or(i64::MAX),
        "bigint",
    );
    let (lead, dir) = lead(q.order);
    let (inner_lead, outer_lead) = if q.order == ResultOrder::Report {
        (String::new(), String::new())
    } else {
        (format!("{lead} {dir}, "), format!("p.sort_key {dir}, "))
    };
    let from = " FROM results AS r JOIN objects AS o ON o.id = r.object_id";
    let cap = sql.bind(i64::try_from(SORT_THRESHOLD + 1).unwrap_or(i64::MAX), "bigint");
    let (count_cte, count_join, total_sql) = if q.count {
        let counted = if counts::answer(&q.filter, &[]) {
            // From the per-report counts: a few rows per report.
            let from_where = counts::from_where(&mut sql, &c, &q.filter, &[]);
            format!("SELECT coalesce(sum(c.n), 0)::bigint AS n{from_where}")
        } else if let Some(counted) = counts::numbers_count(&mut sql, &c, &q.filter) {
            counted
        } else if needs_report(&q.filter) {
            format!("SELECT count(*) AS n{from}{filter_where}")
        } else {
            // The result rows alone while no deleted report's rows await their purge (the
            // join keeps those out): the filter's indexes may then answer the count without
            // reading the rows for their report (`policy=<a Kyverno policy>`, 40,000 of
            // 1,000,000 results: 466 → 12 ms in EXPLAIN ANALYZE, an index-only scan).
            let mut bare = Sql {
                conditions: Vec::new(),
                params: std::mem::take(&mut sql.params),
            };
            lower_rows(&mut bare, cluster, &q.filter, false);
            let bare_where = bare.where_sql();
            sql.params = bare.params;
            format!(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM purges WHERE cluster = {c}) \
                 THEN (SELECT count(*){from}{filter_where}) \
                 ELSE (SELECT count(*) FROM results AS r{bare_where}) END AS n"
            )
        };
        // A first page's probe (`few`, below) holds every match when it holds fewer than its
        // cap: then it is the count, and the filter is not read a second time (a pair with no
        // match read the 83,498 rows of `score>=8` for the page and again for its count).
        // The other branch runs only when needed (a subquery in CASE is evaluated lazily).
        let counted = match q.after {
            None => format!(
                "SELECT CASE WHEN (SELECT count(*) FROM few) < {cap} THEN (SELECT count(*) FROM few) \
                 ELSE (SELECT n FROM ({counted}) AS all_matches) END AS n"
            ),
            Some(_) => counted,
        };
        (format!(", t AS ({counted})"), " CROSS JOIN t", "t.n")
    } else {
        (String::new(), "", "NULL::bigint")
    };
    // Few matches (a bounded probe tells) are read through the filter's indexes and sorted;
    // many are read in report order, stopping after the page. Without the probe, a small
    // LIMIT tempts the planner to walk every report in order hoping to meet matches early,
    // which reads them all when the filter matches a few results (a smaller page slower than
    // a larger one). The branch not taken is gated by a one-time filter and never runs.
    let order = format!("ORDER BY {inner_lead}o.namespace, o.name, o.resource, r.idx LIMIT {l}");
    let statement = format!(
        "WITH m AS (SELECT revision FROM meta WHERE cluster = {c}), \
         few AS MATERIALIZED (SELECT r.object_id, r.idx{from}{page_where} LIMIT {cap}){count_cte}, \
         p AS ((SELECT {RECORD_COLUMNS}, {lead} AS sort_key FROM few AS f \
                JOIN results AS r ON r.object_id = f.object_id AND r.idx = f.idx \
                JOIN objects AS o ON o.id = r.object_id \
                WHERE (SELECT count(*) FROM few) < {cap} {order}) \
               UNION ALL \
               (SELECT {RECORD_COLUMNS}, {lead} AS sort_key{from}{walk_where} \
                AND (SELECT count(*) FROM few) >= {cap} {order})) \
         SELECT m.revision, {total_sql}, p.* FROM m{count_join} LEFT JOIN p ON true \
         ORDER BY {outer_lead}p.namespace, p.name, p.resource, p.idx"
    );
    let rows = client
        .query(statement.as_str(), &sql.param_refs())
        .await
        .map_err(pg_error)?;
    // The LEFT JOIN's single row of an empty page has no report.
    let page = page_rows(
        &rows,
        cluster,
        limit,
        |r| Ok(r.try_get::<_, Option<String>>(2)?.is_some()),
        record,
    )?;
    Ok(ResultPage {
        revision: page.revision,
        items: page.items,
        more: page.more,
        total: page.total,
    })
}

/// Whether the filter tests a column of the report (its namespace, resource or name).
fn needs_report(filter: &ResultFilter) -> bool {
    filter.namespace.is_some()
        || filter.conditions.iter().any(|c| match c {
            Condition::In(col, _) | Condition::NotIn(col, _) => crate::rows::on_report(*col),
            _ => false,
        })
}

/// The `LIMIT` the page statement is planned and run with (the page is cut to `limit` rows
/// when read). A message test is a substring scan whose selectivity the planner can only
/// guess: with a small `LIMIT` it chose to walk every report in order hoping to meet matches
/// early, which reads them all when the other conditions leave few (`message~openssl` pairs:
/// a page of 1 or 50 slower than one of 500). Such a filter is read with the same plan for
/// every page up to [`SORT_THRESHOLD`] rows.
fn plan_limit(filter: &ResultFilter, limit: usize) -> usize {
    let guessed = filter
        .conditions
        .iter()
        .any(|c| matches!(c, Condition::MessageContains(text) if !text.is_empty()));
    if guessed {
        limit.max(SORT_THRESHOLD)
    } else {
        limit
    }
}

/// A page read by `WITH m AS (counter) … SELECT m.revision, total, p.* FROM m LEFT JOIN p`:
/// the revision and count from the first row, at most `limit` items (rows whose page columns
/// are present), and whether a row beyond them was read.
pub(super) struct PageRows<T> {
    pub revision: i64,
    pub total: Option<u64>,
    pub items: Vec<T>,
    pub more: bool,
}

/// Reads [`PageRows`] from `rows`; `present` says whether a row carries a page item.
pub(super) fn page_rows<T>(
    rows: &[Row],
    cluster: &str,
    limit: usize,
    present: impl Fn(&Row) -> std::result::Result<bool, tokio_postgres::Error>,
    item: impl Fn(&Row) -> std::result::Result<T, tokio_postgres::Error>,
) -> crate::Result<PageRows<T>> {
    let first = rows.first().ok_or_else(|| missing_counter(cluster))?;
    let revision: i64 = first.try_get(0).map_err(pg_error)?;
    let total = first
        .try_get::<_, Option<i64>>(1)
        .map_err(pg_error)?
        .map(|n| u64::try_from(n).unwrap_or(0));
    let mut items = Vec::with_capacity(rows.len().min(limit));
    let mut more = false;
    for row in rows {
        if !present(row).map_err(pg_error)? {
            continue;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(item(row).map_err(pg_error)?);
    }
    Ok(PageRows {
        revision,
        total,
        items,
        more,
    })
}

/// The error when the cluster's counter row is missing (the store creates it on connect).
pub(super) fn missing_counter(cluster: &str) -> crate::Error {
    crate::Error::internal(format!("the counter row of cluster {cluster:?} is missing"))
}

/// A row of the page query: revision and count first, then the record's columns.
fn record(r: &Row) -> std::result::Result<ResultRecord, tokio_postgres::Error> {
    Ok(ResultRecord {
        namespace: r.try_get(2)?,
        resource: r.try_get(3)?,
        report: r.try_get(4)?,
        report_uid: r.try_get(5)?,
        report_revision: r.try_get(6)?,
        report_created: r.try_get(7)?,
        index: i64::from(r.try_get::<_, i32>(8)?),
        policy: r.try_get(9)?,
        rule: r.try_get(10)?,
        result: r.try_get(11)?,
        severity: r.try_get(12)?,
        category: r.try_get(13)?,
        source: r.try_get(14)?,
        scored: r.try_get(15)?,
        timestamp: r.try_get(16)?,
        message: r.try_get(17)?,
        properties: r.try_get(18)?,
        resources: r.try_get(19)?,
        subject_api_version: r.try_get(20)?,
        subject_kind: r.try_get(21)?,
        subject_namespace: r.try_get(22)?,
        subject_name: r.try_get(23)?,
        subject_uid: r.try_get(24)?,
    })
}
