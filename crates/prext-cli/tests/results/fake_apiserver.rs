//! A fake kube-apiserver for delegated authentication and authorization: it answers
//! TokenReviews (`alice-token` → alice, `admin-token` → admin) and SubjectAccessReviews
//! (alice may get and list `policyresults` and `resultsummaries` in `team-a`; admin may do
//! anything; discovery is open), records every review, and answers anything else 404.
//! Plain HTTP on a loopback port, one task per connection, HTTP/1.1 keep-alive.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The running fake.
pub struct FakeApiServer {
    pub url: String,
    reviews: Arc<Mutex<Vec<Value>>>,
}

impl FakeApiServer {
    /// Listens on a free loopback port.
    pub async fn start() -> FakeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&reviews);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&seen)));
            }
        });
        FakeApiServer { url, reviews }
    }

    /// Every SubjectAccessReview received so far.
    pub fn reviews(&self) -> Vec<Value> {
        self.reviews.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

async fn serve(stream: tokio::net::TcpStream, reviews: Arc<Mutex<Vec<Value>>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (code, answer) = answer(&path, request, &reviews);
        let text = answer.to_string();
        let head = format!(
            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            text.len()
        );
        let stream = reader.get_mut();
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(text.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

fn answer(path: &str, mut request: Value, reviews: &Mutex<Vec<Value>>) -> (u16, Value) {
    if path.starts_with("/apis/authentication.k8s.io/v1/tokenreviews") {
        let user = match request["spec"]["token"].as_str() {
            Some("alice-token") => Some("alice"),
            Some("admin-token") => Some("admin"),
            _ => None,
        };
        request["status"] = match user {
            Some(u) => {
                json!({"authenticated": true, "user": {"username": u, "groups": ["system:authenticated"]}})
            }
            None => json!({"authenticated": false}),
        };
        return (201, request);
    }
    if path.starts_with("/apis/authorization.k8s.io/v1/subjectaccessreviews") {
        if let Ok(mut r) = reviews.lock() {
            r.push(request.clone());
        }
        let spec = &request["spec"];
        let attrs = &spec["resourceAttributes"];
        let allowed = match spec["user"].as_str() {
            Some("admin") => true,
            Some("alice") if attrs.is_null() => true,
            Some("alice") => {
                attrs["group"] == "results.prext.io"
                    && matches!(
                        attrs["resource"].as_str(),
                        Some("policyresults" | "resultsummaries")
                    )
                    && attrs["namespace"] == "team-a"
                    && matches!(attrs["verb"].as_str(), Some("get" | "list"))
            }
            _ => false,
        };
        request["status"] = json!({"allowed": allowed});
        return (201, request);
    }
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
    )
}

/// `prext serve` in delegated mode against the fake, on a preloaded data dir.
pub struct DelegatedPrext {
    child: Child,
    url: String,
    ca: std::path::PathBuf,
}

impl DelegatedPrext {
    /// Starts the server; panics (with its log) unless it becomes ready.
    pub async fn start(fake: &FakeApiServer, dir: &tempfile::TempDir) -> DelegatedPrext {
        let kubeconfig = dir.path().join("fake-apiserver.kubeconfig");
        write_kubeconfig(&kubeconfig, &fake.url, None, None);
        let data = dir.path().join("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_prext"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .arg("--authentication-kubeconfig")
            .arg(&kubeconfig)
            .arg("--authentication-skip-lookup")
            .arg("--authorization-kubeconfig")
            .arg(&kubeconfig)
            .arg("--authorization-always-allow-groups=")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn prext");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            let mut tx = Some(tx);
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("prext is ready") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line);
                    }
                }
            }
        });
        let line = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await
            .expect("wait task")
            .expect("prext did not become ready in delegated mode");
        let url = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("url="))
            .expect("url in the ready line")
            .trim_matches('"')
            .to_owned();
        DelegatedPrext {
            child,
            url,
            ca: data.join("pki").join("ca.crt"),
        }
    }

    /// A client presenting a bearer token.
    pub async fn client(&self, token: &str) -> kube::Client {
        let dir = self.ca.parent().expect("pki dir");
        let path = dir.join(format!("{token}.kubeconfig"));
        write_kubeconfig(&path, &self.url, Some(&self.ca), Some(token));
        let kc = kube::config::Kubeconfig::read_from(&path).expect("kubeconfig");
        let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        config.default_retry = false;
        kube::Client::try_from(config).expect("client")
    }
}

impl Drop for DelegatedPrext {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_kubeconfig(path: &Path, server: &str, ca: Option<&Path>, token: Option<&str>) {
    let mut cluster = json!({"server": server});
    if let Some(ca) = ca {
        cluster["certificate-authority"] = json!(ca.display().to_string());
    }
    let user = match token {
        Some(t) => json!({"token": t}),
        None => json!({"token": "prext-service-account"}),
    };
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    });
    std::fs::write(path, serde_json::to_string(&doc).expect("json")).expect("write kubeconfig");
}
