//! `kubectl prext` as kubectl users expect it: a manifest naming another namespace than
//! `-n` is refused (kubectl's `RequireNamespace`, k8s.io/cli-runtime/pkg/resource/visitor.go),
//! an invalid flag value is bad usage (exit 2), null Table cells print empty as kubectl prints
//! them (`printTable` of k8s.io/cli-runtime/pkg/printers/tableprinter.go), and `get -w` keeps
//! its columns aligned.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::background::Background;
use crate::common::http::post;
use crate::common::samples::{manifest, report, POLR};
use crate::common::{TestServer, KUBECTL};

fn plugin_cmd(server: &TestServer, args: &[&str]) -> Command {
    let bin_dir: PathBuf = Path::new(env!("CARGO_BIN_EXE_kubectl-prext"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let path =
        std::env::join_paths([bin_dir, PathBuf::from("/usr/bin"), PathBuf::from("/bin")]).expect("PATH");
    let mut cmd = Command::new(KUBECTL);
    cmd.arg("prext")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", &server.kubeconfig)
        .env("HOME", server.scratch())
        .env("NO_COLOR", "1");
    cmd
}

fn run(server: &TestServer, args: &[&str]) -> Output {
    plugin_cmd(server, args)
        .stdin(Stdio::null())
        .output()
        .expect("run kubectl prext")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn create_refuses_a_manifest_of_another_namespace() {
    let server = TestServer::start();
    let other = server.write_file("default.json", &manifest(&[report(POLR, "default", "r1", &[])]));
    let other = other.to_str().unwrap();
    let plugin = run(&server, &["create", "-n", "team-c", "-f", other]);
    let kubectl = server.kubectl(&["create", "-n", "team-c", "-f", other]);
    assert_eq!(plugin.status.code(), Some(1), "{}", text(&plugin.stderr));
    assert_eq!(kubectl.status.code(), Some(1));
    let expected = "error: the namespace from the provided object \"default\" does not match the namespace \"team-c\". You must pass '--namespace=default' to perform this operation.";
    assert_eq!(text(&plugin.stderr).trim(), expected);
    assert!(
        text(&kubectl.stderr).contains(expected),
        "kubectl says the same: {}",
        text(&kubectl.stderr)
    );
    let listed = server.kubectl_ok(&["get", "polr", "-A", "-o", "name"]);
    assert!(listed.trim().is_empty(), "nothing written: {listed}");

    // Without -n the manifest's namespace is used; a manifest without one gets -n's.
    let out = run(&server, &["create", "-f", other]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut bare = report(POLR, "x", "r2", &[]);
    bare["metadata"].as_object_mut().unwrap().remove("namespace");
    let bare = server.write_file("bare.json", &manifest(&[bare]));
    let out = run(&server, &["create", "-n", "team-c", "-f", bare.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    server.kubectl_ok(&["get", "polr", "r2", "-n", "team-c"]);
    server.kubectl_ok(&["get", "polr", "r1", "-n", "default"]);
}

#[tokio::test]
async fn an_invalid_fail_on_is_bad_usage() {
    let server = TestServer::start();
    for args in [
        &["results", "-A", "--fail-on", "bogus"][..],
        &["summary", "-A", "--fail-on", "bogus"][..],
    ] {
        let out = run(&server, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("--fail-on"), "{}", text(&out.stderr));
    }
}

/// The cells of the plugin's table and kubectl's, row by row: null cells are empty in both.
#[tokio::test]
async fn table_cells_match_kubectl() {
    let server = TestServer::start();
    let client = server.client().await;
    let mut no_scope = report(POLR, "cells", "bare", &[]);
    no_scope.as_object_mut().unwrap().remove("scope");
    no_scope.as_object_mut().unwrap().remove("summary");
    post(&client, &POLR.collection(Some("cells")), &no_scope)
        .await
        .expect(201);
    post(
        &client,
        &POLR.collection(Some("cells")),
        &report(POLR, "cells", "full", &[]),
    )
    .await
    .expect(201);
    let kubectl = server.kubectl_ok(&["get", "polr", "-n", "cells", "-o", "wide"]);
    let out = run(&server, &["get", "polr", "-n", "cells", "-o", "wide"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let plugin = text(&out.stdout);
    assert!(!plugin.contains("<none>"), "{plugin}");
    // Compare the text under each header column (kubectl pads with at least 3 spaces).
    let cells = |table: &str| -> Vec<Vec<String>> {
        let header = table.lines().next().unwrap_or_default();
        let starts: Vec<usize> = header
            .match_indices(|c: char| c != ' ')
            .filter(|(i, _)| *i == 0 || header.as_bytes()[i - 1] == b' ')
            .map(|(i, _)| i)
            .collect();
        table
            .lines()
            .map(|line| {
                starts
                    .iter()
                    .enumerate()
                    .filter(|(c, _)| header[starts[*c]..].split(' ').next() != Some("AGE"))
                    .map(|(c, &s)| {
                        let end = starts.get(c + 1).copied().unwrap_or(line.len()).min(line.len());
                        line.get(s.min(line.len())..end)
                            .unwrap_or_default()
                            .trim()
                            .to_string()
                    })
                    .collect()
            })
            .collect()
    };
    assert_eq!(
        cells(&plugin),
        cells(&kubectl),
        "plugin:\n{plugin}\nkubectl:\n{kubectl}"
    );
    let bare_row = cells(&plugin)
        .into_iter()
        .find(|r| r[0] == "bare")
        .expect("bare row");
    assert!(
        bare_row.iter().any(String::is_empty),
        "empty cells for the missing fields: {bare_row:?}"
    );
}

#[tokio::test]
async fn get_watch_rows_stay_aligned() {
    let server = TestServer::start();
    let client = server.client().await;
    post(
        &client,
        &POLR.collection(Some("aw")),
        &report(POLR, "aw", "a-rather-long-report-name", &[]),
    )
    .await
    .expect(201);
    let mut watch = Background::spawn(plugin_cmd(&server, &["get", "polr", "-n", "aw", "-w"]));
    let wait = Duration::from_secs(20);
    let header = watch.expect_line(wait, "the header", |l| l.starts_with("NAME"));
    watch.expect_line(wait, "the first row", |l| {
        l.starts_with("a-rather-long-report-name")
    });
    let mut short = report(POLR, "aw", "b", &[]);
    short["results"] = json!([]);
    post(&client, &POLR.collection(Some("aw")), &short)
        .await
        .expect(201);
    let row = watch.expect_line(wait, "the new row", |l| l.starts_with("b "));
    let starts = |l: &str| -> Vec<usize> {
        l.match_indices(|c: char| c != ' ')
            .filter(|(i, _)| *i > 0 && l.as_bytes()[i - 1] == b' ')
            .map(|(i, _)| i)
            .collect()
    };
    let header_starts = starts(&header);
    let row_starts = starts(&row);
    assert!(
        row_starts.iter().all(|s| header_starts.contains(s)),
        "every cell of a later row starts under a header column:\n{header}\n{row}"
    );
}
