//! End-to-end tests of findings over time (`findings` and `resulttrends` of
//! `results.prext.io/v1alpha1`, docs/results-api.md) against the real `prext serve`: reports
//! written over a timeline through the API, then every finding's first-seen, last-seen and
//! resolved time checked against the test's own clock around each write, filters and windows,
//! the trend series, kubectl's Table output, and errors.

#[path = "common/mod.rs"]
mod common;

use common::http::{delete, get, get_as, post, put, ACCEPT_TABLE};
use common::TestServer;
use jiff::Timestamp;
use serde_json::{json, Value};

const BASE: &str = "/apis/results.prext.io/v1alpha1";
const REPORTS: &str = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/team-a/policyreports";

/// A PolicyReport `name` in team-a whose results are `(policy, result, pod)`.
fn report(name: &str, results: &[(&str, &str, &str)], rv: Option<&str>) -> Value {
    let results: Vec<Value> = results
        .iter()
        .map(|(policy, result, pod)| {
            json!({"policy": policy, "rule": "r", "result": result, "severity": "high", "source": "kyverno",
                   "resources": [{"apiVersion": "v1", "kind": "Pod", "namespace": "team-a", "name": pod}]})
        })
        .collect();
    let mut obj = json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": name, "namespace": "team-a"},
        "results": results,
    });
    if let Some(rv) = rv {
        obj["metadata"]["resourceVersion"] = json!(rv);
    }
    obj
}

fn ms(t: &Value) -> i64 {
    t.as_str()
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(Timestamp::as_millisecond)
        .unwrap_or_else(|| panic!("not a time: {t}"))
}

/// The clock before and after a write, and its resourceVersion (empty for a delete).
struct Stamp {
    before: i64,
    after: i64,
    rv: String,
}

impl Stamp {
    fn holds(&self, t: &Value, what: &str) {
        let t = ms(t);
        assert!(
            self.before <= t && t <= self.after,
            "{what}: {t} not within the write ({}..{})",
            self.before,
            self.after
        );
    }
}

async fn write(f: impl std::future::Future<Output = common::http::Raw>) -> Stamp {
    let before = Timestamp::now().as_millisecond();
    let res = f.await;
    let after = Timestamp::now().as_millisecond();
    let body = res.json();
    assert!(
        body["kind"] == "PolicyReport" || body["status"] == "Success",
        "a write: {body}"
    );
    // A delete answers a Status without a resourceVersion: then it stays empty.
    let rv = body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Stamp { before, after, rv }
}

/// Every finding of `query` (team-a), keyed by policy.
async fn findings(client: &kube::Client, query: &str) -> Vec<Value> {
    let page = get(client, &format!("{BASE}/namespaces/team-a/findings?{query}"))
        .await
        .expect(200)
        .json();
    assert_eq!(page["kind"], "FindingList");
    page["items"].as_array().cloned().unwrap_or_default()
}

fn by_policy<'a>(items: &'a [Value], policy: &str) -> Vec<&'a Value> {
    items.iter().filter(|f| f["policy"] == policy).collect()
}

