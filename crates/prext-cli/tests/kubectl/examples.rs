//! The README's quick start on the repository's `examples/`: `kubectl apply -f examples/`
//! creates every example without a warning, keeps each object as written (producer
//! metadata, scope, results), and a second apply changes nothing.

use serde_json::Value;

use crate::common::samples::{load_example, repo_root, ALL_KINDS};
use crate::common::TestServer;
use crate::get_json;

/// The examples, and the line `kubectl apply` prints for each.
const EXAMPLES: [(&str, &str); 5] = [
    (
        "kube-bench-cis.yaml",
        "clusterpolicyreport.wgpolicyk8s.io/kube-bench-cis-control-plane",
    ),
    (
        "kyverno-ephemeral-report.yaml",
        "ephemeralreport.reports.kyverno.io/cc6657f8-f1e8-4579-af5f-7ec71abb3a38",
    ),
    (
        "kyverno-pod-security.yaml",
        "policyreport.wgpolicyk8s.io/0d333fd0-99d3-4831-9b4a-c5bc2f2f0908",
    ),
    (
        "openreports-report.yaml",
        "report.openreports.io/03239568-631c-4301-9b11-51bb23ad83ba",
    ),
    (
        "trivy-vulnerability-report.yaml",
        "policyreport.wgpolicyk8s.io/trivy-vuln-polr-storefront-6d4cf56db6",
    ),
];

#[test]
fn readme_examples_apply_cleanly() {
    let server = TestServer::start();
    let dir = repo_root().join("examples");
    let dir = dir.to_str().expect("utf-8 path");
    let out = server.kubectl(&["apply", "-f", dir]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stderr, "", "no warning (nothing pruned, nothing refused)");
    let want: Vec<String> = EXAMPLES.iter().map(|(_, obj)| format!("{obj} created")).collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want);

    for (file, _) in EXAMPLES {
        let written = load_example(file).remove(0);
        let kind = ALL_KINDS
            .iter()
            .find(|k| written["apiVersion"] == k.api_version().as_str() && written["kind"] == k.kind)
            .unwrap_or_else(|| panic!("{file}: not a served kind"));
        let meta = &written["metadata"];
        let ns = meta["namespace"].as_str().unwrap_or_default();
        let mut stored = get_json(&server, *kind, ns, meta["name"].as_str().expect("name"));
        // Client-side apply records what it applied.
        let annotations = stored["metadata"]["annotations"]
            .as_object_mut()
            .expect("annotations");
        assert!(annotations
            .remove("kubectl.kubernetes.io/last-applied-configuration")
            .is_some());
        for field in ["labels", "annotations", "ownerReferences"] {
            assert_eq!(stored["metadata"][field], meta[field], "{file}: metadata.{field}");
        }
        for field in ["spec", "scope", "source", "summary", "results"] {
            assert_eq!(stored[field], written[field], "{file}: {field}");
        }
        let results = written["results"]
            .as_array()
            .or(written["spec"]["results"].as_array())
            .map_or(0, Vec::len);
        assert!(results > 0, "{file} has results");
    }
    let labels = |file: &str| {
        load_example(file)[0]["metadata"]["labels"]
            .as_object()
            .map_or(0, |l| l.len())
    };
    assert!(labels("kyverno-pod-security.yaml") >= 20, "Kyverno's labels");
    let bench: Value = load_example("kube-bench-cis.yaml").remove(0);
    assert!(bench["results"].as_array().map_or(0, Vec::len) >= 120);

    // Applying the same files again changes nothing.
    let again = server.kubectl_ok(&["apply", "-f", dir]);
    let want: Vec<String> = EXAMPLES
        .iter()
        .map(|(_, obj)| format!("{obj} unchanged"))
        .collect();
    assert_eq!(again.lines().collect::<Vec<_>>(), want);
}
