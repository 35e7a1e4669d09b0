//! kubectl reads: discovery, `get` in every output format, selectors, paging, `describe`
//! and `explain`.

use crate::common::samples::{adapt, load_testdata, report, ALL_KINDS, CEPHR, CPOLR, EPHR, POLR, REPS};
use crate::common::{first_column, table_header, table_rows, TestServer};
use crate::{create, get_json, sorted};

#[test]
fn api_resources_lists_every_kind_with_short_names() {
    let server = TestServer::start();
    let out = server.kubectl_ok(&["api-resources"]);
    assert_eq!(
        table_header(&out),
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    let rows = table_rows(&out);
    for kind in ALL_KINDS {
        let api_version = kind.api_version();
        let row = rows
            .iter()
            .find(|r| r.first().map(String::as_str) == Some(kind.plural) && r.contains(&api_version))
            .unwrap_or_else(|| panic!("no row for {} {api_version} in:\n{out}", kind.plural));
        let namespaced = kind.namespaced.to_string();
        let mut expected = vec![kind.plural];
        if !kind.short.contains('.') {
            expected.push(kind.short);
        }
        expected.extend([api_version.as_str(), namespaced.as_str(), kind.kind]);
        assert_eq!(row, &expected, "api-resources row of {}", kind.kind);
    }
    // The served kinds plus standalone mode's read-only core `namespaces`.
    assert!(
        rows.iter()
            .any(|r| r.first().map(String::as_str) == Some("namespaces") && r.contains(&"v1".to_string())),
        "namespaces row:\n{out}"
    );
    // Rows include the header; the result query API adds policyresults, resultsummaries,
    // findings and resulttrends.
    assert_eq!(
        rows.len(),
        2 + ALL_KINDS.len() + 4,
        "exactly the served kinds, namespaces and the result API:\n{out}"
    );

    let kyverno = server.kubectl_ok(&["api-resources", "--categories=kyverno", "-o", "name"]);
    assert_eq!(
        sorted(kyverno.lines().map(str::to_string).collect()),
        [
            "clusterephemeralreports.reports.kyverno.io",
            "ephemeralreports.reports.kyverno.io"
        ]
    );
}

#[test]
fn get_several_kinds_across_namespaces_and_by_category() {
    let server = TestServer::start();
    let err = server.kubectl(&["get", "polr,cpolr", "-A"]);
    assert!(err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("No resources found"),
        "empty get says so: {err:?}"
    );
    create(
        &server,
        &[
            report(POLR, "team-a", "pod-a", &[]),
            report(POLR, "team-b", "pod-b", &[]),
            report(CPOLR, "", "cluster-1", &[]),
            report(EPHR, "team-a", "eph-1", &[]),
            report(CEPHR, "", "ceph-1", &[]),
        ],
    );
    let out = server.kubectl_ok(&["get", "polr,cpolr", "-A"]);
    assert!(out.contains("policyreport.wgpolicyk8s.io/pod-a"), "{out}");
    assert!(out.contains("policyreport.wgpolicyk8s.io/pod-b"), "{out}");
    assert!(
        out.contains("clusterpolicyreport.wgpolicyk8s.io/cluster-1"),
        "{out}"
    );
    assert!(!out.contains("eph-1"), "{out}");
    let polr_rows: Vec<_> = table_rows(&out)
        .into_iter()
        .filter(|r| r.iter().any(|c| c.starts_with("policyreport.")))
        .collect();
    assert_eq!(polr_rows.len(), 2, "{out}");
    assert_eq!(polr_rows[0][0], "team-a", "NAMESPACE column first with -A: {out}");
    assert_eq!(polr_rows[1][0], "team-b", "{out}");

    let kyverno = server.kubectl_ok(&["get", "kyverno", "-A", "-o", "name"]);
    assert_eq!(
        sorted(kyverno.lines().map(str::to_string).collect()),
        [
            "clusterephemeralreport.reports.kyverno.io/ceph-1",
            "ephemeralreport.reports.kyverno.io/eph-1"
        ]
    );
}

#[test]
fn table_columns_default_and_wide() {
    let server = TestServer::start();
    create(
        &server,
        &[
            report(POLR, "ns1", "polr-1", &[]),
            report(REPS, "ns1", "rep-1", &[]),
        ],
    );
    // Kyverno's wgpolicyk8s.io CRD shows Kind/Name always.
    let polr = server.kubectl_ok(&["get", "polr", "-n", "ns1"]);
    assert_eq!(
        table_header(&polr),
        ["NAME", "KIND", "NAME", "PASS", "FAIL", "WARN", "ERROR", "SKIP", "AGE"]
    );
    let row = &table_rows(&polr)[1];
    assert_eq!(&row[..8], ["polr-1", "Pod", "nginx", "3", "1", "0", "0", "0"]);
    assert_age_cell(&row[8]);

    // openreports: Kind/Name have priority 1, i.e. `-o wide` only.
    let reps = server.kubectl_ok(&["get", "reps", "-n", "ns1"]);
    assert_eq!(
        table_header(&reps),
        ["NAME", "PASS", "FAIL", "WARN", "ERROR", "SKIP", "AGE"]
    );
    assert_eq!(&table_rows(&reps)[1][..6], ["rep-1", "3", "1", "0", "0", "0"]);
    let wide = server.kubectl_ok(&["get", "reps", "-n", "ns1", "-o", "wide"]);
    assert_eq!(
        table_header(&wide),
        ["NAME", "KIND", "NAME", "PASS", "FAIL", "WARN", "ERROR", "SKIP", "AGE"]
    );
    assert_eq!(&table_rows(&wide)[1][..3], ["rep-1", "Pod", "nginx"]);

    let labels = server.kubectl_ok(&["get", "reps", "-n", "ns1", "--show-labels"]);
    assert_eq!(table_header(&labels).last().map(String::as_str), Some("LABELS"));
}

/// A kubectl Age cell: `<n>s`/`<n>m...`, a human duration, never an RFC 3339 timestamp.
fn assert_age_cell(cell: &str) {
    assert!(
        cell.ends_with('s') || cell.ends_with('m') || cell.ends_with('h'),
        "AGE cell {cell:?} is a human duration"
    );
    assert!(
        cell.chars().next().is_some_and(|c| c.is_ascii_digit()),
        "AGE cell {cell:?}"
    );
}

#[test]
fn yaml_and_json_output_carry_the_object() {
    let server = TestServer::start();
    let trivy = load_testdata("trivy-vulnerability.json");
    create(&server, &[adapt(&trivy[0], POLR, "prod", "trivy-nginx")]);

    let obj = get_json(&server, POLR, "prod", "trivy-nginx");
    assert_eq!(obj["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(obj["kind"], "PolicyReport");
    assert_eq!(obj["metadata"]["namespace"], "prod");
    assert!(
        obj["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36),
        "{obj}"
    );
    assert_eq!(obj["metadata"]["generation"], 1);
    assert_eq!(obj["results"].as_array().map(Vec::len), Some(14));
    assert_eq!(obj["results"][0]["properties"]["score"], "10.0");
    assert_eq!(obj["metadata"]["labels"].as_object().map(|l| l.len()), Some(6));
    assert_eq!(obj["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
    assert_eq!(obj["summary"], trivy[0]["summary"]);
    assert_eq!(obj["results"], trivy[0]["results"], "results are stored verbatim");

    let yaml = server.kubectl_ok(&["get", "polr", "trivy-nginx", "-n", "prod", "-o", "yaml"]);
    let from_yaml: serde_json::Value = serde_norway::from_str(&yaml).expect("kubectl -o yaml is YAML");
    assert_eq!(from_yaml, obj, "-o yaml and -o json show the same object");
    assert!(
        yaml.starts_with("apiVersion: wgpolicyk8s.io/v1alpha2\n"),
        "{yaml}"
    );

    let list = server.kubectl_ok(&["get", "polr", "-n", "prod", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&list).expect("list JSON");
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "trivy-nginx");
}

#[test]
fn label_and_field_selectors() {
    let server = TestServer::start();
    create(
        &server,
        &[
            report(POLR, "sel", "a", &[("env", "prod"), ("team", "x")]),
            report(POLR, "sel", "b", &[("env", "dev")]),
            report(POLR, "sel", "c", &[("env", "prod")]),
            report(POLR, "sel", "d", &[("team", "x")]),
            report(POLR, "sel", "e", &[("env", "staging")]),
            report(POLR, "other", "f", &[("env", "prod")]),
        ],
    );
    let names = |extra: &[&str]| {
        let mut args = vec!["get", "polr", "-n", "sel"];
        args.extend_from_slice(extra);
        sorted(first_column(&server.kubectl_ok(&args)))
    };
    assert_eq!(names(&["-l", "env=prod"]), ["a", "c"]);
    assert_eq!(names(&["-l", "env==prod,team=x"]), ["a"]);
    assert_eq!(
        names(&["-l", "env!=prod"]),
        ["b", "d", "e"],
        "!= matches objects without the key"
    );
    assert_eq!(names(&["-l", "env in (dev,staging)"]), ["b", "e"]);
    assert_eq!(names(&["-l", "env notin (prod)"]), ["b", "d", "e"]);
    assert_eq!(names(&["-l", "!env"]), ["d"]);
    assert_eq!(names(&["-l", "env,!team"]), ["b", "c", "e"]);
    assert_eq!(names(&["--field-selector", "metadata.name=c"]), ["c"]);
    assert_eq!(
        names(&["--field-selector", "metadata.name!=c", "-l", "env"]),
        ["a", "b", "e"]
    );

    let all = server.kubectl_ok(&["get", "polr", "-A", "-l", "env=prod", "-o", "name"]);
    assert_eq!(
        sorted(all.lines().map(str::to_string).collect()),
        [
            "policyreport.wgpolicyk8s.io/a",
            "policyreport.wgpolicyk8s.io/c",
            "policyreport.wgpolicyk8s.io/f"
        ]
    );

    let bad = server.kubectl_err(&["get", "polr", "-n", "sel", "--field-selector", "spec.foo=bar"]);
    assert!(
        bad.contains("BadRequest") || bad.contains("not a known field selector"),
        "{bad}"
    );
    let bad = server.kubectl_err(&["get", "polr", "-n", "sel", "-l", "env in (a"]);
    assert!(!bad.is_empty());
}

#[test]
fn chunked_list_returns_every_object_once() {
    let server = TestServer::start();
    let objs: Vec<_> = (0..7)
        .map(|i| report(POLR, "paged", &format!("r{i}"), &[]))
        .collect();
    create(&server, &objs);
    let out = server.kubectl(&["get", "polr", "-n", "paged", "--chunk-size=2", "-v=6"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        first_column(&stdout),
        ["r0", "r1", "r2", "r3", "r4", "r5", "r6"],
        "each object once, in name order"
    );
    assert_eq!(
        table_rows(&stdout).iter().filter(|r| r[0] == "NAME").count(),
        1,
        "{stdout}"
    );
    let pages = stderr
        .lines()
        .filter(|l| l.contains("limit=2") && l.contains("policyreports"))
        .count();
    let continued = stderr.lines().filter(|l| l.contains("continue=")).count();
    assert!(
        pages >= 4,
        "7 objects in pages of 2 need 4 requests, saw {pages}:\n{stderr}"
    );
    assert!(continued >= 3, "pages after the first carry continue:\n{stderr}");
}

#[test]
fn describe_shows_fields() {
    let server = TestServer::start();
    let falco = load_testdata("falco.yaml");
    create(&server, &[adapt(&falco[0], POLR, "my-namespace", "falco-alerts")]);
    let out = server.kubectl_ok(&["describe", "polr", "falco-alerts", "-n", "my-namespace"]);
    for needle in [
        "Name:",
        "falco-alerts",
        "Namespace:",
        "my-namespace",
        "policy.kubernetes.io/engine=falco-agent",
        "API Version:  wgpolicyk8s.io/v1alpha2",
        "Kind:         PolicyReport",
        "Results:",
        "Terminal shell in container",
    ] {
        assert!(out.contains(needle), "describe lacks {needle:?}:\n{out}");
    }
}

#[test]
fn explain_shows_schema_descriptions() {
    let server = TestServer::start();
    let out = server.kubectl_ok(&["explain", "polr.results"]);
    assert!(out.contains("GROUP:      wgpolicyk8s.io"), "{out}");
    assert!(out.contains("KIND:       PolicyReport"), "{out}");
    assert!(out.contains("FIELD: results <[]Object>"), "{out}");
    assert!(
        out.contains("PolicyReportResult provides result details"),
        "{out}"
    );
    assert!(out.contains("policy\t<string> -required-"), "{out}");
    assert!(out.contains("result\t<string>"), "{out}");

    let out = server.kubectl_ok(&[
        "explain",
        "policyreport.summary",
        "--api-version=wgpolicyk8s.io/v1alpha2",
    ]);
    assert!(out.contains("FIELD: summary <Object>"), "{out}");
    assert!(out.contains("fail\t<integer>"), "{out}");

    let out = server.kubectl_ok(&["explain", "ephr.spec.owner"]);
    assert!(out.contains("KIND:       EphemeralReport"), "{out}");
    assert!(out.contains("uid\t<string> -required-"), "{out}");
}

#[test]
fn get_missing_object_is_not_found() {
    let server = TestServer::start();
    let err = server.kubectl_err(&["get", "polr", "nope", "-n", "default"]);
    assert!(
        err.contains(r#"Error from server (NotFound): policyreports.wgpolicyk8s.io "nope" not found"#),
        "{err}"
    );
    // In a namespace other than `default`, kubectl 1.32 also looks the namespace up
    // (`GET /api/v1/namespaces/NS`) to tell a missing namespace from a missing object.
    let err = server.kubectl_err(&["get", "polr", "nope", "-n", "team-x"]);
    assert!(
        err.contains(r#"Error from server (NotFound): policyreports.wgpolicyk8s.io "nope" not found"#),
        "{err}"
    );
    let err = server.kubectl_err(&["get", "cpolr", "nope"]);
    assert!(
        err.contains(r#"clusterpolicyreports.wgpolicyk8s.io "nope" not found"#),
        "{err}"
    );
}
