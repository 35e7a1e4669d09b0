//! End-to-end tests of the result query API (`results.prext.io/v1alpha1`) against the real
//! `prext serve`, loaded with the repository's test data (kube-bench, trivy, Falco,
//! Kyverno) through kubectl, and checked against an oracle computed from the same objects:
//! filters alone and combined, pagination, ordering, counts, summaries, Table output through
//! kubectl, discovery and `kubectl explain`, errors, and `/metrics`. The authorization test
//! runs the server in delegated mode against a fake kube-apiserver (TokenReview and
//! SubjectAccessReview) and checks that access follows the namespace of the path.

#[path = "common/mod.rs"]
mod common;
#[path = "results/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "results/samples.rs"]
mod loaded;
#[path = "results/summaries.rs"]
mod summaries;

use std::collections::BTreeSet;

use common::http::{get, get_as, post, ACCEPT_TABLE};
use common::TestServer;
use loaded::{Loaded, Row};
use serde_json::{json, Value};
use summaries::summaries_by_name;

const BASE: &str = "/apis/results.prext.io/v1alpha1";

/// An oracle predicate.
type Keep = fn(&Row) -> bool;

/// The names of every item of a (possibly paged) JSON list, following continue tokens.
async fn all_names(client: &kube::Client, path: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = if token.is_empty() {
            path.to_owned()
        } else {
            format!("{path}{sep}continue={token}")
        };
        let page = get(client, &url).await.expect(200).json();
        names.extend(common::http::names(&page));
        token = page["metadata"]["continue"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if token.is_empty() {
            return names;
        }
    }
}

