//! kubectl writes: `create -f` of the repository's report files, `apply` twice, `patch` of every type,
//! `label`, `annotate`, `edit` through `KUBE_EDITOR`, and `delete` (one, `--all`).

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::common::samples::{
    adapt, load_testdata, manifest, report, testdata, testdata_text, CPOLR, CREPS, DEMO_POLR, POLR, REPS,
};
use crate::common::{first_column, table_header, table_rows, TestServer};
use crate::{create, get_json, jsonpath, sorted};

/// The KubeArmor export as a user would re-create it: the server-set metadata lines of
/// the exported object removed, everything else (UTF-8 BOM included) untouched.
fn kubearmor_without_server_fields() -> String {
    let text = testdata_text("kubearmor-list-bom.yaml");
    assert!(text.starts_with('\u{feff}'), "the file has a BOM");
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            let meta = l.starts_with("    ") && !l.starts_with("     ");
            !(meta
                && ["creationTimestamp:", "generation:", "resourceVersion:", "uid:"]
                    .iter()
                    .any(|f| t.starts_with(f)))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn create_report_files() {
    let server = TestServer::start();
    // A raw file of the repository: two v1alpha2 documents (Kyverno names its report after
    // the Pod's uid).
    let path = testdata("multi-document.yaml");
    let out = server.kubectl_ok(&["create", "-f", path.to_str().expect("utf-8 path")]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "policyreport.wgpolicyk8s.io/0cf7aa2b-f96e-4483-94dd-c54f60e5cb9c created",
            "policyreport.wgpolicyk8s.io/mutate-registry-credentials created"
        ]
    );

    // The large kube-bench report (121 results), v1alpha1 in the file, converted to v1alpha2.
    let bench = load_testdata("kube-bench-list.yaml");
    let bench = adapt(&bench[0], POLR, "default", "cis-benchmark");
    let file = server.write_file("kube-bench.json", &manifest(std::slice::from_ref(&bench)));
    let out = server.kubectl_ok(&["create", "-f", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.trim(), "policyreport.wgpolicyk8s.io/cis-benchmark created");

    // openreports kinds, raw, then a Falco ClusterPolicyReport renamed by a user.
    let path = testdata("openreports-falco.yaml");
    let out = server.kubectl_ok(&["create", "-f", path.to_str().expect("utf-8 path")]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "report.openreports.io/falco-alerts created",
            "clusterreport.openreports.io/falco-cluster-alerts created"
        ]
    );
    let out = create(
        &server,
        &[adapt(&load_testdata("falco.yaml")[1], CPOLR, "", "falco-cluster")],
    );
    assert_eq!(out.lines().count(), 1, "{out}");

    let table = server.kubectl_ok(&["get", "polr", "-A"]);
    let rows = table_rows(&table);
    assert_eq!(rows[0][..3], ["NAMESPACE", "NAME", "KIND"]);
    // Without a scope the Kind/Name cells are empty (or `<none>`): drop those.
    let row = |name: &str| -> Vec<String> {
        rows.iter()
            .find(|r| r.get(1).map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{table}"))
            .iter()
            .filter(|c| c.as_str() != "<none>")
            .cloned()
            .collect()
    };
    assert_eq!(
        row("cis-benchmark")[..7],
        ["default", "cis-benchmark", "59", "26", "36", "0", "0"]
    );
    let kyverno = "0cf7aa2b-f96e-4483-94dd-c54f60e5cb9c";
    assert_eq!(
        row(kyverno)[..6],
        ["default", kyverno, "Pod", "web-frontend", "1", "1"]
    );

    let stored = get_json(&server, POLR, "default", "cis-benchmark");
    assert_eq!(stored["results"].as_array().map(Vec::len), Some(121));
    assert_eq!(stored["results"], bench["results"], "121 results stored verbatim");
    assert_eq!(
        jsonpath(&server, CREPS, "", "falco-cluster-alerts", "{.results[0].policy}"),
        "Attach/Exec Pod"
    );

    // A JSON file of the prototype's group, raw: a client-supplied uid is replaced by the server's.
    let demo = testdata("prext-demo.json");
    let out = server.kubectl_ok(&["create", "-f", demo.to_str().expect("utf-8 path")]);
    assert_eq!(out.trim(), "policyreport.prext.demo/demo created");
    let demo = get_json(&server, DEMO_POLR, "default", "demo");
    assert_ne!(demo["metadata"]["uid"], "11111111-2222-4333-8444-555555555555");
    assert_eq!(demo["apiVersion"], "prext.demo/v1alpha1");
}

#[test]
fn create_list_file_with_bom() {
    let server = TestServer::start();
    // KubeArmor: a `kind: List` with a UTF-8 BOM and nanos > 999,999,999. kubectl validates
    // a v1 List client-side with the OpenAPI v2 document it fetches as protobuf.
    let file = server.write_file("kubearmor.yaml", &kubearmor_without_server_fields());
    let out = server.kubectl_ok(&["create", "-f", file.to_str().expect("utf-8 path")]);
    assert_eq!(
        out.trim(),
        "policyreport.wgpolicyk8s.io/kubearmor-policy-report created"
    );
    let table = server.kubectl_ok(&["get", "polr", "-n", "payments"]);
    let cells: Vec<String> = table_rows(&table)[1]
        .iter()
        .filter(|c| c.as_str() != "<none>")
        .cloned()
        .collect();
    assert_eq!(
        cells[..6],
        ["kubearmor-policy-report", "0", "3", "0", "0", "0"],
        "{table}"
    );
    let armor = get_json(&server, POLR, "payments", "kubearmor-policy-report");
    assert_eq!(armor["results"].as_array().map(Vec::len), Some(3));
    assert_eq!(armor["results"][0]["timestamp"]["nanos"], 1_716_294_685_u64);
    assert_eq!(armor["results"][0]["properties"]["host_pid"], "20417");
    assert_ne!(armor["metadata"]["uid"], "cbcd7b84-a9f2-41f2-b18f-8319748d1bc7");
}

#[test]
fn apply_twice_is_unchanged_then_configured() {
    let server = TestServer::start();
    let mut objs = vec![
        report(POLR, "apply", "one", &[]),
        report(POLR, "apply", "two", &[]),
    ];
    let file = server.write_file("apply.json", &manifest(&objs));
    let args = ["apply", "-f", file.to_str().expect("utf-8 path")];
    assert_eq!(
        server.kubectl_ok(&args).lines().collect::<Vec<_>>(),
        [
            "policyreport.wgpolicyk8s.io/one created",
            "policyreport.wgpolicyk8s.io/two created"
        ]
    );
    let rv_before = get_json(&server, POLR, "apply", "one")["metadata"]["resourceVersion"].clone();
    assert_eq!(
        server.kubectl_ok(&args).lines().collect::<Vec<_>>(),
        [
            "policyreport.wgpolicyk8s.io/one unchanged",
            "policyreport.wgpolicyk8s.io/two unchanged"
        ]
    );
    let one = get_json(&server, POLR, "apply", "one");
    assert_eq!(
        one["metadata"]["resourceVersion"], rv_before,
        "unchanged apply writes nothing"
    );
    assert!(
        one["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string(),
        "{one}"
    );

    objs[1]["summary"]["pass"] = json!(99);
    objs[1]["metadata"]["labels"] = json!({"applied": "yes"});
    std::fs::write(&file, manifest(&objs)).expect("rewrite manifest");
    assert_eq!(
        server.kubectl_ok(&args).lines().collect::<Vec<_>>(),
        [
            "policyreport.wgpolicyk8s.io/one unchanged",
            "policyreport.wgpolicyk8s.io/two configured"
        ]
    );
    let two = get_json(&server, POLR, "apply", "two");
    assert_eq!(two["summary"]["pass"], 99);
    assert_eq!(two["metadata"]["labels"]["applied"], "yes");
    assert_eq!(two["metadata"]["generation"], 2);
}

#[test]
fn patch_merge_json_and_strategic() {
    let server = TestServer::start();
    create(&server, &[report(POLR, "p", "target", &[])]);
    let out = server.kubectl_ok(&[
        "patch",
        "polr",
        "target",
        "-n",
        "p",
        "--type",
        "merge",
        "-p",
        r#"{"summary":{"pass":10}}"#,
    ]);
    assert_eq!(out.trim(), "policyreport.wgpolicyk8s.io/target patched");
    assert_eq!(jsonpath(&server, POLR, "p", "target", "{.summary.pass}"), "10");

    let out = server.kubectl_ok(&[
        "patch",
        "polr",
        "target",
        "-n",
        "p",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/summary/fail","value":5},{"op":"add","path":"/results/0/severity","value":"high"}]"#,
    ]);
    assert_eq!(out.trim(), "policyreport.wgpolicyk8s.io/target patched");
    let obj = get_json(&server, POLR, "p", "target");
    assert_eq!(obj["summary"]["fail"], 5);
    assert_eq!(obj["results"][0]["severity"], "high");
    assert_eq!(obj["metadata"]["generation"], 3);

    // kubectl refuses it itself when the OpenAPI PATCH operation does not list SMP, and
    // the server answers 415 otherwise; either way the message names the usable types.
    let err = server.kubectl_err(&[
        "patch",
        "polr",
        "target",
        "-n",
        "p",
        "-p",
        r#"{"summary":{"pass":1}}"#,
    ]);
    assert!(
        err.contains("UnsupportedMediaType") || err.contains("strategic-merge-patch+json is not supported"),
        "strategic merge patch is refused: {err}"
    );
    assert!(
        err.contains("application/merge-patch+json"),
        "the error lists the supported types: {err}"
    );
    assert_eq!(jsonpath(&server, POLR, "p", "target", "{.summary.pass}"), "10");

    let err = server.kubectl_err(&[
        "patch",
        "polr",
        "target",
        "-n",
        "p",
        "--type",
        "merge",
        "-p",
        r#"{"results":[{"policy":"p","result":"maybe"}]}"#,
    ]);
    assert!(
        err.contains(
            r#"The PolicyReport "target" is invalid: results[0].result: Unsupported value: "maybe""#
        ),
        "{err}"
    );
}

#[test]
fn label_and_annotate() {
    let server = TestServer::start();
    create(&server, &[report(REPS, "l", "rep", &[("team", "a")])]);
    let out = server.kubectl_ok(&["label", "reps", "rep", "-n", "l", "tier=gold"]);
    assert_eq!(out.trim(), "report.openreports.io/rep labeled");
    let err = server.kubectl_err(&["label", "reps", "rep", "-n", "l", "team=b"]);
    assert!(err.contains("already has a value (a)"), "{err}");
    server.kubectl_ok(&["label", "reps", "rep", "-n", "l", "team=b", "--overwrite"]);
    server.kubectl_ok(&["label", "reps", "rep", "-n", "l", "tier-"]);
    let labels = get_json(&server, REPS, "l", "rep")["metadata"]["labels"].clone();
    assert_eq!(labels, json!({"team": "b"}));
    assert_eq!(
        first_column(&server.kubectl_ok(&["get", "reps", "-n", "l", "-l", "team=b"])),
        ["rep"]
    );

    let out = server.kubectl_ok(&["annotate", "reps", "rep", "-n", "l", "owner=platform"]);
    assert_eq!(out.trim(), "report.openreports.io/rep annotated");
    assert_eq!(
        jsonpath(&server, REPS, "l", "rep", "{.metadata.annotations.owner}"),
        "platform"
    );
    assert_eq!(
        get_json(&server, REPS, "l", "rep")["metadata"]["generation"],
        1,
        "metadata-only changes keep the generation"
    );
}

#[test]
fn edit_through_kube_editor() {
    let server = TestServer::start();
    create(&server, &[report(POLR, "e", "edited", &[])]);
    let script = server.write_file("editor.sh", "#!/bin/sh\nsed -i 's/pass: 3/pass: 42/' \"$1\"\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod editor");
    let out = server
        .kubectl_cmd(&["edit", "polr", "edited", "-n", "e"])
        .env("KUBE_EDITOR", &script)
        .output()
        .expect("run kubectl edit");
    assert!(out.status.success(), "kubectl edit failed: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "policyreport.wgpolicyk8s.io/edited edited"
    );
    assert_eq!(jsonpath(&server, POLR, "e", "edited", "{.summary.pass}"), "42");
}

#[test]
fn delete_one_and_all() {
    let server = TestServer::start();
    create(
        &server,
        &[
            report(POLR, "d", "a", &[]),
            report(POLR, "d", "b", &[]),
            report(POLR, "d", "c", &[]),
            report(POLR, "keep", "k", &[]),
            report(CPOLR, "", "cluster", &[]),
        ],
    );
    let out = server.kubectl_ok(&["delete", "polr", "a", "-n", "d"]);
    assert_eq!(out.trim(), r#"policyreport.wgpolicyk8s.io "a" deleted"#);
    assert_eq!(
        first_column(&server.kubectl_ok(&["get", "polr", "-n", "d"])),
        ["b", "c"]
    );

    let out = server.kubectl_ok(&["delete", "polr", "--all", "-n", "d"]);
    assert_eq!(
        sorted(out.lines().map(str::to_string).collect()),
        [
            r#"policyreport.wgpolicyk8s.io "b" deleted"#,
            r#"policyreport.wgpolicyk8s.io "c" deleted"#
        ]
    );
    let empty = server.kubectl(&["get", "polr", "-n", "d"]);
    assert!(
        String::from_utf8_lossy(&empty.stderr).contains("No resources found in d namespace."),
        "{empty:?}"
    );
    assert_eq!(
        first_column(&server.kubectl_ok(&["get", "polr", "-n", "keep"])),
        ["k"]
    );

    let out = server.kubectl_ok(&["delete", "cpolr", "cluster"]);
    assert_eq!(
        out.trim(),
        r#"clusterpolicyreport.wgpolicyk8s.io "cluster" deleted"#
    );
    let err = server.kubectl_err(&["delete", "cpolr", "cluster"]);
    assert!(err.contains("NotFound"), "{err}");
    assert_eq!(
        table_header(&server.kubectl_ok(&["get", "polr", "-A"]))[0],
        "NAMESPACE"
    );
}
