//! The result-query benchmark (`prext-bench --results`): loads `--reports` PolicyReports
//! holding `--results-per-report` results each (50,000 × 20 = 1,000,000 by default) straight
//! into the store, boots the real `prext serve` on that database, and measures, in the same
//! run, each query through the result API (`results.prext.io`) beside the status quo: list
//! every report as JSON (paged like `kubectl get -o json`) and filter its results client-side.
//!
//! The reports are built from the repository's test data: Kyverno Pod Security results
//! (`testdata/kyverno-pss.yaml`: policies, rules, categories and messages), trivy
//! vulnerability results (the adapter's fields, with a CVSS `score` property) and kube-bench
//! checks (`testdata/kube-bench-list.yaml`), in proportions of 4:4:2, over 500 namespaces.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use prext_api::report;
use prext_store::sqlite::{SqliteOptions, SqliteStore};
use prext_store::{ObjectKey, ObjectWrite, Store};
use serde_json::{json, Value};

use crate::payload::{load_first_doc, testdata_dir};
use crate::server::Prext;

/// What the benchmark loads.
pub struct Shape {
    pub reports: usize,
    pub results_per_report: usize,
    /// Timed runs of each API query.
    pub runs: usize,
    /// Timed runs of the status quo (each reads every report).
    pub baseline_runs: usize,
}

const NAMESPACES: usize = 500;
const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

/// Result templates taken from the test data.
struct Templates {
    kyverno: Vec<Value>,
    bench: Vec<Value>,
}

fn load_templates() -> anyhow::Result<Templates> {
    let dir = testdata_dir();
    let pss = load_first_doc(&dir.join("kyverno-pss.yaml"))?;
    let kb = load_first_doc(&dir.join("kube-bench-list.yaml"))?;
    let results = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let t = Templates {
        kyverno: results(&pss["results"]),
        bench: results(&kb["results"]),
    };
    anyhow::ensure!(
        !t.kyverno.is_empty() && !t.bench.is_empty(),
        "the test data holds no results"
    );
    Ok(t)
}

/// A small deterministic generator (xorshift), so every run loads the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn trivy_result(rng: &mut Rng, pod: &str, ns: &str, ts: i64) -> Value {
    // CVSS scores spread over 0.0-10.0; severity and result follow them like trivy's.
    let score = rng.below(101) as f64 / 10.0;
    let severity = match score {
        s if s >= 9.0 => "critical",
        s if s >= 7.0 => "high",
        s if s >= 4.0 => "medium",
        _ => "low",
    };
    let result = if score >= 7.0 { "fail" } else { "warn" };
    let cve = format!("CVE-20{:02}-{:05}", 18 + rng.below(7), rng.below(40_000));
    let pkg = ["openssl", "libcurl", "busybox", "apk-tools", "zlib", "glibc"][rng.below(6) as usize];
    json!({
        "category": "Vulnerability Scan",
        "message": format!("{pkg}: vulnerability {cve} in the installed version"),
        "policy": cve,
        "properties": {
            "score": format!("{score:.1}"),
            "resource": pkg,
            "installedVersion": "1.1.1i-r0",
            "fixedVersion": "1.1.1j-r0",
            "primaryLink": format!("https://avd.aquasec.com/nvd/{}", cve.to_lowercase()),
        },
        "resources": [{"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": ns}],
        "result": result,
        "severity": severity,
        "source": "Trivy Vulnerability",
        "timestamp": {"seconds": ts, "nanos": 0},
    })
}

