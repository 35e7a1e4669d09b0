//! The integration-test harness: runs the real `prext` binary on a temporary data dir and
//! talks to it the way users do, through `/usr/bin/kubectl` and kube-rs.
//!
//! Every test starts its own [`TestServer`] (`--listen 127.0.0.1:0`), so tests are
//! independent and can run in parallel. The server's stderr is drained into a buffer by a
//! thread for the whole life of the process (a full pipe would block the server), and every
//! panic message of the harness includes it.
//!
//! Submodules: [`samples`] loads and adapts the repository's report files, [`http`]
//! sends raw requests for the protocol checks that kubectl and typed clients hide, and
//! [`background`] runs long-lived commands (`kubectl get -w`, `kubectl wait`) whose output
//! is read line by line with timeouts.

#![allow(dead_code)] // each test target uses a different subset of the harness

pub mod background;
pub mod http;
pub mod samples;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the server gets to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server gets to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The kubectl the end-to-end tests drive.
pub const KUBECTL: &str = "/usr/bin/kubectl";

/// A running `prext serve` on its own temporary data dir.
pub struct TestServer {
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    /// The bound URL from the ready line, e.g. `https://127.0.0.1:40123`.
    pub url: String,
    /// The admin kubeconfig the server wrote.
    pub kubeconfig: PathBuf,
}

impl TestServer {
    /// Starts a server with default flags on a fresh data dir.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `prext serve` flags (kept for [`TestServer::restart`]).
    pub fn start_with(extra_args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("prext-it-")
            .tempdir()
            .expect("create temp dir");
        let mut server = TestServer {
            dir,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child: None,
            log: Arc::new(Mutex::new(String::new())),
            url: String::new(),
            kubeconfig: PathBuf::new(),
        };
        server.spawn();
        server
    }

    /// The server's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A scratch directory for manifests, editor scripts and kubectl's cache.
    pub fn scratch(&self) -> PathBuf {
        let p = self.dir.path().join("scratch");
        std::fs::create_dir_all(&p).expect("create scratch dir");
        p
    }

    /// Everything the server (all its incarnations) wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The OS process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    fn spawn(&mut self) {
        let data_dir = self.data_dir();
        let mut child = Command::new(env!("CARGO_BIN_EXE_prext"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(&self.extra_args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn prext");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = self.log.clone();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let clean = strip_ansi(&line);
                if let Ok(mut l) = log.lock() {
                    l.push_str(&clean);
                    l.push('\n');
                }
                if clean.contains("prext is ready") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(clean);
                    }
                }
            }
        });
        self.child = Some(child);
        let line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let status = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                self.kill9();
                panic!(
                    "prext did not log `prext is ready` ({e}); exit status {status:?}; stderr:\n{}",
                    self.logs()
                );
            }
        };
        let url = field(&line, "url");
        let kubeconfig = field(&line, "kubeconfig");
        match (url, kubeconfig) {
            (Some(url), Some(kubeconfig)) => {
                self.url = url;
                self.kubeconfig = PathBuf::from(kubeconfig);
            }
            _ => panic!(
                "ready line lacks url= or kubeconfig=: {line:?}\nstderr:\n{}",
                self.logs()
            ),
        }
        assert!(
            self.url.starts_with("https://127.0.0.1:"),
            "unexpected url {:?}",
            self.url
        );
        assert!(
            self.kubeconfig.is_file(),
            "kubeconfig {:?} missing",
            self.kubeconfig
        );
    }

    /// Sends SIGTERM and waits for the exit; returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server is running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for prext") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "prext did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (which must exit 0), then start again on the same data dir and flags.
    pub fn restart(&mut self) {
        let status = self.terminate();
        assert!(
            status.success(),
            "prext exited with {status} after SIGTERM; stderr:\n{}",
            self.logs()
        );
        self.spawn();
    }

    /// SIGKILL, no drain. The server can be started again with [`TestServer::start_again`].
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again (after [`TestServer::kill9`] or [`TestServer::terminate`]).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "server is still running");
        self.spawn();
    }

    /// A `kubectl` command with this server's kubeconfig and a private cache dir.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("KUBECACHEDIR", self.dir.path().join("kube-cache"))
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG");
        cmd
    }

    /// Starts kubectl in the background (for `-w`, `wait`); it is killed when dropped.
    pub fn kubectl_background(&self, args: &[&str]) -> background::Background {
        background::Background::spawn(self.kubectl_cmd(args))
    }

    /// Runs kubectl to completion.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl with `input` on its stdin (for `-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_owned();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().expect("wait for kubectl");
        let _ = writer.join();
        out
    }

    /// Runs kubectl, asserts it succeeded, returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        self.expect_ok(args, &out)
    }

    /// Like [`TestServer::kubectl_ok`] with stdin.
    pub fn kubectl_stdin_ok(&self, args: &[&str], input: &str) -> String {
        let out = self.kubectl_stdin(args, input);
        self.expect_ok(args, &out)
    }

    /// Runs kubectl, asserts it failed, returns stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded; stdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn expect_ok(&self, args: &[&str], out: &Output) -> String {
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}\nserver log tail:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.logs(), 30)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A kube-rs client authenticated with the admin client certificate.
    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.kube_config().await).expect("build kube client")
    }

    /// A kube-rs client that trusts the server's CA but presents no client certificate.
    pub async fn anonymous_client(&self) -> kube::Client {
        let mut config = self.kube_config().await;
        config.auth_info = Default::default();
        kube::Client::try_from(config).expect("build anonymous kube client")
    }

    /// The kube-rs configuration read from the server's kubeconfig.
    pub async fn kube_config(&self) -> kube::Config {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await
                .expect("kube config from kubeconfig");
        config.read_timeout = Some(Duration::from_secs(60));
        // The protocol tests assert exact status codes: no transparent retries of 429/503/504.
        config.default_retry = false;
        config
    }

    /// Writes `content` into the scratch dir and returns its path.
    pub fn write_file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.scratch().join(name);
        std::fs::write(&path, content).expect("write scratch file");
        path
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The value of `key=value` in a tracing text line (values end at whitespace; quotes removed).
fn field(line: &str, key: &str) -> Option<String> {
    let needle = format!("{key}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(needle.as_str()))
        .map(|v| v.trim_matches('"').to_string())
}

/// Removes ANSI colour escapes (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Splits kubectl table output into rows of whitespace-separated cells (header included).
pub fn table_rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The column names of kubectl table output.
pub fn table_header(out: &str) -> Vec<String> {
    table_rows(out).into_iter().next().unwrap_or_default()
}

/// The first cell of every data row (the NAME, or NAMESPACE with `-A`).
pub fn first_column(out: &str) -> Vec<String> {
    table_rows(out)
        .into_iter()
        .skip(1)
        .filter_map(|r| r.into_iter().next())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ready_line() {
        let line = "2025-01-01T00:00:00Z  INFO prext_server::server: prext is ready url=https://127.0.0.1:4321 kubeconfig=/tmp/x/kubeconfig";
        assert_eq!(field(line, "url").as_deref(), Some("https://127.0.0.1:4321"));
        assert_eq!(field(line, "kubeconfig").as_deref(), Some("/tmp/x/kubeconfig"));
        assert_eq!(field(line, "missing"), None);
    }

    #[test]
    fn strips_ansi() {
        assert_eq!(strip_ansi("\u{1b}[3murl\u{1b}[0m\u{1b}[2m=\u{1b}[0mx"), "url=x");
    }
}
