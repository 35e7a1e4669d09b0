//! End-to-end tests of `kubectl-prext` through kubectl's plugin mechanism: the binary is put on
//! `PATH` and every command runs as `kubectl prext …` with the user's kubeconfig (`KUBECONFIG`)
//! against the real `prext serve`, over the repository's test data.

#[path = "common/mod.rs"]
mod common;
#[path = "results/samples.rs"]
mod loaded;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::samples::{manifest, report, POLR};
use common::{TestServer, KUBECTL};
use serde_json::{json, Value};

/// `kubectl prext ARGS` with `kubeconfig`, the plugin on `PATH`.
fn plugin_cmd(server: &TestServer, kubeconfig: &Path, args: &[&str]) -> Command {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kubectl-prext"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let path =
        std::env::join_paths([bin_dir, PathBuf::from("/usr/bin"), PathBuf::from("/bin")]).expect("PATH");
    let mut cmd = Command::new(KUBECTL);
    cmd.arg("prext")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", server.scratch())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

fn run(server: &TestServer, args: &[&str]) -> Output {
    plugin_cmd(server, &server.kubeconfig, args)
        .output()
        .expect("run kubectl prext")
}

fn ok(server: &TestServer, args: &[&str]) -> String {
    let out = run(server, args);
    assert!(
        out.status.success(),
        "kubectl prext {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failing(server: &TestServer, args: &[&str], code: i32) -> String {
    let out = run(server, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "kubectl prext {args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn prototype_commands_through_kubectl() {
    let server = TestServer::start();
    let mut r = report(POLR, "team-a", "web", &[("app", "web")]);
    let file = server.write_file("web.json", &manifest(std::slice::from_ref(&r)));
    let file = file.to_str().expect("utf8 path");

    assert_eq!(
        ok(&server, &["create", "-f", file]),
        "policyreport.wgpolicyk8s.io/web created\n"
    );
    let err = failing(&server, &["create", "-f", file], 1);
    assert_eq!(
        err.trim(),
        "Error from server (AlreadyExists): policyreports.wgpolicyk8s.io \"web\" already exists"
    );

    let table = ok(&server, &["get", "polr", "-n", "team-a"]);
    assert_eq!(common::first_column(&table), ["web"], "{table}");
    assert!(
        common::table_header(&table).contains(&"FAIL".to_owned()),
        "{table}"
    );
    let all = ok(&server, &["get", "policyreports", "-A"]);
    assert_eq!(common::table_header(&all)[0], "NAMESPACE");
    let yaml: Value = serde_norway::from_str(&ok(
        &server,
        &["get", "polr", "web", "-n", "team-a", "-o", "yaml"],
    ))
    .expect("yaml");
    assert_eq!(yaml["metadata"]["name"], "web");
    assert_eq!(yaml["results"][0]["policy"], "require-labels");
    let json: Value =
        serde_json::from_str(&ok(&server, &["get", "polr", "-n", "team-a", "-o", "json"])).expect("json");
    assert_eq!(json["items"][0]["metadata"]["name"], "web");

    // apply: unchanged, then configured, then created.
    assert_eq!(
        ok(&server, &["apply", "-f", file]),
        "policyreport.wgpolicyk8s.io/web unchanged\n"
    );
    r["results"][0]["result"] = json!("pass");
    let changed = server.write_file("web2.json", &manifest(std::slice::from_ref(&r)));
    assert_eq!(
        ok(&server, &["apply", "-f", changed.to_str().expect("utf8")]),
        "policyreport.wgpolicyk8s.io/web configured\n"
    );
    let live: Value = serde_json::from_str(&ok(
        &server,
        &["get", "polr", "web", "-n", "team-a", "-o", "json"],
    ))
    .expect("json");
    assert_eq!(live["results"][0]["result"], "pass");
    let other = server.write_file("api.json", &manifest(&[report(POLR, "team-a", "api", &[])]));
    assert_eq!(
        ok(&server, &["apply", "-f", other.to_str().expect("utf8")]),
        "policyreport.wgpolicyk8s.io/api created\n"
    );

    // -w: the current state, then changes as they happen.
    let mut watch = common::background::Background::spawn(plugin_cmd(
        &server,
        &server.kubeconfig,
        &["get", "polr", "-n", "team-a", "-w"],
    ));
    watch.expect_line(Duration::from_secs(20), "the header", |l| l.starts_with("NAME"));
    watch.expect_line(Duration::from_secs(20), "web", |l| l.starts_with("web "));
    server.kubectl_stdin_ok(
        &["create", "-f", "-"],
        &manifest(&[report(POLR, "team-a", "late", &[])]),
    );
    watch.expect_line(Duration::from_secs(20), "the new report", |l| {
        l.starts_with("late ")
    });
    drop(watch);

    // Without -n, the context's namespace ("default") is used.
    let err = failing(&server, &["delete", "polr", "web"], 1);
    assert!(err.starts_with("Error from server (NotFound)"), "{err}");
    assert_eq!(
        ok(&server, &["delete", "polr", "web", "-n", "team-a"]),
        "policyreport.wgpolicyk8s.io/web deleted\n"
    );
    let err = failing(&server, &["get", "polr", "web", "-n", "team-a"], 1);
    assert_eq!(
        err.trim(),
        "Error from server (NotFound): policyreports.wgpolicyk8s.io \"web\" not found"
    );
    let err = failing(&server, &["get", "widgets"], 1);
    assert!(err.contains("doesn't have a resource type \"widgets\""), "{err}");
}

#[test]
fn results_summary_and_fail_on() {
    let server = TestServer::start();
    let data = loaded::Loaded::create(&server);
    let high = |r: &loaded::Row| r.result == "fail" && matches!(r.severity.as_str(), "high" | "critical");

    let out = ok(
        &server,
        &[
            "results",
            "-A",
            "--result",
            "fail",
            "--severity",
            "high,critical",
            "-o",
            "json",
        ],
    );
    let list: Value = serde_json::from_str(&out).expect("json");
    let names: std::collections::BTreeSet<String> = common::http::names(&list).into_iter().collect();
    assert_eq!(names, data.names(high));

    let table = ok(
        &server,
        &["results", "-A", "--property", "score>=8", "--sort", "severity"],
    );
    assert_eq!(
        common::table_header(&table)[..3],
        ["NAMESPACE".to_owned(), "REPORT".into(), "POLICY".into()]
    );
    assert_eq!(
        common::table_rows(&table).len() - 1,
        data.names(|r| r.score.is_some_and(|s| s >= 8.0)).len()
    );
    let wide = ok(&server, &["results", "-n", "team-b", "-o", "wide"]);
    assert!(
        common::table_header(&wide).contains(&"MESSAGE".to_owned()),
        "{wide}"
    );
    let csv = ok(
        &server,
        &[
            "results",
            "-n",
            "bench",
            "--category",
            "Control Plane Node Configuration Files",
            "-o",
            "csv",
        ],
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("namespace,report_kind,report,index,policy"),
        "{csv}"
    );
    let want = data
        .names(|r| r.namespace == "bench" && r.category == "Control Plane Node Configuration Files")
        .len();
    assert_eq!(lines.len() - 1, want, "{csv}");
    assert_eq!(
        ok(&server, &["results", "-A", "--limit", "5", "-o", "csv"])
            .lines()
            .count(),
        6
    );

    // summary: one row per namespace, totals at the bottom.
    let summary = ok(&server, &["summary", "-A"]);
    let rows = common::table_rows(&summary);
    assert_eq!(
        rows[0],
        ["NAMESPACE", "PASS", "FAIL", "WARN", "ERROR", "SKIP", "TOTAL"]
    );
    let total = rows.last().expect("totals");
    assert_eq!(total[0], "TOTAL");
    assert_eq!(total[6], data.rows.len().to_string());
    assert_eq!(
        total[2],
        data.rows
            .iter()
            .filter(|r| r.result == "fail")
            .count()
            .to_string()
    );
    assert!(rows.iter().any(|r| r[0] == "(cluster)"), "{summary}");
    let colored = ok(
        &server,
        &["summary", "-A", "--by", "report.kind", "--color", "always"],
    );
    assert!(
        colored.contains("\u{1b}[31m") && colored.starts_with("REPORT KIND"),
        "{colored}"
    );

    // --fail-on: exit 3 when a failing result at or above the threshold matches.
    let err = failing(&server, &["results", "-A", "--fail-on", "high", "-o", "csv"], 3);
    assert!(err.contains("severity high or above"), "{err}");
    failing(&server, &["summary", "-n", "team-a", "--fail-on", "critical"], 3);
    ok(&server, &["summary", "-n", "bench", "--fail-on", "low"]);
    // An invalid flag value is bad usage: exit 2, as the plugin's documentation promises.
    let err = failing(&server, &["results", "--fail-on", "severe"], 2);
    assert!(err.contains("unknown severity"), "{err}");

    // summary --top: the policies with the most high/critical failures, most first, ties by
    // name, as counted here.
    let mut fails: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for r in &data.rows {
        if matches!(r.severity.as_str(), "high" | "critical") {
            *fails.entry(r.policy.as_str()).or_insert(0) += usize::from(r.result == "fail");
        }
    }
    let mut ranked: Vec<(&str, usize)> = fails.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    assert!(ranked.len() > 3, "the samples hold enough policies");
    let top = ok(
        &server,
        &[
            "summary",
            "-A",
            "--by",
            "policy",
            "--top",
            "3",
            "--severity",
            "high,critical",
        ],
    );
    let rows = common::table_rows(&top);
    assert_eq!(rows[0][..3], ["POLICY", "PASS", "FAIL"], "{top}");
    // The six counts end each row; the policy (which may hold spaces) comes before them.
    let shown: Vec<(String, String)> = rows[1..4]
        .iter()
        .map(|r| (r[..r.len() - 6].join(" "), r[r.len() - 5].clone()))
        .collect();
    let want: Vec<(String, String)> = ranked[..3]
        .iter()
        .map(|(p, n)| ((*p).to_owned(), n.to_string()))
        .collect();
    assert_eq!(shown, want, "{top}");
    assert_eq!(rows.len(), 5, "three groups and the total: {top}");
    assert_eq!(rows[4][..3], ["TOTAL", "(top", "3)"], "{top}");
    assert_eq!(
        rows[4][4],
        (want
            .iter()
            .map(|(_, n)| n.parse::<usize>().expect("n"))
            .sum::<usize>())
        .to_string()
    );
    let err = failing(&server, &["summary", "-A", "--by", "policy", "--top", "0"], 1);
    assert!(err.contains("--top"), "{err}");
}

#[test]
fn kubeconfig_context_and_server_errors() {
    let server = TestServer::start();
    loaded::Loaded::create(&server);
    // A second context whose namespace is team-a; the current one stays as generated.
    let text = std::fs::read_to_string(&server.kubeconfig).expect("kubeconfig");
    let mut kc: Value = serde_norway::from_str(&text).expect("yaml");
    let mut ctx = kc["contexts"][0].clone();
    ctx["name"] = json!("team-a");
    ctx["context"]["namespace"] = json!("team-a");
    kc["contexts"].as_array_mut().expect("contexts").push(ctx);
    let path = server.write_file("kubeconfig", &serde_json::to_string(&kc).expect("json"));

    let run_with = |args: &[&str]| plugin_cmd(&server, &path, args).output().expect("run");
    let team_a = run_with(&["--context", "team-a", "results", "-o", "csv"]);
    assert!(
        team_a.status.success(),
        "{}",
        String::from_utf8_lossy(&team_a.stderr)
    );
    let csv = String::from_utf8_lossy(&team_a.stdout);
    assert!(csv.lines().skip(1).all(|l| l.starts_with("team-a,")), "{csv}");
    assert!(csv.lines().count() > 1, "{csv}");
    let missing = run_with(&["--context", "nope", "results"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("nope"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    let err = failing(&server, &["results", "-A", "-l", "bogus in (x)"], 1);
    assert!(
        err.starts_with("Error from server (BadRequest): \"bogus\" is not a known field"),
        "{err}"
    );
}
