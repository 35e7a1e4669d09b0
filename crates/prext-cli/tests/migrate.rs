//! End-to-end test of `prext migrate`, with a second prext as the source (it speaks the
//! Kubernetes API the way kube-apiserver serves the report CRDs): reports of every kind are
//! created in it with kubectl, copied page by page into a fresh data dir (interrupted once
//! by `--max-objects` and resumed from the checkpoint), served from there by a new prext
//! and compared with kubectl; a re-run changes nothing and a changed report is updated.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::samples::{
    adapt, load_testdata, manifest, report, Kind, ALL_KINDS, CEPHR, CPOLR, CREPS, DEMO_CPOLR, DEMO_POLR,
    EPHR, POLR, REPS,
};
use common::TestServer;
use serde_json::{json, Value};

/// `--page-size` of every run: several pages per kind.
const PAGE: &str = "2";

/// One run of `prext migrate`.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The numbers of the `total:` line: listed, created, updated, unchanged, skipped.
    fn totals(&self) -> [u64; 5] {
        let line = self
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("total: "))
            .unwrap_or_else(|| panic!("no total line in:\n{}\nstderr:\n{}", self.stdout, self.stderr));
        let numbers: Vec<u64> = line
            .split(", ")
            .filter_map(|p| p.split(' ').next()?.parse().ok())
            .collect();
        numbers
            .try_into()
            .unwrap_or_else(|n| panic!("malformed total line {line:?}: {n:?}"))
    }

    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "prext migrate exited {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `prext migrate --from-kubeconfig SOURCE --data-dir DATA --page-size 2 EXTRA...`.
fn migrate(source: &TestServer, data_dir: &Path, extra: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_prext"))
        .arg("migrate")
        .arg("--from-kubeconfig")
        .arg(&source.kubeconfig)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--page-size", PAGE])
        .args(extra)
        .env_remove("PREXT_STORE")
        .env_remove("PREXT_DATA_DIR")
        .env("NO_COLOR", "1")
        .output()
        .expect("run prext migrate");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every object of `kind` as kubectl returns it, by `namespace/name`.
fn objects(server: &TestServer, kind: Kind) -> BTreeMap<String, Value> {
    let out = server.kubectl_ok(&["get", kind.short, "-A", "-o", "json"]);
    let list: Value = serde_json::from_str(&out).expect("kubectl JSON");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| {
            let m = &o["metadata"];
            (
                format!(
                    "{}/{}",
                    m["namespace"].as_str().unwrap_or(""),
                    m["name"].as_str().unwrap_or("")
                ),
                o.clone(),
            )
        })
        .collect()
}

/// Fills the source: 16 reports of all 8 kinds, from the repository's test data and synthetic reports, with
/// annotations, finalizers and owner references (one of them to another report).
fn populate(source: &TestServer) -> usize {
    let mut objs = Vec::new();
    for i in 0..5 {
        let mut r = report(
            POLR,
            if i % 2 == 0 { "team-a" } else { "team-b" },
            &format!("pod-{i}"),
            &[("app", "web")],
        );
        r["metadata"]["annotations"] = json!({"example.com/origin": format!("scan-{i}")});
        objs.push(r);
    }
    let cis = load_testdata("kube-bench-list.yaml");
    objs.push(adapt(&cis[0], CPOLR, "", "cis-benchmark"));
    objs.push(report(CPOLR, "", "cluster-a", &[("tier", "gold")]));
    let mut held = report(CPOLR, "", "held", &[]);
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    objs.push(held);
    let falco = load_testdata("openreports-falco.yaml");
    objs.push(adapt(&falco[0], REPS, "team-a", "falco"));
    for kind in [REPS, CREPS, CEPHR, DEMO_POLR, DEMO_CPOLR] {
        objs.push(report(
            kind,
            "team-b",
            &format!("{}-one", kind.plural),
            &[("k", kind.plural)],
        ));
    }
    let mut owned_by_pod = report(EPHR, "team-a", "ephr-pod", &[]);
    owned_by_pod["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "v1", "kind": "Pod", "name": "nginx",
        "uid": "6c737f35-260c-4e4f-8516-61a125c9fb78", "controller": true
    }]);
    objs.push(owned_by_pod);
    source.kubectl_stdin_ok(&["create", "-f", "-"], &manifest(&objs));

    // A report owned by another report: the copy must point at the owner's new uid.
    let owner_uid = source.kubectl_ok(&[
        "get",
        "polr",
        "pod-0",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let mut owned = report(EPHR, "team-a", "ephr-owned", &[]);
    owned["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport", "name": "pod-0", "uid": owner_uid
    }]);
    source.kubectl_stdin_ok(&["create", "-f", "-"], &manifest(&[owned]));
    objs.len() + 1
}

