//! A long-running child process (`kubectl get -w`, `kubectl wait`) whose stdout and stderr
//! are read line by line on threads, so a test can wait for a given line with a timeout.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running child; killed on drop.
pub struct Background {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stdout line received so far (for failure messages).
    seen_out: Vec<String>,
    /// Every stderr line received so far.
    seen_err: Vec<String>,
}

fn pump(reader: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Background {
    /// Spawns `cmd` with piped stdout/stderr and no stdin.
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn background command");
        let stdout = pump(child.stdout.take().expect("piped stdout"));
        let stderr = pump(child.stderr.take().expect("piped stderr"));
        Background {
            child,
            stdout,
            stderr,
            seen_out: Vec::new(),
            seen_err: Vec::new(),
        }
    }

    /// The OS process id of the child.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    fn drain_stderr(&mut self) {
        while let Ok(line) = self.stderr.try_recv() {
            self.seen_err.push(line);
        }
    }

    fn describe(&mut self) -> String {
        self.drain_stderr();
        format!(
            "stdout so far:\n{}\nstderr so far:\n{}",
            self.seen_out.join("\n"),
            self.seen_err.join("\n")
        )
    }

    /// Waits for the next stdout line matching `pred` (skipping others); panics on timeout.
    pub fn expect_line(&mut self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.seen_out.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("timed out waiting for {what}; {}", self.describe()),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("stdout closed before {what}; {}", self.describe())
                }
            }
        }
    }

    /// Waits for the next stdout line (any); panics on timeout.
    pub fn next_line(&mut self, timeout: Duration) -> String {
        self.expect_line(timeout, "a line", |_| true)
    }

    /// Reads the next JSON value from stdout, on one line or several (kubectl prints watch
    /// events compactly, plain objects indented); panics on timeout.
    pub fn next_json(&mut self, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let mut buf = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.stdout.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => panic!(
                    "no complete JSON value within {timeout:?}; partial: {buf}\n{}",
                    self.describe()
                ),
            };
            self.seen_out.push(line.clone());
            buf.push_str(&line);
            buf.push('\n');
            if let Ok(value) = serde_json::from_str(&buf) {
                return value;
            }
        }
    }

    /// Waits for a stderr line matching `pred` (e.g. a `-v=6` request log); panics on timeout.
    pub fn expect_stderr(&mut self, timeout: Duration, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    self.seen_err.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no stderr line for {what}; {}", self.describe()),
            }
        }
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let msg = self.describe();
                panic!("process still running after {timeout:?}; {msg}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The rest of stdout after exit, joined.
    pub fn remaining_stdout(&mut self) -> String {
        let mut out = Vec::new();
        while let Ok(line) = self.stdout.recv_timeout(Duration::from_secs(5)) {
            self.seen_out.push(line.clone());
            out.push(line);
        }
        out.join("\n")
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