#[tokio::test]
async fn findings_follow_a_timeline_of_writes() {
    let server = TestServer::start();
    let client = server.client().await;

    // 1: p1 fails on pod a, p2 passes, p3 warns on pod c.
    let w1 = write(post(
        &client,
        REPORTS,
        &report(
            "r1",
            &[("p1", "fail", "a"), ("p2", "pass", "b"), ("p3", "warn", "c")],
            None,
        ),
    ))
    .await;
    // Read-your-writes: the acknowledged write is already recorded.
    let all = findings(&client, "").await;
    assert_eq!(all.len(), 2, "{all:#?}");
    for f in &all {
        w1.holds(&f["firstSeen"], "firstSeen");
        w1.holds(&f["lastSeen"], "lastSeen");
        assert_eq!(f["open"], true);
        assert!(f.get("resolvedAt").is_none());
        assert_eq!(f["firstSeenRevision"], w1.rv);
        assert_eq!(f["metadata"]["namespace"], "team-a");
        assert_eq!(f["report"]["kind"], "PolicyReport");
    }
    assert_eq!(by_policy(&all, "p1")[0]["subject"]["name"], "a");

    // 2: p1 fixed, p3 still warns, p4 fails on pod d.
    let w2 = write(put(
        &client,
        &format!("{REPORTS}/r1"),
        &report(
            "r1",
            &[("p1", "pass", "a"), ("p3", "warn", "c"), ("p4", "fail", "d")],
            Some(&w1.rv),
        ),
    ))
    .await;
    let all = findings(&client, "").await;
    assert_eq!(all.len(), 3);
    let p1 = by_policy(&all, "p1")[0];
    assert_eq!(p1["open"], false);
    w2.holds(&p1["resolvedAt"], "p1 resolved");
    assert_eq!(p1["resolvedRevision"], w2.rv);
    w1.holds(&p1["lastSeen"], "p1 last seen before the fix");
    let p3 = by_policy(&all, "p3")[0];
    w1.holds(&p3["firstSeen"], "p3 first seen");
    w2.holds(&p3["lastSeen"], "p3 seen again");
    w2.holds(&by_policy(&all, "p4")[0]["firstSeen"], "p4 new");

    // 3: a second report carries p3 too; deleting r1 leaves it open.
    let w3 = write(post(
        &client,
        REPORTS,
        &report("r2", &[("p3", "warn", "c")], None),
    ))
    .await;
    let w4 = write(delete(&client, &format!("{REPORTS}/r1"), None)).await;
    let all = findings(&client, "").await;
    let p3 = by_policy(&all, "p3")[0];
    assert_eq!(p3["open"], true, "r2 still carries it");
    w3.holds(&p3["lastSeen"], "p3 last seen by r2");
    let p4 = by_policy(&all, "p4")[0];
    w4.holds(&p4["resolvedAt"], "p4 resolved by the delete");

    // Filters and windows.
    let open = findings(&client, "fieldSelector=open%3Dtrue").await;
    assert_eq!(open.iter().map(|f| &f["policy"]).collect::<Vec<_>>(), vec!["p3"]);
    let since = |t: i64| Timestamp::from_millisecond(t).expect("time").to_string();
    let new = findings(&client, &format!("event=opened&since={}", since(w2.before))).await;
    assert_eq!(new.iter().map(|f| &f["policy"]).collect::<Vec<_>>(), vec!["p4"]);
    let resolved = findings(&client, &format!("event=resolved&since={}", since(w2.before))).await;
    assert_eq!(resolved.len(), 2, "p1 and p4");
    let p1_only = findings(&client, "fieldSelector=policy%3Dp1,result%3Dfail").await;
    assert_eq!(p1_only.len(), 1);
    assert!(findings(&client, "labelSelector=severity%20in%20(low)")
        .await
        .is_empty());
    let page = get(&client, &format!("{BASE}/findings?limit=1&count=true"))
        .await
        .expect(200)
        .json();
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    let token = page["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_owned();
    let next = get(&client, &format!("{BASE}/findings?limit=5&continue={token}"))
        .await
        .expect(200)
        .json();
    assert_eq!(next["items"].as_array().map(Vec::len), Some(2));
    assert_ne!(
        next["items"][0]["metadata"]["name"],
        page["items"][0]["metadata"]["name"]
    );
    assert!(findings(&client, "")
        .await
        .iter()
        .all(|f| f["metadata"]["namespace"] == "team-a"));
    let elsewhere = get(&client, &format!("{BASE}/namespaces/team-b/findings"))
        .await
        .expect(200)
        .json();
    assert_eq!(elsewhere["items"], json!([]));

    // Trends: by policy, hourly; the last point counts what is open now.
    let trends = get(
        &client,
        &format!("{BASE}/namespaces/team-a/resulttrends?groupBy=policy&interval=hour"),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(trends["kind"], "ResultTrendList");
    let last = |policy: &str| {
        trends["items"]
            .as_array()
            .and_then(|items| items.iter().find(|s| s["group"] == policy))
            .map(|s| {
                (
                    s["last"].clone(),
                    s["points"].as_array().map_or(0, Vec::len) >= 48,
                )
            })
    };
    assert_eq!(last("p3"), Some((json!(1), true)), "{trends:#}");
    assert_eq!(last("p1"), Some((json!(0), true)));
    let daily = get(
        &client,
        &format!("{BASE}/resulttrends?fieldSelector=groupBy%3Dnamespace"),
    )
    .await
    .expect(200)
    .json();
    let team_a = &daily["items"][0];
    assert_eq!(
        (team_a["group"].as_str(), team_a["interval"].as_str()),
        (Some("team-a"), Some("day"))
    );
    assert_eq!(team_a["last"], 1);
    assert_eq!(team_a["min"], 0, "nothing was open 30 days ago");
}

#[tokio::test]
async fn kubectl_tables_and_errors() {
    let server = TestServer::start();
    let client = server.client().await;
    post(&client, REPORTS, &report("r1", &[("p1", "fail", "a")], None))
        .await
        .expect(201);
    let out = server.kubectl_ok(&["get", "findings", "-A"]);
    let header = out.lines().next().unwrap_or_default();
    for col in [
        "NAMESPACE",
        "POLICY",
        "RULE",
        "RESULT",
        "SEVERITY",
        "SUBJECT",
        "OPEN",
        "FIRST SEEN",
        "RESOLVED",
    ] {
        assert!(header.contains(col), "{col} in {header:?}");
    }
    assert_eq!(common::table_rows(&out).len(), 2, "{out}");
    assert!(out.contains("Pod/a"), "{out}");
    let out = server.kubectl_ok(&[
        "get",
        "resulttrends",
        "-n",
        "team-a",
        "--field-selector",
        "groupBy=policy,interval=hour",
    ]);
    assert!(out.contains("p1"), "{out}");
    let table = get_as(&client, &format!("{BASE}/findings"), ACCEPT_TABLE)
        .await
        .expect(200)
        .json();
    assert_eq!(table["kind"], "Table");

    for bad in [
        "open=maybe",
        "since=yesterday",
        "event=later",
        "labelSelector=properties.score%3E7",
    ] {
        let path = format!("{BASE}/findings?{bad}");
        get(&client, &path).await.expect_status(400, "BadRequest");
    }
    get(&client, &format!("{BASE}/resulttrends?interval=hour&since=30d"))
        .await
        .expect_status(400, "BadRequest");
    get(&client, &format!("{BASE}/namespaces/team-a/findings/finding-1"))
        .await
        .expect_status(405, "MethodNotAllowed");
    get(&client, &format!("{BASE}/findings?watch=true"))
        .await
        .expect_status(405, "MethodNotAllowed");
    let res = common::http::Req::new(
        &client,
        http::Method::DELETE,
        &format!("{BASE}/namespaces/team-a/findings"),
    )
    .send()
    .await;
    res.expect_status(405, "MethodNotAllowed");
}

/// `kubectl prext ARGS` (the plugin on `PATH`), its stdout; panics on failure.
fn plugin(server: &TestServer, args: &[&str]) -> String {
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_kubectl-prext"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let path = std::env::join_paths([bin_dir, "/usr/bin".into(), "/bin".into()]).expect("PATH");
    let out = std::process::Command::new(common::KUBECTL)
        .arg("prext")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", &server.kubeconfig)
        .env("HOME", server.scratch())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run kubectl prext");
    assert!(
        out.status.success(),
        "kubectl prext {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn plugin_lists_new_and_resolved_findings_and_draws_trends() {
    let server = TestServer::start();
    let client = server.client().await;
    let created = post(
        &client,
        REPORTS,
        &report("r1", &[("p1", "fail", "a"), ("p2", "warn", "b")], None),
    )
    .await
    .expect(201)
    .json();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();
    put(
        &client,
        &format!("{REPORTS}/r1"),
        &report("r1", &[("p1", "pass", "a"), ("p2", "warn", "b")], Some(&rv)),
    )
    .await
    .expect(200);

    let new = plugin(&server, &["findings", "-A", "--new", "--since", "7d"]);
    let rows = common::table_rows(&new);
    assert_eq!(rows.len(), 3, "header, p1 and p2:\n{new}");
    assert!(rows[0].contains(&"POLICY".to_owned()), "{new}");
    let resolved = plugin(
        &server,
        &["findings", "-A", "--resolved", "--since", "7d", "-o", "csv"],
    );
    let lines: Vec<&str> = resolved.lines().collect();
    assert_eq!(lines.len(), 2, "header and p1:\n{resolved}");
    assert!(lines[0].starts_with("namespace,name,policy"), "{resolved}");
    assert!(
        lines[1].contains(",p1,") && lines[1].contains(",false,"),
        "{resolved}"
    );
    let open: Value = serde_json::from_str(&plugin(
        &server,
        &["findings", "-n", "team-a", "--open", "-o", "json"],
    ))
    .expect("json");
    assert_eq!(open["items"].as_array().map(Vec::len), Some(1), "p2 only");
    assert_eq!(open["items"][0]["policy"], "p2");

    let trend = plugin(&server, &["trend", "-A", "--by", "namespace", "--since", "30d"]);
    let rows = common::table_rows(&trend);
    assert_eq!(
        rows[0],
        ["NAMESPACE", "TREND", "FIRST", "LAST", "MIN", "MAX"],
        "{trend}"
    );
    assert_eq!(rows[1][0], "team-a", "{trend}");
    assert_eq!(rows[1][3], "1", "p2 is open now:\n{trend}");
    assert!(rows[1][1].chars().all(|c| "▁▂▃▄▅▆▇█".contains(c)), "{trend}");
    let csv = plugin(
        &server,
        &["trend", "-A", "--by", "policy", "--interval", "hour", "-o", "csv"],
    );
    let last_p1 = csv.lines().rfind(|l| l.starts_with("p1,")).expect("p1 points");
    assert!(last_p1.ends_with(",0"), "p1 was fixed:\n{csv}");
    let json: Value = serde_json::from_str(&plugin(&server, &["trend", "-A", "-o", "json"])).expect("json");
    assert_eq!(json["kind"], "ResultTrendList");
}
