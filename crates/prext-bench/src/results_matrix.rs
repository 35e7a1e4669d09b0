//! The filter matrix of `prext-bench --results --matrix`: every documented kind of filter alone
//! and every pair of them, with match rates from a few results to half of them, each timed on
//! its first page of 500 with and without `count=true` and on pages of 50 and 1 (a smaller page
//! must never be slower); then top-N summaries (`sort`, `limit`) and first pages of a grouping
//! by a column of hundreds of thousands of values.

use std::time::Duration;

use crate::results::{get_json, pct, timed};
use crate::server::Prext;

const BASE: &str = "/apis/results.prext.io/v1alpha1";

/// One filter: a label and its query parameters (URL-encoded).
struct Filter {
    label: &'static str,
    /// `fieldSelector` terms, `labelSelector` terms and other parameters.
    fields: Vec<String>,
    labels: Vec<String>,
    params: Vec<String>,
}

fn field(label: &'static str, term: &str) -> Filter {
    Filter {
        label,
        fields: vec![term.to_owned()],
        labels: Vec::new(),
        params: Vec::new(),
    }
}

fn filters(kyverno_policy: &str) -> Vec<Filter> {
    let mut f = vec![
        field("report.name (1 report)", "report.name=trivy-vuln-app-000105"),
        field("subject.name (1 pod)", "subject.name=app-000107"),
        field("namespace (1 of 500)", "namespace=team-007"),
        Filter {
            label: "property score>=9.9",
            fields: Vec::new(),
            labels: Vec::new(),
            params: vec!["property=score%3E%3D9.9".to_owned()],
        },
        field("policy (kyverno)", &format!("policy={kyverno_policy}")),
        Filter {
            label: "property score>=8",
            fields: Vec::new(),
            labels: Vec::new(),
            params: vec!["property=score%3E%3D8".to_owned()],
        },
        Filter {
            label: "message~openssl",
            fields: Vec::new(),
            labels: Vec::new(),
            params: vec!["message=openssl".to_owned()],
        },
        field("severity=critical", "severity=critical"),
        field("source=kube-bench", "source=kube-bench"),
        field("result=fail", "result=fail"),
        Filter {
            label: "severity in (medium,low)",
            fields: Vec::new(),
            labels: vec!["severity in (medium,low)".to_owned()],
            params: Vec::new(),
        },
    ];
    f.shrink_to_fit();
    f
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The query string of filters combined.
fn query(parts: &[&Filter]) -> String {
    let fields: Vec<&str> = parts
        .iter()
        .flat_map(|f| f.fields.iter().map(String::as_str))
        .collect();
    let labels: Vec<&str> = parts
        .iter()
        .flat_map(|f| f.labels.iter().map(String::as_str))
        .collect();
    let mut q = Vec::new();
    if !fields.is_empty() {
        q.push(format!("fieldSelector={}", enc(&fields.join(","))));
    }
    if !labels.is_empty() {
        q.push(format!("labelSelector={}", enc(&labels.join(","))));
    }
    q.extend(parts.iter().flat_map(|f| f.params.iter().cloned()));
    q.join("&")
}

fn ms(d: &[Duration], p: f64) -> f64 {
    pct(d, p)
}

/// One case's p50s: its first page of 500 without and with `count=true`.
struct Timing {
    label: String,
    parts: Vec<usize>,
    page: f64,
    counted: f64,
}

/// Prints the pairs slowest against their own filters alone (a pair's p50 over the larger of
/// its two filters' p50s, page of 500 and with `count=true` apart) and the largest `count=true`
/// overheads: what a combination costs beyond its parts.
fn ratios(timings: &[Timing]) {
    let single = |i: usize| timings.iter().find(|t| t.parts == [i]);
    let mut rows: Vec<(f64, f64, &Timing)> = timings
        .iter()
        .filter(|t| t.parts.len() == 2)
        .filter_map(|t| {
            let (a, b) = (single(t.parts[0])?, single(t.parts[1])?);
            Some((
                t.page / a.page.max(b.page),
                t.counted / a.counted.max(b.counted),
                t,
            ))
        })
        .collect();
    if !rows.is_empty() {
        let worst = |rows: &mut Vec<(f64, f64, &Timing)>, counted: bool| {
            rows.sort_by(|x, y| {
                let (x, y) = if counted { (x.1, y.1) } else { (x.0, y.0) };
                y.total_cmp(&x)
            });
            let what = if counted { "500 + count" } else { "500" };
            println!();
            println!("pairs against the slower of their two filters alone, page of {what} (p50 ratio):");
            for (page, cnt, t) in rows.iter().take(8) {
                let (r, p) = if counted { (cnt, t.counted) } else { (page, t.page) };
                println!("  {r:>6.1}x {p:>8.1}ms  {}", t.label);
            }
        };
        worst(&mut rows, false);
        worst(&mut rows, true);
        let over = |f: &dyn Fn(&(f64, f64, &Timing)) -> f64| rows.iter().filter(|r| f(r) > 2.0).count();
        println!(
            "  {} of {} pairs over 2x (500), {} over 2x (500 + count)",
            over(&|r| r.0),
            rows.len(),
            over(&|r| r.1)
        );
    }
    let mut overhead: Vec<&Timing> = timings.iter().collect();
    overhead.sort_by(|a, b| (b.counted - b.page).total_cmp(&(a.counted - a.page)));
    println!();
    println!("largest count=true overheads (p50 with count - without):");
    for t in overhead.iter().take(6) {
        println!(
            "  {:>+8.1}ms ({:.1} -> {:.1} ms)  {}",
            t.counted - t.page,
            t.page,
            t.counted,
            t.label
        );
    }
}

/// Times the matrix and prints one line per filter or pair.
pub async fn run(prext: &Prext, runs: usize, kyverno_policy: &str, only: &[String]) -> anyhow::Result<()> {
    let all = filters(kyverno_policy);
    // (label, query, the filters combined: indexes into `all`)
    let mut cases: Vec<(String, String, Vec<usize>)> = all
        .iter()
        .enumerate()
        .map(|(i, f)| (f.label.to_owned(), query(&[f]), vec![i]))
        .collect();
    for (i, a) in all.iter().enumerate() {
        for (j, b) in all.iter().enumerate().skip(i + 1) {
            cases.push((format!("{} + {}", a.label, b.label), query(&[a, b]), vec![i, j]));
        }
    }
    // `--only` terms pick the cases whose label contains them; a term starting with `=` picks
    // the case of exactly that label (one filter alone, without its pairs).
    let picked = |label: &str| {
        only.is_empty()
            || only.iter().any(|o| match o.strip_prefix('=') {
                Some(exact) => label == exact,
                None => label.contains(o.as_str()),
            })
    };
    cases.retain(|(label, _, _)| picked(label));
    println!();
    println!(
        "{:<52} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "filter(s), first page",
        "matches",
        "500 p50",
        "500 p99",
        "+cnt p50",
        "+cnt p99",
        "50 p50",
        "1 p50",
        "smaller"
    );
    let mut worst: Vec<(f64, f64, String)> = Vec::new();
    let mut timings: Vec<Timing> = Vec::new();
    let mut slower = 0;
    for (label, q, parts) in &cases {
        let url = |limit: usize, count: bool| {
            format!(
                "{BASE}/policyresults?{q}&limit={limit}{}",
                if count { "&count=true" } else { "" }
            )
        };
        let (counted, last) = timed(runs, || async { get_json(prext, &url(500, true)).await }).await?;
        let matches = last["total"].as_u64().unwrap_or(0);
        let (page, _) = timed(runs, || async { get_json(prext, &url(500, false)).await }).await?;
        let (fifty, _) = timed(runs, || async { get_json(prext, &url(50, false)).await }).await?;
        let (one, _) = timed(runs, || async { get_json(prext, &url(1, false)).await }).await?;
        // "Slower" beyond noise: a smaller page's p50 more than 20% and 2 ms above the larger's.
        let worse = |small: f64, large: f64| small > large * 1.2 && small > large + 2.0;
        let smaller_slower = worse(ms(&fifty, 0.5), ms(&page, 0.5)) || worse(ms(&one, 0.5), ms(&fifty, 0.5));
        slower += usize::from(smaller_slower);
        println!(
            "{:<52} {:>8} {:>6.1}ms {:>6.1}ms {:>7.1}ms {:>7.1}ms {:>6.1}ms {:>6.1}ms {:>8}",
            label,
            matches,
            ms(&page, 0.5),
            ms(&page, 0.99),
            ms(&counted, 0.5),
            ms(&counted, 0.99),
            ms(&fifty, 0.5),
            ms(&one, 0.5),
            if smaller_slower { "SLOWER" } else { "ok" }
        );
        timings.push(Timing {
            label: label.clone(),
            parts: parts.clone(),
            page: ms(&page, 0.5),
            counted: ms(&counted, 0.5),
        });
        worst.push((
            ms(&counted, 0.5).max(ms(&page, 0.5)),
            ms(&counted, 0.99).max(ms(&page, 0.99)),
            label.clone(),
        ));
    }
    worst.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!();
    println!(
        "{} queries; {} with a smaller page slower; slowest p50s:",
        cases.len(),
        slower
    );
    for (p50, p99, label) in worst.iter().take(5) {
        println!("  {p50:>7.1}ms p50 {p99:>7.1}ms p99  {label}");
    }
    ratios(&timings);

    println!();
    println!("{:<72} {:>9} {:>9} {:>7}", "summary page", "p50", "p99", "groups");
    let sev = enc("severity in (high,critical)");
    let summaries = [
        (
            "top 10 policies by high/critical failures".to_owned(),
            format!("{BASE}/resultsummaries?groupBy=policy&labelSelector={sev}&sort=fail&limit=10"),
        ),
        (
            "top 10 policies by failures".to_owned(),
            format!("{BASE}/resultsummaries?groupBy=policy&sort=fail&limit=10"),
        ),
        (
            "top 10 policies by fail.critical".to_owned(),
            format!("{BASE}/resultsummaries?groupBy=policy&sort=fail.critical&limit=10"),
        ),
        (
            "top 10 namespaces by failures".to_owned(),
            format!("{BASE}/resultsummaries?groupBy=namespace&sort=fail&limit=10"),
        ),
        (
            "groupBy=policy, first page of 500 by value".to_owned(),
            format!("{BASE}/resultsummaries?groupBy=policy&limit=500"),
        ),
        (
            "groupBy=policy, first page of 500 by total".to_owned(),
            format!("{BASE}/resultsummaries?groupBy=policy&sort=total&limit=500"),
        ),
        (
            "groupBy=rule, first page of 500 by fail".to_owned(),
            format!("{BASE}/resultsummaries?groupBy=rule&sort=fail&limit=500"),
        ),
        (
            "groupBy=subject.kind, top 10 by total".to_owned(),
            format!("{BASE}/resultsummaries?groupBy=subject.kind&sort=total&limit=10"),
        ),
    ];
    for (label, url) in summaries {
        if !picked(&label) {
            continue;
        }
        let (d, last) = timed(runs, || async { get_json(prext, &url).await }).await?;
        let groups = last["items"].as_array().map_or(0, Vec::len);
        println!(
            "{:<72} {:>7.1}ms {:>7.1}ms {:>7}",
            label,
            ms(&d, 0.5),
            ms(&d, 0.99),
            groups
        );
    }
    Ok(())
}