/// The report `i`: its namespace, name and body.
fn report_body(t: &Templates, i: usize, per_report: usize) -> (String, String, Value) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let ns = format!("team-{:03}", i % NAMESPACES);
    let pod = format!("app-{i:06}");
    let ts = 1_700_000_000 + (i as i64 % 86_400);
    let kind = i % 10;
    let (name, results): (String, Vec<Value>) = if kind < 4 {
        // Kyverno: the PSS report's results, a fifth of them failing, a third high.
        let rs = (0..per_report)
            .map(|j| {
                let mut r = t.kyverno[j % t.kyverno.len()].clone();
                let fail = rng.below(5) == 0;
                r["result"] = json!(if fail { "fail" } else { "pass" });
                r["severity"] = json!(if rng.below(3) == 0 { "high" } else { "medium" });
                r["timestamp"] = json!({"seconds": ts, "nanos": 0});
                r["resources"] = json!([{"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": ns}]);
                r
            })
            .collect();
        (format!("kyverno-{pod}"), rs)
    } else if kind < 8 {
        let rs = (0..per_report)
            .map(|_| trivy_result(&mut rng, &pod, &ns, ts))
            .collect();
        (format!("trivy-vuln-{pod}"), rs)
    } else {
        // kube-bench: consecutive checks of the adapter's report, with their properties.
        let start = rng.below(t.bench.len() as u64) as usize;
        let rs = (0..per_report)
            .map(|j| {
                let mut r = t.bench[(start + j) % t.bench.len()].clone();
                r["severity"] = json!(SEVERITIES[rng.below(4) as usize]);
                r["source"] = json!("kube-bench");
                r["timestamp"] = json!({"seconds": ts, "nanos": 0});
                r
            })
            .collect();
        (format!("kube-bench-{pod}"), rs)
    };
    let body = json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": format!("00000000-0000-4000-8000-{i:012}"),
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app.kubernetes.io/managed-by": "prext-bench"},
        },
        "scope": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": ns},
        "results": results,
    });
    (ns, name, body)
}

/// Where the store is kept, given on the command line to reuse a loaded store across runs.
#[derive(Default)]
pub struct Place {
    /// The server's data directory (SQLite: its `prext.db`), kept after the run.
    pub data: Option<std::path::PathBuf>,
    /// A database of a running PostgreSQL cluster.
    pub store_url: Option<String>,
    pub store_password_file: Option<std::path::PathBuf>,
    /// Matrix cases to time (labels containing one of these); all when empty.
    pub only: Vec<String>,
}

/// Where the benchmark's reports are stored: a SQLite file, a database of a throwaway
/// PostgreSQL cluster, or a database of a running one.
pub enum Target {
    Sqlite(std::path::PathBuf),
    Postgres {
        pg: prext_store::testsuite::TempPostgres,
        database: String,
    },
    External {
        url: String,
        password_file: std::path::PathBuf,
    },
}

impl Target {
    async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Target::Sqlite(path) => {
                let path = path.clone();
                Arc::new(
                    tokio::task::spawn_blocking(move || SqliteStore::open(&path, SqliteOptions::default()))
                        .await??,
                )
            }
            Target::Postgres { pg, database } => Arc::new(
                prext_store::postgres::PostgresStore::connect(&pg.url(database), pg.options()).await?,
            ),
            Target::External { url, password_file } => {
                let options = prext_store::postgres::PostgresOptions {
                    password_file: Some(password_file.clone()),
                    ..Default::default()
                };
                Arc::new(prext_store::postgres::PostgresStore::connect(url, options).await?)
            }
        })
    }

    /// The `prext serve` arguments that open this store.
    fn serve_args(&self) -> Vec<String> {
        match self {
            Target::Sqlite(_) => Vec::new(),
            Target::Postgres { pg, database } => vec![
                "--store".to_owned(),
                pg.url(database),
                "--store-password-file".to_owned(),
                pg.password_file().to_string_lossy().into_owned(),
            ],
            Target::External { url, password_file } => vec![
                "--store".to_owned(),
                url.clone(),
                "--store-password-file".to_owned(),
                password_file.to_string_lossy().into_owned(),
            ],
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Target::Sqlite(_) => "sqlite",
            Target::Postgres { .. } | Target::External { .. } => "postgres",
        }
    }
}

