//! `results` and `summary`: the result query API (`results.prext.io`) from the command line,
//! with `--fail-on` exit codes for CI.

use prext_api::results::query::severity_rank;
use serde_json::Value;

use super::client::{usage, Conn, PluginError, PluginResult};
use super::table::{self, Cell, Color, ColorChoice, CsvColumn};

/// The base path of the result API.
const BASE: &str = "/apis/results.prext.io/v1alpha1";
/// Results read per request.
const PAGE: usize = 500;
/// Severities from the most severe, for `--fail-on`.
const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

/// The filters both commands take.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Filters {
    /// List across all namespaces (cluster-scoped reports included).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Results (comma-separated): pass, fail, warn, error, skip.
    #[arg(long, value_delimiter = ',')]
    pub result: Vec<String>,
    /// Severities (comma-separated): critical, high, medium, low, info.
    #[arg(long, value_delimiter = ',')]
    pub severity: Vec<String>,
    /// The policy.
    #[arg(long)]
    pub policy: Option<String>,
    /// The rule.
    #[arg(long)]
    pub rule: Option<String>,
    /// The category.
    #[arg(long)]
    pub category: Option<String>,
    /// The source (the producing tool).
    #[arg(long)]
    pub source: Option<String>,
    /// The report kind: PolicyReport, ClusterPolicyReport, Report, …, or a short name (polr).
    #[arg(long)]
    pub report_kind: Option<String>,
    /// The report's name.
    #[arg(long)]
    pub report: Option<String>,
    /// The subject's kind (Pod, Deployment, …).
    #[arg(long)]
    pub subject_kind: Option<String>,
    /// The subject's name.
    #[arg(long)]
    pub subject_name: Option<String>,
    /// The subject's namespace.
    #[arg(long)]
    pub subject_namespace: Option<String>,
    /// The subject's uid.
    #[arg(long)]
    pub subject_uid: Option<String>,
    /// The subject's apiVersion.
    #[arg(long)]
    pub subject_api_version: Option<String>,
    /// Keep results whose message contains this text.
    #[arg(long)]
    pub message: Option<String>,
    /// A property test: `score>=8`, `cvss<4`, `resource=apt`, `key`, `!key` (repeatable).
    #[arg(long = "property", value_name = "EXPR")]
    pub properties: Vec<String>,
    /// A raw label selector over the result fields (`severity in (high,critical)`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// A raw field selector over the result fields (`result=fail,policy=x`).
    #[arg(long)]
    pub field_selector: Option<String>,
}

/// Escapes a field-selector value (`\`, `,`, `=`).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=")
}

impl Filters {
    /// The query parameters of these filters, URL-encoded (each starts with `&`).
    pub fn query(&self) -> String {
        let mut fields: Vec<String> = self.field_selector.iter().cloned().collect();
        let mut labels: Vec<String> = self.selector.iter().cloned().collect();
        for (key, values) in [("result", &self.result), ("severity", &self.severity)] {
            match values.as_slice() {
                [] => {}
                [one] => fields.push(format!("{key}={}", escape(one))),
                many => labels.push(format!("{key} in ({})", many.join(","))),
            }
        }
        for (key, value) in [
            ("policy", &self.policy),
            ("rule", &self.rule),
            ("category", &self.category),
            ("source", &self.source),
            ("report.kind", &self.report_kind),
            ("report.name", &self.report),
            ("subject.kind", &self.subject_kind),
            ("subject.name", &self.subject_name),
            ("subject.namespace", &self.subject_namespace),
            ("subject.uid", &self.subject_uid),
            ("subject.apiVersion", &self.subject_api_version),
        ] {
            if let Some(v) = value {
                fields.push(format!("{key}={}", escape(v)));
            }
        }
        let mut q = form_urlencoded::Serializer::new(String::new());
        if !fields.is_empty() {
            q.append_pair("fieldSelector", &fields.join(","));
        }
        if !labels.is_empty() {
            q.append_pair("labelSelector", &labels.join(","));
        }
        for p in &self.properties {
            q.append_pair("property", p);
        }
        if let Some(m) = &self.message {
            q.append_pair("message", m);
        }
        let q = q.finish();
        if q.is_empty() {
            q
        } else {
            format!("&{q}")
        }
    }

    /// The collection path of `plural` for these filters' scope.
    pub fn path(&self, conn: &Conn, plural: &str) -> String {
        if self.all_namespaces {
            format!("{BASE}/{plural}")
        } else {
            format!("{BASE}/namespaces/{}/{plural}", conn.namespace)
        }
    }
}

