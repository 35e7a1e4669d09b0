//! Text output: kubectl-style aligned tables (headers upper-cased, columns three spaces apart),
//! `meta.k8s.io` Tables from the server, CSV, and ANSI colors for terminals.

use std::io::IsTerminal;

use serde_json::Value;

/// Writes to stdout. A closed pipe (`kubectl prext results | head`) ends the command quietly.
pub fn emit(text: &str) -> super::client::PluginResult<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(super::client::PluginError::Closed),
        Err(e) => Err(super::client::PluginError::Usage(format!(
            "writing the output: {e}"
        ))),
    }
}

/// Whether to color the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// When stdout is a terminal and `NO_COLOR` is unset.
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Resolves `auto`.
    pub fn enabled(self) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

/// An ANSI color.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Green,
    Red,
    Yellow,
    Magenta,
    Grey,
    Bold,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Green => "32",
            Color::Red => "31",
            Color::Yellow => "33",
            Color::Magenta => "35",
            Color::Grey => "90",
            Color::Bold => "1",
        }
    }
}

/// One cell: its text and, optionally, a color.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub color: Option<Color>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, color: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::from(text.to_owned())
    }
}

/// Renders rows (the first is the header) aligned like kubectl's tab writer.
pub fn render(rows: &[Vec<Cell>], color: bool) -> String {
    render_aligned(rows, color, &mut Vec::new())
}