/// Writes the reports straight into the store the server will open; `None` when the store
/// already holds them (a kept store, reused).
async fn load(target: &Target, shape: &Shape) -> anyhow::Result<Option<Duration>> {
    let templates = Arc::new(load_templates()?);
    let store = target.open().await?;
    let def =
        prext_api::resources::find("wgpolicyk8s.io", "v1alpha2", "policyreports").context("polr served")?;
    let (ns, name, _) = report_body(&templates, 0, 1);
    if store
        .get(&ObjectKey::new(def.group_resource(), ns, name))
        .await?
        .is_some()
    {
        store.close().await;
        return Ok(None);
    }
    let started = Instant::now();
    let per = shape.results_per_report;
    let writes = futures::stream::iter(0..shape.reports)
        .map(|i| {
            let (store, templates) = (Arc::clone(&store), Arc::clone(&templates));
            tokio::spawn(async move {
                let (ns, name, body) = report_body(&templates, i, per);
                let w = ObjectWrite {
                    key: ObjectKey::new(def.group_resource(), ns, name),
                    uid: body["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
                    labels: [(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "prext-bench".to_owned(),
                    )]
                    .into(),
                    created: "2024-05-01T10:00:00Z".into(),
                    deleting: false,
                    index: report::index(def, &body),
                    body,
                };
                store.create(w).await
            })
        })
        .buffer_unordered(512);
    let outcomes: Vec<_> = writes.collect().await;
    for o in outcomes {
        o??;
    }
    let took = started.elapsed();
    store.close().await;
    Ok(Some(took))
}

/// Percentile of sorted durations, in milliseconds.
pub(crate) fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// Times `runs` calls of `f` (after one warm-up), sorted; returns the last call's value.
pub(crate) async fn timed<T, F, Fut>(runs: usize, mut f: F) -> anyhow::Result<(Vec<Duration>, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut last = f().await?;
    let mut out = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        last = f().await?;
        out.push(t.elapsed());
    }
    out.sort();
    Ok((out, last))
}

/// One API request; checks the status and returns the body as JSON.
pub(crate) async fn get_json(prext: &Prext, path: &str) -> anyhow::Result<Value> {
    let req = http::Request::builder().uri(path).body(Vec::new())?;
    let resp = prext
        .client
        .request_text(req)
        .await
        .with_context(|| format!("GET {path}"))?;
    Ok(serde_json::from_str(&resp)?)
}

/// The status quo: every report listed as JSON in pages of 500 (what `kubectl get polr -A
/// -o json` does), every result tested client-side. Returns the number of matches.
async fn status_quo(prext: &Prext, keep: fn(&Value) -> bool) -> anyhow::Result<usize> {
    let mut matches = 0;
    let mut token = String::new();
    loop {
        let mut path = "/apis/wgpolicyk8s.io/v1alpha2/policyreports?limit=500".to_owned();
        if !token.is_empty() {
            path.push_str("&continue=");
            path.push_str(&token);
        }
        let list = get_json(prext, &path).await?;
        for item in list["items"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let results = item["results"].as_array().map(Vec::as_slice).unwrap_or_default();
            matches += results.iter().filter(|r| keep(r)).count();
        }
        match list["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_owned(),
            _ => return Ok(matches),
        }
    }
}

/// A client-side test of one result (the status quo's filter).
type Keep = fn(&Value) -> bool;

fn fail_high(r: &Value) -> bool {
    r["result"] == "fail" && matches!(r["severity"].as_str(), Some("high" | "critical"))
}

fn cvss_8(r: &Value) -> bool {
    r["properties"]["score"]
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .is_some_and(|s| s >= 8.0)
}