#[test]
fn migrates_every_kind_resumes_after_an_interruption_and_reruns_idempotently() {
    let source = TestServer::start();
    let total = populate(&source) as u64;
    let mut target = TestServer::start();
    target.terminate(); // the SQLite store is opened by one process at a time
    let data = target.data_dir();

    // A dry run reads everything and writes nothing.
    let dry_dir = tempfile::tempdir().expect("tempdir");
    let dry = migrate(&source, dry_dir.path(), &["--dry-run"]);
    dry.expect_code(0);
    assert_eq!(dry.totals(), [total, total, 0, 0, 0]);
    assert!(
        !dry_dir.path().join("prext.db").exists(),
        "a dry run creates no store"
    );

    // Interrupted in the second page of PolicyReports…
    let first = migrate(&source, &data, &["--max-objects", "3"]);
    first.expect_code(3);
    assert_eq!(first.totals(), [3, 3, 0, 0, 0]);
    assert!(
        first.stdout.contains("stopped at --max-objects"),
        "{}",
        first.stdout
    );
    let checkpoint: Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("migrate-checkpoint.json")).expect("checkpoint"),
    )
    .expect("checkpoint JSON");
    assert_eq!(checkpoint["resume"]["resource"], "policyreports.wgpolicyk8s.io");
    assert!(checkpoint["resume"]["continue"].is_string(), "{checkpoint}");

    // …and resumed there: the first page is not read again, the interrupted one is.
    let second = migrate(&source, &data, &[]);
    second.expect_code(0);
    assert!(second.stderr.contains("resuming from"), "{}", second.stderr);
    assert_eq!(second.totals(), [total - 2, total - 3, 0, 1, 0]);
    assert!(
        second
            .stdout
            .contains("note: copies have new uids and resourceVersions"),
        "{}",
        second.stdout
    );
    assert!(!data.join("migrate-checkpoint.json").exists());

    target.start_again();
    let mut copied_total = 0;
    for kind in ALL_KINDS {
        let (before, after) = (objects(&source, kind), objects(&target, kind));
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "{}",
            kind.plural
        );
        copied_total += after.len() as u64;
        for (key, src) in &before {
            let (s, t) = (&src["metadata"], &after[key]["metadata"]);
            for field in ["labels", "annotations", "finalizers", "creationTimestamp"] {
                assert_eq!(s[field], t[field], "{} {key} {field}", kind.plural);
            }
            assert_ne!(s["uid"], t["uid"], "{} {key} has a new uid", kind.plural);
            if key != "team-a/ephr-owned" {
                assert_eq!(
                    s["ownerReferences"], t["ownerReferences"],
                    "{} {key}",
                    kind.plural
                );
            }
            let body = |o: &Value| {
                let mut o = o.clone();
                o.as_object_mut().map(|m| m.remove("metadata"));
                o
            };
            assert_eq!(body(src), body(&after[key]), "{} {key} content", kind.plural);
        }
    }
    assert_eq!(copied_total, total);
    let owner_copy_uid = &objects(&target, POLR)["team-a/pod-0"]["metadata"]["uid"];
    let owned = &objects(&target, EPHR)["team-a/ephr-owned"]["metadata"]["ownerReferences"][0];
    assert_eq!(
        owned["uid"], *owner_copy_uid,
        "owner references follow the owner's copy"
    );
    assert_eq!(owned["name"], "pod-0");
    let versions: Vec<Value> = objects(&target, POLR)
        .values()
        .map(|o| o["metadata"]["resourceVersion"].clone())
        .collect();

    // A second run finds everything unchanged and writes nothing.
    target.terminate();
    let third = migrate(&source, &data, &[]);
    third.expect_code(0);
    assert_eq!(third.totals(), [total, 0, 0, total, 0]);

    // A report changed in the source is updated, and only that one.
    source.kubectl_ok(&["label", "polr", "pod-1", "-n", "team-b", "reviewed=yes"]);
    let fourth = migrate(&source, &data, &["--kinds", "polr"]);
    fourth.expect_code(0);
    assert_eq!(fourth.totals(), [5, 0, 1, 4, 0]);

    target.start_again();
    let polr = objects(&target, POLR);
    assert_eq!(polr.len(), 5, "nothing duplicated");
    assert_eq!(polr["team-b/pod-1"]["metadata"]["labels"]["reviewed"], "yes");
    let unchanged: Vec<&Value> = polr
        .iter()
        .filter(|(k, _)| k.as_str() != "team-b/pod-1")
        .map(|(_, o)| &o["metadata"]["resourceVersion"])
        .collect();
    assert!(
        unchanged.iter().all(|rv| versions.contains(rv)),
        "re-runs rewrote unchanged reports"
    );
}

#[test]
fn bad_arguments_and_an_unreachable_source_fail_clearly() {
    let source = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let unknown = migrate(&source, dir.path(), &["--kinds", "pods"]);
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("unknown kind \"pods\""),
        "{}",
        unknown.stderr
    );

    // The same kubeconfig pointed at a closed port: retried, then a fatal error naming the kind.
    let port = source.url.rsplit(':').next().expect("port").to_string();
    let kubeconfig = std::fs::read_to_string(&source.kubeconfig).expect("kubeconfig");
    let kubeconfig = kubeconfig.replace(&format!(":{port}"), ":1");
    let path = dir.path().join("closed-port-kubeconfig");
    std::fs::write(&path, kubeconfig).expect("write kubeconfig");
    let out = Command::new(env!("CARGO_BIN_EXE_prext"))
        .args(["migrate", "--kinds", "reps", "--from-kubeconfig"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run prext migrate");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("retrying in"), "{stderr}");
    assert!(
        stdout.contains("error: reports.openreports.io: cannot reach the source"),
        "{stdout}"
    );
    assert!(
        stdout.contains("run the same command again to resume"),
        "{stdout}"
    );
}
