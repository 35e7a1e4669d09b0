//! `resultsummaries` by name and by page, through kubectl: a summary's name is its group's
//! value; an unknown name is kube's 404 NotFound (kube-apiserver answers a get of a missing
//! object with `<plural>.<group> "<name>" not found`, staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go
//! `NewNotFound`); `sort`, `limit` and `continue` walk the groups in the order counted here.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::common::TestServer;
use crate::loaded::Loaded;

const BASE: &str = "/apis/results.prext.io/v1alpha1";

fn raw(server: &TestServer, path: &str) -> Value {
    serde_json::from_str(&server.kubectl_ok(&["get", "--raw", path])).expect("json")
}

pub fn summaries_by_name(server: &TestServer, loaded: &Loaded) {
    // By namespace (the default grouping): the namespace's own summary.
    let team_a: Value =
        serde_json::from_str(&server.kubectl_ok(&["get", "rsum", "-n", "team-a", "team-a", "-o", "json"]))
            .expect("json");
    assert_eq!(team_a["kind"], "ResultSummary");
    assert_eq!(team_a["metadata"]["name"], "team-a");
    assert_eq!(
        team_a["total"],
        loaded.rows.iter().filter(|r| r.namespace == "team-a").count()
    );
    let table = server.kubectl_ok(&["get", "rsum", "-n", "team-a", "team-a"]);
    assert!(table.starts_with("NAMESPACE"), "{table}");
    assert_eq!(crate::common::first_column(&table), ["team-a"]);

    // Unknown names, and another namespace's name, are NotFound like any kube object.
    for name in ["anything", "team-b"] {
        let err = server.kubectl_err(&["get", "rsum", "-n", "team-a", name]);
        assert_eq!(
            err.trim(),
            format!("Error from server (NotFound): resultsummaries.results.prext.io \"{name}\" not found")
        );
    }

    // By policy: the policy's summary within the namespace.
    let policy = loaded
        .rows
        .iter()
        .find(|r| r.namespace == "team-a" && !r.policy.is_empty())
        .map(|r| r.policy.clone())
        .expect("a policy in team-a");
    // A path segment: spaces as %20 (byte_serialize writes `+` for them, and `%2B` for `+`).
    let enc = form_urlencoded::byte_serialize(policy.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    let one = raw(
        server,
        &format!("{BASE}/namespaces/team-a/resultsummaries/{enc}?groupBy=policy"),
    );
    assert_eq!(one["group"], policy.as_str());
    assert_eq!(
        one["total"],
        loaded
            .rows
            .iter()
            .filter(|r| r.namespace == "team-a" && r.policy == policy)
            .count()
    );

    // Pages of policies ranked by failures, across namespaces.
    let mut fails: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &loaded.rows {
        *fails.entry(r.policy.as_str()).or_insert(0) += usize::from(r.result == "fail");
    }
    let mut want: Vec<(String, usize)> = fails.into_iter().map(|(p, n)| (p.to_owned(), n)).collect();
    want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut revision = None;
    loop {
        let mut path = format!("{BASE}/resultsummaries?groupBy=policy&sort=fail&limit=7");
        if !token.is_empty() {
            path.push_str(&format!("&continue={token}"));
        }
        let page = raw(server, &path);
        let rv = page["metadata"]["resourceVersion"].clone();
        assert_eq!(
            *revision.get_or_insert(rv.clone()),
            rv,
            "every page reports the first's"
        );
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 7);
        for item in items {
            let group = item["group"].as_str().expect("group").to_owned();
            let fail = item["results"]["fail"].as_u64().expect("fail");
            seen.push((group, usize::try_from(fail).expect("usize")));
        }
        token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, want);
    let err = server.kubectl_err(&[
        "get",
        "--raw",
        &format!("{BASE}/resultsummaries?groupBy=policy&sort=worst"),
    ]);
    assert!(
        err.contains("BadRequest") || err.contains("sort: unsupported value"),
        "{err}"
    );
}