/// Runs the benchmark on `backend` (`sqlite` or `postgres`) and prints its tables; with
/// `matrix`, the filter matrix and the top-N summaries instead of the status-quo comparison.
pub async fn run(
    binary: &std::path::Path,
    shape: Shape,
    backend: &str,
    matrix: bool,
    place: Place,
) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = place.data.clone().unwrap_or_else(|| tmp.path().join("data"));
    std::fs::create_dir_all(&data)?;
    let target = match (backend, place.store_url) {
        ("sqlite", _) => Target::Sqlite(data.join("prext.db")),
        ("postgres", Some(url)) => Target::External {
            url,
            password_file: place
                .store_password_file
                .context("--store-url needs --store-password-file")?,
        },
        ("postgres", None) => {
            let pg = prext_store::testsuite::TempPostgres::new().await;
            let database = pg.create_database().await;
            Target::Postgres { pg, database }
        }
        (other, _) => anyhow::bail!("unknown backend {other:?}: sqlite or postgres"),
    };
    let total = shape.reports * shape.results_per_report;
    println!(
        "prext-bench --results on {}: {} reports, {} results ({} per report), {} runs per query",
        target.name(),
        shape.reports,
        total,
        shape.results_per_report,
        shape.runs
    );
    let took = load(&target, &shape).await?;
    let db_size = std::fs::metadata(data.join("prext.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    match took {
        Some(took) => println!(
            "loaded in {:.1}s through the store ({:.0} results/s), database {:.0} MB",
            took.as_secs_f64(),
            total as f64 / took.as_secs_f64(),
            db_size as f64 / 1024.0 / 1024.0
        ),
        None => println!(
            "reusing the reports already stored (database {:.0} MB)",
            db_size as f64 / 1024.0 / 1024.0
        ),
    }
    let prext = Prext::start(binary, &data, &target.serve_args()).await?;
    if matrix {
        let templates = load_templates()?;
        let kyverno_policy = templates.kyverno[0]["policy"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        crate::results_matrix::run(&prext, shape.runs, &kyverno_policy, &place.only).await?;
        prext.stop();
        return Ok(());
    }
    let base = "/apis/results.prext.io/v1alpha1";
    let queries: [(&str, String, Keep); 2] = [
        (
            "result=fail, severity in (high,critical)",
            format!("{base}/policyresults?fieldSelector=result%3Dfail&labelSelector=severity%20in%20(high%2Ccritical)&limit=500&count=true"),
            fail_high,
        ),
        (
            "CVSS: properties.score >= 8",
            format!("{base}/policyresults?property=score%3E%3D8&limit=500&count=true"),
            cvss_8,
        ),
    ];
    println!();
    println!(
        "{:<42} {:>9} {:>9} {:>11} {:>11} {:>9} {:>9}",
        "query (first page of 500 + total count)",
        "api p50",
        "api p99",
        "quo p50",
        "quo p99",
        "speedup",
        "matches"
    );
    for (label, path, keep) in queries {
        let (api, total_seen) = timed(shape.runs, || async {
            let page = get_json(&prext, &path).await?;
            Ok(page["total"].as_u64().unwrap_or(0))
        })
        .await?;
        let (quo, quo_matches) = timed(shape.baseline_runs, || status_quo(&prext, keep)).await?;
        anyhow::ensure!(
            total_seen as usize == quo_matches,
            "{label}: the API counted {total_seen}, the status quo {quo_matches}"
        );
        println!(
            "{:<42} {:>7.1}ms {:>7.1}ms {:>9.0}ms {:>9.0}ms {:>8.0}x {:>9}",
            label,
            pct(&api, 0.5),
            pct(&api, 0.99),
            pct(&quo, 0.5),
            pct(&quo, 0.99),
            pct(&quo, 0.5) / pct(&api, 0.5),
            quo_matches
        );
    }
    // Grouping by policy answers one item per policy: hundreds of thousands of CVE ids here,
    // so it is timed a few times only.
    for (group, runs) in [
        ("namespace", shape.runs),
        ("source", shape.runs),
        ("report.kind", shape.runs),
        ("policy", 3),
    ] {
        let path = format!("{base}/resultsummaries?groupBy={group}");
        let (summary, list) = timed(runs, || get_json(&prext, &path)).await?;
        let groups = list["items"].as_array().map_or(0, Vec::len);
        println!(
            "{:<42} {:>7.1}ms {:>7.1}ms {:>33} {:>9}",
            format!("summary of everything by {group}"),
            pct(&summary, 0.5),
            pct(&summary, 0.99),
            format!("({runs} runs)"),
            format!("{groups} groups")
        );
    }
    prext.stop();
    Ok(())
}