/// `--fail-on SEVERITY`: the label selector matching failing results at or above it.
pub fn fail_on_selector(threshold: &str) -> PluginResult<String> {
    let rank = severity_rank(Some(threshold));
    if rank == 0 {
        return Err(PluginError::BadFlag(format!(
            "--fail-on: unknown severity {threshold:?}: critical, high, medium, low, info"
        )));
    }
    let at_least: Vec<&str> = SEVERITIES
        .iter()
        .copied()
        .filter(|s| severity_rank(Some(s)) >= rank)
        .collect();
    Ok(format!(
        "result in (fail,error),severity in ({})",
        at_least.join(",")
    ))
}

/// Whether any result matching the filters fails at `threshold` or above.
pub async fn fails(conn: &Conn, filters: &Filters, threshold: &str) -> PluginResult<bool> {
    let mut f = filters.clone();
    let extra = fail_on_selector(threshold)?;
    f.selector = Some(match f.selector.take() {
        Some(s) if !s.is_empty() => format!("{s},{extra}"),
        _ => extra,
    });
    let path = format!(
        "{}?limit=1&count=true{}",
        f.path(conn, "policyresults"),
        f.query()
    );
    let page = conn.get_json(&path, None).await?;
    Ok(page["total"].as_u64().unwrap_or(0) > 0)
}

/// `-o` of `results`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResultsOutput {
    Table,
    Wide,
    Json,
    Csv,
}

/// The CSV columns of a result.
const RESULT_CSV: &[CsvColumn] = &[
    ("namespace", &["metadata", "namespace"]),
    ("report_kind", &["report", "kind"]),
    ("report", &["report", "name"]),
    ("index", &["index"]),
    ("policy", &["policy"]),
    ("rule", &["rule"]),
    ("result", &["result"]),
    ("severity", &["severity"]),
    ("category", &["category"]),
    ("source", &["source"]),
    ("subject_kind", &["subject", "kind"]),
    ("subject_namespace", &["subject", "namespace"]),
    ("subject_name", &["subject", "name"]),
    ("message", &["message"]),
];

/// Options of `results`.
pub struct ResultsOptions<'a> {
    pub filters: &'a Filters,
    pub output: ResultsOutput,
    pub sort: Option<&'a str>,
    /// At most this many results.
    pub limit: Option<usize>,
}

/// `results`: lists the matching results, page by page.
pub async fn results(conn: &Conn, o: ResultsOptions<'_>) -> PluginResult<()> {
    let base = o.filters.path(conn, "policyresults");
    let mut sort = String::new();
    if let Some(s) = o.sort {
        sort = format!("&sort={s}");
    }
    let table_output = matches!(o.output, ResultsOutput::Table | ResultsOutput::Wide);
    let accept = table_output.then_some(super::reports::ACCEPT_TABLE);
    let mut token = String::new();
    let mut shown = 0usize;
    let mut rows: Vec<Vec<Cell>> = Vec::new();
    let mut items: Vec<Value> = Vec::new();
    let mut header_done = false;
    loop {
        let page_size = o.limit.map_or(PAGE, |l| l.saturating_sub(shown).clamp(1, PAGE));
        let mut path = format!("{base}?limit={page_size}{sort}{}", o.filters.query());
        if !token.is_empty() {
            path.push_str(&format!("&continue={token}"));
        }
        let page = conn.get_json(&path, accept).await?;
        if table_output {
            let cols = table::visible_columns(&page, o.output == ResultsOutput::Wide);
            if !header_done {
                rows.push(table::table_header(&page, &cols, o.filters.all_namespaces));
                header_done = true;
            }
            let new = table::table_rows(&page, &cols, o.filters.all_namespaces);
            shown += new.len();
            rows.extend(new);
        } else {
            let new = page["items"].as_array().cloned().unwrap_or_default();
            shown += new.len();
            if o.output == ResultsOutput::Csv && !header_done {
                table::emit(&table::csv_header(RESULT_CSV))?;
                header_done = true;
            }
            if o.output == ResultsOutput::Csv {
                for r in &new {
                    table::emit(&table::csv_row(r, RESULT_CSV))?;
                }
            } else {
                items.extend(new);
            }
        }
        token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if token.is_empty() || o.limit.is_some_and(|l| shown >= l) {
            break;
        }
    }
    match o.output {
        ResultsOutput::Json => {
            let list = serde_json::json!({"apiVersion": "results.prext.io/v1alpha1", "kind": "PolicyResultList", "items": items});
            table::emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            ))?;
        }
        ResultsOutput::Csv => {}
        ResultsOutput::Table | ResultsOutput::Wide if shown == 0 => eprintln!("No results found."),
        ResultsOutput::Table | ResultsOutput::Wide => table::emit(&table::render(&rows, false))?,
    }
    Ok(())
}

/// Options of `summary`.
pub struct SummaryOptions<'a> {
    pub filters: &'a Filters,
    pub by: &'a str,
    pub color: ColorChoice,
    /// Only the first N groups of the order.
    pub top: Option<usize>,
    /// The order (`sort` of the API); `--top` alone ranks by failures.
    pub sort: Option<&'a str>,
}