fn set(names: Vec<String>) -> BTreeSet<String> {
    let n = names.len();
    let s: BTreeSet<String> = names.into_iter().collect();
    assert_eq!(s.len(), n, "no result listed twice");
    s
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn filters_alone_and_combined_match_the_oracle() {
    let server = TestServer::start();
    let loaded = Loaded::create(&server);
    let client = server.client().await;
    let all = |p: fn(&Row) -> bool| loaded.names(p);

    // Everything, across namespaces (cluster-scoped reports included), counted.
    let page = get(&client, &format!("{BASE}/policyresults?limit=1&count=true"))
        .await
        .expect(200)
        .json();
    assert_eq!(page["total"], loaded.rows.len(), "every result of every report");
    assert_eq!(
        set(all_names(&client, &format!("{BASE}/policyresults")).await),
        all(|_| true)
    );

    let cases: Vec<(String, Keep)> = vec![
        (format!("fieldSelector={}", enc("result=fail")), |r| {
            r.result == "fail"
        }),
        (
            format!(
                "fieldSelector={}&labelSelector={}",
                enc("result=fail"),
                enc("severity in (high,critical)")
            ),
            |r| r.result == "fail" && matches!(r.severity.as_str(), "high" | "critical"),
        ),
        (format!("labelSelector={}", enc("result!=pass,!severity")), |r| {
            r.result != "pass" && r.severity.is_empty()
        }),
        (
            format!(
                "fieldSelector={}",
                enc("category=Control Plane Node Configuration Files,result!=pass")
            ),
            |r| r.category == "Control Plane Node Configuration Files" && r.result != "pass",
        ),
        (
            format!(
                "fieldSelector={}",
                enc("report.kind=EphemeralReport,subject.kind=Pod")
            ),
            |r| r.report_kind == "EphemeralReport" && r.subject_kind == "Pod",
        ),
        (
            format!("fieldSelector={}", enc("report.kind=ClusterPolicyReport")),
            |r| r.namespace.is_empty(),
        ),
        (format!("property={}", enc("score>=8")), |r| {
            r.score.is_some_and(|s| s >= 8.0)
        }),
        (
            format!("property={}&property={}", enc("score>=5"), enc("score<9")),
            |r| r.score.is_some_and(|s| (5.0..9.0).contains(&s)),
        ),
        (format!("labelSelector={}", enc("properties.score>7")), |r| {
            r.score.is_some_and(|s| s > 7.0)
        }),
        (format!("message={}", enc("PERMISSIONS")), |r| {
            r.message.to_lowercase().contains("permissions")
        }),
        (
            format!(
                "message={}&fieldSelector={}",
                enc("privilege"),
                enc("result=pass,namespace=kyverno-pss")
            ),
            |r| {
                r.message.to_lowercase().contains("privilege")
                    && r.result == "pass"
                    && r.namespace == "kyverno-pss"
            },
        ),
    ];
    for (query, keep) in cases {
        let want = all(keep);
        assert!(!want.is_empty(), "{query}: the oracle keeps something");
        let got = set(all_names(&client, &format!("{BASE}/policyresults?{query}")).await);
        assert_eq!(got, want, "{query}");
        let count = get(
            &client,
            &format!("{BASE}/policyresults?{query}&limit=2&count=true"),
        )
        .await
        .expect(200)
        .json();
        assert_eq!(count["total"], want.len(), "{query}: count");
    }

    // A namespace path reads only that namespace's reports.
    let got = set(all_names(&client, &format!("{BASE}/namespaces/team-a/policyresults")).await);
    assert_eq!(got, all(|r| r.namespace == "team-a"));
}

#[tokio::test]
async fn pages_orders_get_and_errors() {
    let server = TestServer::start();
    let loaded = Loaded::create(&server);
    let client = server.client().await;

    // Pages of 7 in each order give every result once, and the same set as one list.
    for sort in [
        "",
        "&sort=severity",
        "&sort=timestamp",
        "&sort=severity&order=asc",
    ] {
        let mut names = Vec::new();
        let mut token = String::new();
        let mut revision = None;
        let mut pages = 0;
        loop {
            let url = format!("{BASE}/policyresults?limit=7{sort}&continue={token}");
            let page = get(&client, &url).await.expect(200).json();
            let items = page["items"].as_array().expect("items");
            assert!(items.len() <= 7);
            if sort == "&sort=severity" {
                let ranks: Vec<u8> = items
                    .iter()
                    .map(|i| loaded::rank(i["severity"].as_str()))
                    .collect();
                assert!(
                    ranks.windows(2).all(|w| w[0] >= w[1]),
                    "most severe first: {ranks:?}"
                );
            }
            let rv = page["metadata"]["resourceVersion"]
                .as_str()
                .expect("rv")
                .to_owned();
            assert_eq!(
                revision.get_or_insert(rv.clone()),
                &rv,
                "every page reports the first page's revision"
            );
            names.extend(common::http::names(&page));
            pages += 1;
            token = page["metadata"]["continue"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if token.is_empty() {
                break;
            }
        }
        assert!(pages > 10, "{sort}: {pages} pages");
        assert_eq!(set(names), loaded.names(|_| true), "{sort}");
    }
    // Severity order across pages: the first page holds the critical results.
    let first = get(&client, &format!("{BASE}/policyresults?limit=3&sort=severity"))
        .await
        .expect(200)
        .json();
    assert_eq!(first["items"][0]["severity"], "critical");

    // One result by name, in JSON and as a Table.
    let row = loaded
        .rows
        .iter()
        .find(|r| r.namespace == "team-a" && r.score.is_some())
        .expect("a trivy row");
    let path = format!("{BASE}/namespaces/team-a/policyresults/{}", row.name);
    let one = get(&client, &path).await.expect(200).json();
    assert_eq!(one["kind"], "PolicyResult");
    assert_eq!(one["metadata"]["name"], row.name.as_str());
    assert_eq!(one["report"]["name"], row.report.as_str());
    assert_eq!(one["index"], row.index);
    let table = get_as(&client, &path, ACCEPT_TABLE).await.expect(200).json();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"][0]["object"]["metadata"]["name"], row.name.as_str());
    get(
        &client,
        &format!("{BASE}/namespaces/team-b/policyresults/{}", row.name),
    )
    .await
    .expect_status(404, "NotFound");
    get(
        &client,
        &format!("{BASE}/namespaces/team-a/policyresults/not-a-result"),
    )
    .await
    .expect_status(404, "NotFound");

    // Errors are Status objects.
    let bad = get(
        &client,
        &format!("{BASE}/policyresults?fieldSelector=status%3Dfail"),
    )
    .await
    .expect_status(400, "BadRequest");
    assert!(
        bad["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not a known field"),
        "{bad}"
    );
    get(&client, &format!("{BASE}/policyresults?property=score%3E%3Dhigh"))
        .await
        .expect_status(400, "BadRequest");
    get(
        &client,
        &format!("{BASE}/policyresults?limit=2&sort=severity&continue=abc"),
    )
    .await
    .expect_status(400, "BadRequest");
    get(&client, &format!("{BASE}/policyresults?watch=1"))
        .await
        .expect_status(405, "MethodNotAllowed");
    post(
        &client,
        &format!("{BASE}/namespaces/team-a/policyresults"),
        &json!({}),
    )
    .await
    .expect_status(405, "MethodNotAllowed");
    get(&client, &format!("{BASE}/namespaces/team-a/nothings"))
        .await
        .expect_status(404, "NotFound");
}

#[tokio::test]
async fn kubectl_lists_explains_and_summarizes() {
    let server = TestServer::start();
    let loaded = Loaded::create(&server);

    let resources = server.kubectl_ok(&["api-resources", "--api-group=results.prext.io"]);
    assert!(
        resources.contains("policyresults") && resources.contains("resultsummaries"),
        "{resources}"
    );
    let explain = server.kubectl_ok(&["explain", "policyresults.subject"]);
    assert!(explain.contains("What the result is about"), "{explain}");

    // kubectl sends the selectors as they are; the Table has the documented columns.
    let out = server.kubectl_ok(&[
        "get",
        "policyresults",
        "-A",
        "--field-selector",
        "result=fail",
        "-l",
        "severity in (high,critical)",
    ]);
    let header = common::table_header(&out);
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "REPORT",
            "POLICY",
            "RULE",
            "RESULT",
            "SEVERITY",
            "SUBJECT",
            "AGE"
        ]
    );
    let want = loaded.names(|r| r.result == "fail" && matches!(r.severity.as_str(), "high" | "critical"));
    assert_eq!(common::table_rows(&out).len() - 1, want.len(), "{out}");
    let wide = server.kubectl_ok(&["get", "pres", "-n", "team-b", "-o", "wide"]);
    assert!(
        common::table_header(&wide).ends_with(&[
            "SOURCE".into(),
            "CATEGORY".into(),
            "MESSAGE".into(),
            "NAME".into()
        ]),
        "{wide}"
    );
    let json: Value =
        serde_json::from_str(&server.kubectl_ok(&["get", "policyresults", "-n", "team-a", "-o", "json"]))
            .expect("json");
    let names: BTreeSet<String> = common::http::names(&json).into_iter().collect();
    assert_eq!(names, loaded.names(|r| r.namespace == "team-a"));

    // Summaries by report kind: the counts of the oracle.
    let summaries: Value = serde_json::from_str(&server.kubectl_ok(&[
        "get",
        "resultsummaries",
        "-A",
        "--field-selector",
        "groupBy=report.kind",
        "-o",
        "json",
    ]))
    .expect("json");
    for item in summaries["items"].as_array().expect("items") {
        let kind = item["group"].as_str().expect("group");
        let rows: Vec<&Row> = loaded.rows.iter().filter(|r| r.report_kind == kind).collect();
        assert_eq!(item["total"], rows.len(), "{kind}");
        assert_eq!(
            item["results"]["fail"],
            rows.iter().filter(|r| r.result == "fail").count(),
            "{kind}"
        );
    }
    // Across namespaces, grouped by namespace: kubectl's own NAMESPACE column names each
    // summary's namespace (its metadata.namespace), once.
    let table = server.kubectl_ok(&["get", "rsum", "-A"]);
    assert_eq!(
        common::table_header(&table)[..3],
        ["NAMESPACE".to_owned(), "PASS".into(), "FAIL".into()]
    );
    let namespaces: BTreeSet<String> = common::first_column(&table).into_iter().collect();
    let want: BTreeSet<String> = loaded
        .rows
        .iter()
        .filter(|r| !r.namespace.is_empty())
        .map(|r| r.namespace.clone())
        .collect();
    assert!(want.is_subset(&namespaces), "{table}");
    summaries_by_name(&server, &loaded);

    // /metrics, policy-reporter style.
    let metrics = server.kubectl_ok(&["get", "--raw", "/metrics"]);
    let cluster_fail = loaded
        .rows
        .iter()
        .filter(|r| r.namespace.is_empty() && r.result == "fail")
        .count();
    assert!(metrics.contains("# TYPE policy_report_result gauge"), "{metrics}");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("cluster_policy_report_result{") && l.contains("status=\"fail\""))
        .unwrap_or_else(|| panic!("no cluster fail line in {metrics}"));
    assert!(line.ends_with(&format!(" {cluster_fail}")), "{line}");
    let narrow = server.kubectl_ok(&["get", "--raw", "/metrics?labels=namespace,status"]);
    let team_a_fail = loaded
        .rows
        .iter()
        .filter(|r| r.namespace == "team-a" && r.result == "fail")
        .count();
    assert!(
        narrow.contains(&format!(
            "policy_report_result{{namespace=\"team-a\",status=\"fail\"}} {team_a_fail}"
        )),
        "{narrow}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_api_is_authorized_per_namespace() {
    let fake = fake_apiserver::FakeApiServer::start().await;
    let loaded = loaded::preload_store().await;
    let server = fake_apiserver::DelegatedPrext::start(&fake, &loaded.dir).await;

    let alice = server.client("alice-token").await;
    // Alice may list results in team-a only.
    let page = get(&alice, &format!("{BASE}/namespaces/team-a/policyresults"))
        .await
        .expect(200)
        .json();
    let names: BTreeSet<String> = common::http::names(&page).into_iter().collect();
    assert_eq!(names, loaded.names_in("team-a"));
    assert!(!names.is_empty());
    get(&alice, &format!("{BASE}/namespaces/team-a/resultsummaries"))
        .await
        .expect(200);
    get(&alice, &format!("{BASE}/namespaces/team-b/policyresults"))
        .await
        .expect_status(403, "Forbidden");
    let denied = get(&alice, &format!("{BASE}/policyresults"))
        .await
        .expect_status(403, "Forbidden");
    assert!(
        denied["message"]
            .as_str()
            .unwrap_or_default()
            .contains("policyresults"),
        "{denied}"
    );
    // Reading the reports themselves is another permission.
    get(
        &alice,
        "/apis/wgpolicyk8s.io/v1alpha2/namespaces/team-a/policyreports",
    )
    .await
    .expect_status(403, "Forbidden");

    // The SubjectAccessReviews named the virtual resource and the path's namespace.
    let reviews = fake.reviews();
    let team_a = reviews
        .iter()
        .find(|r| r["spec"]["resourceAttributes"]["namespace"] == "team-a" && r["spec"]["user"] == "alice")
        .expect("a review for team-a");
    assert_eq!(
        team_a["spec"]["resourceAttributes"],
        json!({"group": "results.prext.io", "namespace": "team-a", "resource": "policyresults", "verb": "list", "version": "v1alpha1"})
    );
    let cluster = reviews
        .iter()
        .find(|r| {
            r["spec"]["resourceAttributes"]["resource"] == "policyresults"
                && r["spec"]["resourceAttributes"].get("namespace").is_none()
        })
        .expect("a cluster-wide review");
    assert_eq!(cluster["spec"]["resourceAttributes"]["verb"], "list");

    // The admin (allowed everything by the fake) sees every namespace.
    let admin = server.client("admin-token").await;
    let all = get(&admin, &format!("{BASE}/policyresults?limit=1&count=true"))
        .await
        .expect(200)
        .json();
    assert_eq!(all["total"], loaded.total);
}
