//! `kubectl apply --server-side`: create, re-apply, two field managers, conflicts and
//! `--force-conflicts`, and the managedFields that record who owns what.

use serde_json::{json, Value};

use crate::common::samples::{manifest, report, POLR};
use crate::common::TestServer;
use crate::get_json;

/// The object with its managedFields (kubectl hides them by default).
fn get_managed(server: &TestServer, name: &str) -> Value {
    let out = server.kubectl_ok(&[
        "get",
        "polr",
        name,
        "-n",
        "ssa",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    serde_json::from_str(&out).expect("kubectl -o json")
}

fn apply(server: &TestServer, manager: &str, obj: &Value, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", "--server-side", "--field-manager", manager, "-f", "-"];
    args.extend_from_slice(extra);
    server.kubectl_stdin(&args, &manifest(std::slice::from_ref(obj)))
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_string(),
                        e["operation"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn server_side_apply_twice_then_two_managers() {
    let server = TestServer::start();
    let obj = report(POLR, "ssa", "r1", &[("team", "a")]);

    let out = apply(&server, "producer", &obj, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("serverside-applied"));
    let first = get_managed(&server, "r1");
    assert_eq!(managers(&first), [("producer".to_string(), "Apply".to_string())]);

    // The same apply again changes nothing: same resourceVersion.
    let out = apply(&server, "producer", &obj, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = get_json(&server, POLR, "ssa", "r1");
    assert_eq!(
        again["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );

    // A second manager adds its own label: both coexist.
    let labeller = json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "r1", "namespace": "ssa", "labels": {"owner": "sec"}}});
    let out = apply(&server, "labeller", &labeller, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let both = get_managed(&server, "r1");
    assert_eq!(both["metadata"]["labels"], json!({"team": "a", "owner": "sec"}));
    assert_eq!(both["summary"]["fail"], 1);
    let names: Vec<String> = managers(&both).into_iter().map(|(m, _)| m).collect();
    assert!(
        names.contains(&"producer".into()) && names.contains(&"labeller".into()),
        "{names:?}"
    );

    // The first manager stops applying its label: it is removed, the other one stays.
    let mut without = obj.clone();
    without["metadata"]["labels"] = json!({});
    let out = apply(&server, "producer", &without, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = get_json(&server, POLR, "ssa", "r1");
    assert_eq!(after["metadata"]["labels"], json!({"owner": "sec"}));
}

#[test]
fn conflicting_apply_is_refused_until_forced() {
    let server = TestServer::start();
    let obj = report(POLR, "ssa", "r2", &[]);
    assert!(apply(&server, "producer", &obj, &[]).status.success());

    let mut other = obj.clone();
    other["summary"]["fail"] = json!(7);
    let out = apply(&server, "intruder", &other, &[]);
    assert!(!out.status.success(), "a conflicting apply must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("conflict with \"producer\""), "{stderr}");
    assert!(stderr.contains(".summary"), "{stderr}");
    assert_eq!(
        get_json(&server, POLR, "ssa", "r2")["summary"]["fail"],
        1,
        "refused apply changed nothing"
    );

    let out = apply(&server, "intruder", &other, &["--force-conflicts"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let forced = get_json(&server, POLR, "ssa", "r2");
    assert_eq!(forced["summary"]["fail"], 7);

    // Same value as the live object: shared ownership, no conflict.
    let out = apply(&server, "third", &other, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