/// The query parameters of a summary's order and size (each starts with `&`).
pub fn summary_paging(top: Option<usize>, sort: Option<&str>) -> PluginResult<String> {
    if top == Some(0) {
        return Err(usage("--top: must be at least 1"));
    }
    let sort = sort.or(top.map(|_| "fail"));
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(s) = sort {
        q.append_pair("sort", s);
    }
    if let Some(n) = top {
        q.append_pair("limit", &n.to_string());
    }
    let q = q.finish();
    Ok(if q.is_empty() { q } else { format!("&{q}") })
}

/// `summary`: pass/fail/warn/error/skip by group, totals at the bottom.
pub async fn summary(conn: &Conn, o: SummaryOptions<'_>) -> PluginResult<()> {
    let path = format!(
        "{}?groupBy={}{}{}",
        o.filters.path(conn, "resultsummaries"),
        o.by,
        summary_paging(o.top, o.sort)?,
        o.filters.query()
    );
    let list = conn.get_json(&path, None).await?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let counts = ["pass", "fail", "warn", "error", "skip"];
    let colors = [
        Color::Green,
        Color::Red,
        Color::Yellow,
        Color::Magenta,
        Color::Grey,
    ];
    let header_name = o.by.replace('.', " ").to_uppercase();
    let mut rows: Vec<Vec<Cell>> = vec![std::iter::once(header_name)
        .chain(counts.iter().map(|c| c.to_uppercase()))
        .chain(["TOTAL".to_owned()])
        .map(Cell::from)
        .collect()];
    let mut totals = [0u64; 5];
    let mut grand = 0u64;
    for item in &items {
        let group = item["group"].as_str().unwrap_or_default();
        let label = match (group, o.by) {
            ("", "namespace") => "(cluster)".to_owned(),
            ("", _) => "(none)".to_owned(),
            (g, _) => g.to_owned(),
        };
        let mut row = vec![Cell::from(label)];
        for (i, c) in counts.iter().enumerate() {
            let n = item["results"][c].as_u64().unwrap_or(0);
            totals[i] += n;
            row.push(number(n, colors[i]));
        }
        let total = item["total"].as_u64().unwrap_or(0);
        grand += total;
        row.push(Cell::from(total.to_string()));
        rows.push(row);
    }
    let mut bottom = vec![Cell {
        text: match o.top {
            Some(n) => format!("TOTAL (top {n})"),
            None => "TOTAL".into(),
        },
        color: Some(Color::Bold),
    }];
    bottom.extend(totals.iter().zip(colors).map(|(n, c)| number(*n, c)));
    bottom.push(Cell {
        text: grand.to_string(),
        color: Some(Color::Bold),
    });
    rows.push(bottom);
    table::emit(&table::render(&rows, o.color.enabled()))?;
    Ok(())
}

/// A count, colored only when not zero.
fn number(n: u64, color: Color) -> Cell {
    Cell {
        text: n.to_string(),
        color: (n > 0).then_some(color),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_selectors() {
        let f = Filters {
            result: vec!["fail".into()],
            severity: vec!["high".into(), "critical".into()],
            category: Some("Pod Security, Baseline".into()),
            properties: vec!["score>=8".into()],
            ..Filters::default()
        };
        let q = f.query();
        let pairs: Vec<(String, String)> = form_urlencoded::parse(q.trim_start_matches('&').as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            pairs,
            [
                (
                    "fieldSelector".to_owned(),
                    "result=fail,category=Pod Security\\, Baseline".to_owned()
                ),
                (
                    "labelSelector".to_owned(),
                    "severity in (high,critical)".to_owned()
                ),
                ("property".to_owned(), "score>=8".to_owned()),
            ]
        );
        assert_eq!(Filters::default().query(), "");
    }

    #[test]
    fn top_ranks_by_failures_unless_sorted() {
        assert_eq!(summary_paging(None, None).expect("none"), "");
        assert_eq!(
            summary_paging(Some(10), None).expect("top"),
            "&sort=fail&limit=10"
        );
        assert_eq!(
            summary_paging(Some(3), Some("fail.critical")).expect("cell"),
            "&sort=fail.critical&limit=3"
        );
        assert_eq!(summary_paging(None, Some("total")).expect("sort"), "&sort=total");
        assert!(summary_paging(Some(0), None).is_err());
    }

    #[test]
    fn fail_on_thresholds() {
        assert_eq!(
            fail_on_selector("high").expect("high"),
            "result in (fail,error),severity in (critical,high)"
        );
        assert!(fail_on_selector("info")
            .expect("info")
            .ends_with("(critical,high,medium,low,info)"));
        assert!(fail_on_selector("severe").is_err());
    }
}
