//! The figures of a run: printed as a table while the run goes, each prext figure beside its
//! references (the raw store of its backend, and etcd) and their ratios (prext ÷ reference),
//! and written at the end as JSON and CSV for
//! plots (`crates/prext-bench/plot.py`).

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Row {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// What was measured, e.g. `create`.
    pub measure: String,
    /// Concurrent clients, for throughput figures.
    pub concurrency: Option<usize>,
    /// `objects/s`, `ms`, `MB/s`, `MB` or `bytes`.
    pub unit: &'static str,
    pub prext: f64,
    /// The same figure for the raw reference, when one exists.
    pub reference: Option<f64>,
    /// The same figure for etcd, when measured.
    pub etcd: Option<f64>,
}

impl Row {
    /// prext ÷ reference.
    pub fn ratio(&self) -> Option<f64> {
        self.reference.filter(|r| *r > 0.0).map(|r| self.prext / r)
    }

    /// prext ÷ etcd.
    pub fn etcd_ratio(&self) -> Option<f64> {
        self.etcd.filter(|r| *r > 0.0).map(|r| self.prext / r)
    }
}

/// Every row of a run.
#[derive(Debug, Default)]
pub struct Table {
    pub rows: Vec<Row>,
}

fn fmt(v: f64, unit: &str) -> String {
    let digits = if v.abs() >= 100.0 || unit == "bytes" {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {unit}")
}

/// The table's header line.
pub fn header() -> String {
    format!(
        "{:<9} {:<46} {:>14} {:>14} {:>6} {:>14} {:>7}",
        "backend", "measure", "prext", "raw store", "ratio", "etcd", "vs etcd"
    )
}

impl Table {
    /// Records a row and prints it.
    pub fn add(&mut self, row: Row) {
        let label = match row.concurrency {
            Some(c) => format!("{}, {c} client(s)", row.measure),
            None => row.measure.clone(),
        };
        let value = |v: Option<f64>| v.map(|r| fmt(r, row.unit)).unwrap_or_else(|| "-".into());
        let ratio = |v: Option<f64>| v.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into());
        println!(
            "{:<9} {:<46} {:>14} {:>14} {:>6} {:>14} {:>7}",
            row.backend,
            label,
            fmt(row.prext, row.unit),
            value(row.reference),
            ratio(row.ratio()),
            value(row.etcd),
            ratio(row.etcd_ratio())
        );
        self.rows.push(row);
    }

    /// The rows as a JSON document, with the run's parameters.
    pub fn to_json(&self, params: Value) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({"backend": r.backend, "measure": r.measure, "concurrency": r.concurrency,
                       "unit": r.unit, "prext": r.prext, "reference": r.reference, "ratio": r.ratio(),
                       "etcd": r.etcd, "etcd_ratio": r.etcd_ratio()})
            })
            .collect();
        json!({"params": params, "rows": rows})
    }

    /// The rows as CSV: `backend,measure,concurrency,unit,prext,reference,ratio,etcd,etcd_ratio`.
    pub fn to_csv(&self) -> String {
        let mut out =
            String::from("backend,measure,concurrency,unit,prext,reference,ratio,etcd,etcd_ratio\n");
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        for r in &self.rows {
            out.push_str(&format!(
                "{},\"{}\",{},{},{},{},{},{},{}\n",
                r.backend,
                r.measure.replace('"', "\"\""),
                r.concurrency.map(|c| c.to_string()).unwrap_or_default(),
                r.unit,
                r.prext,
                opt(r.reference),
                opt(r.ratio()),
                opt(r.etcd),
                opt(r.etcd_ratio())
            ));
        }
        out
    }

    /// Writes `results.json` and `results.csv` into `dir`.
    pub fn write(&self, dir: &Path, params: Value) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut f = std::fs::File::create(dir.join("results.json"))?;
        serde_json::to_writer_pretty(&mut f, &self.to_json(params))?;
        f.write_all(b"\n")?;
        std::fs::write(dir.join("results.csv"), self.to_csv())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(prext: f64, reference: Option<f64>) -> Row {
        Row {
            backend: "sqlite",
            measure: "create \"x\"".into(),
            concurrency: Some(16),
            unit: "objects/s",
            prext,
            reference,
            etcd: Some(25.0),
        }
    }

    #[test]
    fn ratio_is_prext_over_reference() {
        assert_eq!(row(50.0, Some(200.0)).ratio(), Some(0.25));
        assert_eq!(row(50.0, None).ratio(), None);
        assert_eq!(row(50.0, Some(0.0)).ratio(), None);
        assert_eq!(row(50.0, None).etcd_ratio(), Some(2.0));
    }

    #[test]
    fn csv_quotes_measures_and_leaves_missing_values_empty() {
        let t = Table {
            rows: vec![row(1.5, None)],
        };
        assert_eq!(
            t.to_csv(),
            "backend,measure,concurrency,unit,prext,reference,ratio,etcd,etcd_ratio\n\
             sqlite,\"create \"\"x\"\"\",16,objects/s,1.5,,,25,0.06\n"
        );
    }
}