/// [`render`] with column widths at least `widths`, which it widens to fit `rows`: rows
/// printed later (`get -w`) stay aligned with the header and the rows printed before them.
pub fn render_aligned(rows: &[Vec<Cell>], color: bool, widths: &mut Vec<usize>) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    if widths.len() < columns {
        widths.resize(columns, 0);
    }
    for (c, width) in widths.iter_mut().enumerate() {
        let needed = rows
            .iter()
            .filter_map(|r| r.get(c))
            .map(|cell| cell.text.chars().count())
            .max()
            .unwrap_or(0);
        *width = (*width).max(needed);
    }
    let widths = &*widths;
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let text = match (color, cell.color) {
                (true, Some(col)) if !cell.text.is_empty() => {
                    format!("\x1b[{}m{}\x1b[0m", col.code(), cell.text)
                }
                _ => cell.text.clone(),
            };
            line.push_str(&text);
            if c + 1 < row.len() {
                let pad = widths[c] - cell.text.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A cell of a server Table as kubectl prints it (nothing for null).
pub fn cell_text(v: &Value) -> String {
    match v {
        // kubectl prints nothing for a null cell (`printTable` of
        // k8s.io/cli-runtime/pkg/printers/tableprinter.go prints only non-nil cells), and
        // numbers as Go's `fmt.Fprint` does (a whole float64 without a fraction).
        Value::Null => String::new(),
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 && f.abs() < 1e21 {
                format!("{f:.0}")
            } else {
                f.to_string()
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The indices of a Table's columns to show (`wide` shows every priority).
pub fn visible_columns(table: &Value, wide: bool) -> Vec<usize> {
    table["columnDefinitions"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .enumerate()
                .filter(|(_, c)| wide || c["priority"].as_i64().unwrap_or(0) == 0)
                .map(|(i, _)| i)
                .collect()
        })
        .unwrap_or_default()
}

/// The header row of a server Table (with a leading NAMESPACE when `namespaced`).
pub fn table_header(table: &Value, columns: &[usize], namespaced: bool) -> Vec<Cell> {
    let defs = table["columnDefinitions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut header: Vec<Cell> = Vec::new();
    if namespaced {
        header.push("NAMESPACE".into());
    }
    header.extend(
        columns
            .iter()
            .map(|&i| Cell::from(defs[i]["name"].as_str().unwrap_or_default().to_uppercase())),
    );
    header
}

/// The rows of a server Table.
pub fn table_rows(table: &Value, columns: &[usize], namespaced: bool) -> Vec<Vec<Cell>> {
    let rows = table["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    rows.iter()
        .map(|row| {
            let cells = row["cells"].as_array().map(Vec::as_slice).unwrap_or_default();
            let mut out = Vec::new();
            if namespaced {
                out.push(Cell::from(
                    row["object"]["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default(),
                ));
            }
            out.extend(
                columns
                    .iter()
                    .map(|&i| Cell::from(cells.get(i).map(cell_text).unwrap_or_default())),
            );
            out
        })
        .collect()
}

/// A field of an item as text: nothing for null, a string without quotes, JSON otherwise.
pub fn field_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A CSV column: its header and the JSON path of its value in an item.
pub type CsvColumn = (&'static str, &'static [&'static str]);

/// The CSV header line of `columns`.
pub fn csv_header(columns: &[CsvColumn]) -> String {
    let names: Vec<String> = columns.iter().map(|(name, _)| (*name).to_owned()).collect();
    csv_line(&names)
}

/// The CSV line of `item`: each column's value found by its path (empty when absent).
pub fn csv_row(item: &Value, columns: &[CsvColumn]) -> String {
    let fields: Vec<String> = columns
        .iter()
        .map(|(_, path)| field_text(path.iter().fold(item, |v, key| &v[*key])))
        .collect();
    csv_line(&fields)
}

/// One CSV line (RFC 4180 quoting).
pub fn csv_line(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect();
    quoted.join(",") + "\n"
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn aligned_like_kubectl() {
        let rows = vec![
            vec![Cell::from("NAME"), Cell::from("FAIL")],
            vec![
                Cell::from("a-long-name"),
                Cell {
                    text: "3".into(),
                    color: Some(Color::Red),
                },
            ],
        ];
        assert_eq!(render(&rows, false), "NAME          FAIL\na-long-name   3\n");
        assert_eq!(
            render(&rows, true),
            "NAME          FAIL\na-long-name   \x1b[31m3\x1b[0m\n"
        );
    }

    #[test]
    fn server_tables() {
        let t = json!({
            "columnDefinitions": [{"name": "Name", "priority": 0}, {"name": "Kind", "priority": 1}],
            "rows": [{"cells": ["r1", null], "object": {"metadata": {"namespace": "ns"}}}]
        });
        let cols = visible_columns(&t, false);
        assert_eq!(cols, [0]);
        assert_eq!(table_header(&t, &visible_columns(&t, true), true).len(), 3);
        let rows = table_rows(&t, &visible_columns(&t, true), true);
        assert_eq!(rows[0], vec![Cell::from("ns"), Cell::from("r1"), Cell::from("")]);
        assert_eq!(cell_text(&json!(2.0)), "2");
        assert_eq!(cell_text(&json!(7.5)), "7.5");
        assert_eq!(cell_text(&json!(true)), "true");
    }

    #[test]
    fn later_rows_keep_the_widths_of_earlier_ones() {
        let mut widths = Vec::new();
        let first = render_aligned(
            &[
                vec!["NAME".into(), "FAIL".into()],
                vec!["a-long-name".into(), "1".into()],
            ],
            false,
            &mut widths,
        );
        let later = render_aligned(&[vec!["b".into(), "2".into()]], false, &mut widths);
        let column = |line: &str| line.find(|c: char| c.is_ascii_digit() || c == 'F').unwrap();
        let header = first.lines().next().unwrap();
        assert_eq!(column(header), column(later.trim_end()), "{first}{later}");
    }

    #[test]
    fn csv_rows_follow_their_column_paths() {
        const COLUMNS: &[CsvColumn] = &[
            ("ns", &["metadata", "namespace"]),
            ("n", &["n"]),
            ("gone", &["x", "y"]),
        ];
        let item = json!({"metadata": {"namespace": "a,b"}, "n": 3});
        assert_eq!(csv_header(COLUMNS), "ns,n,gone\n");
        assert_eq!(csv_row(&item, COLUMNS), "\"a,b\",3,\n");
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(
            csv_line(&["a".into(), "b,c".into(), "say \"hi\"".into()]),
            "a,\"b,c\",\"say \"\"hi\"\"\"\n"
        );
    }
}
