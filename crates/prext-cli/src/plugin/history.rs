//! `findings` and `trend`: findings over time (`findings` and `resulttrends` of
//! `results.prext.io`) from the command line. `findings --new --since 7d` lists what started
//! failing, `--resolved` what was fixed; `trend` draws each group's series as a sparkline with
//! its first, last, min and max, or writes it as CSV or JSON for spreadsheets.

use prext_api::results::findings::sparkline;
use serde_json::{json, Value};

use super::client::{usage, Conn, PluginResult};
use super::results::Filters;
use super::table::{self, field_text as text, Cell, CsvColumn};

/// Findings read per request.
const PAGE: usize = 500;

/// `-o` of `findings` and `trend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryOutput {
    Table,
    Wide,
    Json,
    Csv,
}

/// Which findings `findings` lists.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Which {
    /// Findings first seen in the window (what started failing).
    #[arg(long, conflicts_with_all = ["resolved", "open"])]
    pub new: bool,
    /// Findings resolved in the window (what was fixed).
    #[arg(long, conflicts_with = "open")]
    pub resolved: bool,
    /// Only findings still open.
    #[arg(long)]
    pub open: bool,
}

/// The `since`/`until` parameters, URL-encoded (each starts with `&`).
fn window(since: Option<&str>, until: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    if let Some(s) = since {
        q.append_pair("since", s);
    }
    if let Some(u) = until {
        q.append_pair("until", u);
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("&{q}")
    }
}

/// The CSV columns of a finding.
const FINDING_CSV: &[CsvColumn] = &[
    ("namespace", &["metadata", "namespace"]),
    ("name", &["metadata", "name"]),
    ("policy", &["policy"]),
    ("rule", &["rule"]),
    ("result", &["result"]),
    ("severity", &["severity"]),
    ("source", &["source"]),
    ("subject_kind", &["subject", "kind"]),
    ("subject_namespace", &["subject", "namespace"]),
    ("subject_name", &["subject", "name"]),
    ("open", &["open"]),
    ("first_seen", &["firstSeen"]),
    ("last_seen", &["lastSeen"]),
    ("resolved_at", &["resolvedAt"]),
];

/// Options of `findings`.
pub struct FindingsOptions<'a> {
    pub filters: &'a Filters,
    pub which: Which,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub output: HistoryOutput,
}

/// `findings`: lists the matching findings, page by page.
pub async fn findings(conn: &Conn, o: FindingsOptions<'_>) -> PluginResult<()> {
    let mut params = window(o.since, o.until);
    if o.which.new {
        params.push_str("&event=opened");
    } else if o.which.resolved {
        params.push_str("&event=resolved");
    }
    if o.which.open {
        params.push_str("&open=true");
    }
    let base = o.filters.path(conn, "findings");
    let table_output = matches!(o.output, HistoryOutput::Table | HistoryOutput::Wide);
    let accept = table_output.then_some(super::reports::ACCEPT_TABLE);
    let (mut rows, mut items): (Vec<Vec<Cell>>, Vec<Value>) = (Vec::new(), Vec::new());
    let mut token = String::new();
    let mut shown = 0usize;
    if o.output == HistoryOutput::Csv {
        table::emit(&table::csv_header(FINDING_CSV))?;
    }
    loop {
        let mut path = format!("{base}?limit={PAGE}{params}{}", o.filters.query());
        if !token.is_empty() {
            path.push_str(&format!("&continue={token}"));
        }
        let page = conn.get_json(&path, accept).await?;
        if table_output {
            let cols = table::visible_columns(&page, o.output == HistoryOutput::Wide);
            if rows.is_empty() {
                rows.push(table::table_header(&page, &cols, o.filters.all_namespaces));
            }
            let new = table::table_rows(&page, &cols, o.filters.all_namespaces);
            shown += new.len();
            rows.extend(new);
        } else {
            let new = page["items"].as_array().cloned().unwrap_or_default();
            shown += new.len();
            match o.output {
                HistoryOutput::Csv => {
                    for f in &new {
                        table::emit(&table::csv_row(f, FINDING_CSV))?;
                    }
                }
                _ => items.extend(new),
            }
        }
        token = text(&page["metadata"]["continue"]);
        if token.is_empty() {
            break;
        }
    }
    match o.output {
        HistoryOutput::Json => {
            let list =
                json!({"apiVersion": "results.prext.io/v1alpha1", "kind": "FindingList", "items": items});
            table::emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            ))?;
        }
        HistoryOutput::Csv => {}
        _ if shown == 0 => eprintln!("No findings found."),
        _ => table::emit(&table::render(&rows, false))?,
    }
    Ok(())
}

/// Options of `trend`.
pub struct TrendOptions<'a> {
    pub filters: &'a Filters,
    pub by: &'a str,
    pub interval: &'a str,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub output: HistoryOutput,
}

fn counts(series: &Value) -> Vec<u64> {
    series["points"]
        .as_array()
        .map(|p| p.iter().map(|p| p["count"].as_u64().unwrap_or(0)).collect())
        .unwrap_or_default()
}

/// `trend`: one line per group, its series as a sparkline with first, last, min and max.
pub async fn trend(conn: &Conn, o: TrendOptions<'_>) -> PluginResult<()> {
    if !matches!(o.interval, "day" | "hour") {
        return Err(usage(format!("--interval: {:?}: day or hour", o.interval)));
    }
    let path = format!(
        "{}?groupBy={}&interval={}{}{}",
        o.filters.path(conn, "resulttrends"),
        o.by,
        o.interval,
        window(o.since, o.until),
        o.filters.query()
    );
    let list = conn.get_json(&path, None).await?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    match o.output {
        HistoryOutput::Json => {
            table::emit(&format!(
                "{}\n",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            ))?;
        }
        HistoryOutput::Csv => {
            table::emit(&table::csv_line(&["group", "time", "count"].map(str::to_owned)))?;
            for s in &items {
                for p in s["points"].as_array().into_iter().flatten() {
                    table::emit(&table::csv_line(&[
                        text(&s["group"]),
                        text(&p["time"]),
                        text(&p["count"]),
                    ]))?;
                }
            }
        }
        _ if items.is_empty() => eprintln!("No findings in this range."),
        _ => {
            let group = o.by.to_uppercase();
            let mut rows: Vec<Vec<Cell>> = vec![[group.as_str(), "TREND", "FIRST", "LAST", "MIN", "MAX"]
                .map(Cell::from)
                .to_vec()];
            for s in &items {
                let name = match text(&s["group"]) {
                    g if g.is_empty() => "<none>".to_owned(),
                    g => g,
                };
                rows.push(vec![
                    Cell::from(name),
                    Cell::from(sparkline(&counts(s))),
                    Cell::from(text(&s["first"])),
                    Cell::from(text(&s["last"])),
                    Cell::from(text(&s["min"])),
                    Cell::from(text(&s["max"])),
                ]);
            }
            table::emit(&table::render(&rows, false))?;
        }
    }
    Ok(())
}
