//! End-to-end tests of the HTTPS stack: serving (`prext_server::tls`: client-certificate identity,
//! ALPN/HTTP/2, rejection of foreign certificates, graceful shutdown, a real `curl` and `kubectl`)
//! and the standalone PKI (`prext_server::pki`: files, reuse, renewal, kubeconfig).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine as _;
use prext_server::pki::{self, Pki, PkiError};
use prext_server::tls::{self, ClientIdentity, ServeOptions};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// Echoes the connection identity, the HTTP version and the peer IP (`ConnectInfo`).
async fn whoami(
    Extension(identity): Extension<Option<ClientIdentity>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    version: http::Version,
) -> String {
    let who = identity.map_or("anonymous".to_owned(), |id| {
        format!("{}|{}", id.user, id.groups.join(","))
    });
    format!("{who} {version:?} {}", remote.ip())
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(600)).await;
    "done"
}

/// A watch-like response that never ends on its own.
async fn endless() -> axum::body::Body {
    axum::body::Body::from_stream(futures::stream::unfold(0u64, |n| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Some((Ok::<_, std::io::Error>(format!("event {n}\n")), n + 1))
    }))
}

struct Server {
    addr: SocketAddr,
    pki: Pki,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(options: ServeOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = pki::ensure(dir.path(), &[]).expect("pki");
        let config =
            tls::server_config(&pki.server_cert_pem, &pki.server_key_pem, &pki.ca_cert_pem).expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .route("/whoami", get(whoami))
            .route("/slow", get(slow))
            .route("/stream", get(endless));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(tls::serve_with(listener, config, app, shutdown.clone(), options));
        Self {
            addr,
            pki,
            shutdown,
            task,
            _dir: dir,
        }
    }

    /// A TLS connection trusting the server's CA, presenting the admin certificate of `client` if
    /// given, offering `alpn`.
    async fn connect(&self, client: Option<&Pki>, alpn: &[&[u8]]) -> std::io::Result<Tls> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(&self.pki.ca_cert_pem)).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match client {
            Some(pki) => {
                let key = rustls_pemfile::private_key(&mut pki.admin_key_pem.as_bytes());
                let key = key.expect("key").expect("key present");
                let chain = vec![der(&pki.admin_cert_pem)];
                builder.with_client_auth_cert(chain, key).expect("client auth")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::try_from("localhost").expect("name");
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    }

    /// One HTTP/1.1 request on a fresh connection; returns the whole response.
    async fn get(&self, client: Option<&Pki>, path: &str) -> std::io::Result<String> {
        let mut tls = self.connect(client, &[b"http/1.1"]).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        tls.read_to_end(&mut response).await?;
        Ok(String::from_utf8_lossy(&response).into_owned())
    }

    /// Cancels the server and waits for `serve` to return; returns how long that took.
    async fn stop(self) -> Duration {
        let started = tokio::time::Instant::now();
        self.shutdown.cancel();
        let served = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        served.expect("serve returns").expect("task").expect("serve ok");
        started.elapsed()
    }
}

type Tls = TlsStream<TcpStream>;

/// rustls verifies a presented certificate during the handshake: one from another CA aborts the
/// connection (with TLS 1.3 the client learns it from the alert on its first read), so no request
/// is served and no identity is ever derived from it.
#[tokio::test]
async fn identity_comes_from_a_verified_client_certificate_only() {
    let server = Server::start(ServeOptions::default()).await;
    let response = server.get(Some(&server.pki), "/whoami").await.expect("GET");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let expected = "\r\n\r\nprext-admin|system:masters HTTP/1.1 127.0.0.1";
    assert!(response.ends_with(expected), "{response}");

    let response = server.get(None, "/whoami").await.expect("GET");
    assert!(
        response.ends_with("\r\n\r\nanonymous HTTP/1.1 127.0.0.1"),
        "{response}"
    );

    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = pki::ensure(other_dir.path(), &[]).expect("other pki");
    match server.get(Some(&other), "/whoami").await {
        Err(e) => assert!(e.to_string().contains("received fatal alert"), "{e}"),
        Ok(response) => assert!(response.is_empty(), "served a foreign certificate: {response}"),
    }
    let response = server
        .get(Some(&server.pki), "/whoami")
        .await
        .expect("still serving");
    assert!(response.contains("prext-admin"), "{response}");
    server.stop().await;
}

#[tokio::test]
async fn alpn_prefers_h2_and_falls_back_to_http1() {
    let server = Server::start(ServeOptions::default()).await;
    let alpn = |tls: Tls| tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let h2 = server
        .connect(None, &[b"h2", b"http/1.1"])
        .await
        .expect("connect");
    assert_eq!(alpn(h2).as_deref(), Some(&b"h2"[..]));
    let h1 = server.connect(None, &[b"http/1.1"]).await.expect("connect");
    assert_eq!(alpn(h1).as_deref(), Some(&b"http/1.1"[..]));
    let none = server.connect(None, &[]).await.expect("connect without ALPN");
    assert_eq!(alpn(none), None);
    server.stop().await;
}

/// Runs `program args…` off the runtime and asserts success; a missing program fails the test.
async fn run(program: &'static str, args: &[&str]) -> Option<String> {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let command = move || std::process::Command::new(program).args(&args).output();
    match tokio::task::spawn_blocking(command).await.expect("join") {
        Ok(output) => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "{program}: {stderr}");
            Some(String::from_utf8_lossy(&output.stdout).into_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} is not installed: the test suite needs it (.ci/run installs it)")
        }
        Err(e) => panic!("running {program}: {e}"),
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write");
    path.to_string_lossy().into_owned()
}

/// curl's arguments for HTTP/2 to `server` with its admin certificate (files written in `dir`),
/// and the server's base URL under the name its certificate holds.
fn curl_http2(server: &Server, dir: &Path) -> (Vec<String>, String) {
    let port = server.addr.port();
    let ca = write(dir, "ca", &server.pki.ca_cert_pem);
    let cert = write(dir, "crt", &server.pki.admin_cert_pem);
    let key = write(dir, "key", &server.pki.admin_key_pem);
    let resolve = format!("localhost:{port}:127.0.0.1");
    let args = [
        "-sS",
        "--http2",
        "--resolve",
        &resolve,
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
    ];
    let args = args.iter().map(|arg| (*arg).to_owned()).collect();
    (args, format!("https://localhost:{port}"))
}

#[tokio::test]
async fn curl_speaks_http2_with_a_client_certificate() {
    let server = Server::start(ServeOptions::default()).await;
    let files = tempfile::tempdir().expect("tempdir");
    let (mut args, base) = curl_http2(&server, files.path());
    args.push(format!("{base}/whoami"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Some(body) = run("curl", &args).await {
        assert_eq!(body, "prext-admin|system:masters HTTP/2.0 127.0.0.1");
    }
    server.stop().await;
}

/// An HTTP/2 `:path` over the `http` crate's URI limit (65,534 bytes) is refused by `h2` with a
/// reset of its stream before hyper builds a request: no response, so no `Status`
/// (`head_limit`'s module docs). curl reads the reset as `REFUSED_STREAM` and retries on fresh
/// connections until it gives up; the server stays up and serves the next request.
#[tokio::test]
async fn http2_uri_over_the_limit_is_refused_and_serving_goes_on() {
    let server = Server::start(ServeOptions::default()).await;
    let files = tempfile::tempdir().expect("tempdir");
    let (mut args, base) = curl_http2(&server, files.path());
    let long = format!("{base}/whoami?pad={}", "a".repeat(70_000));
    args.extend([
        "-w".to_owned(),
        " [%{http_code}]\n".to_owned(),
        long,
        format!("{base}/whoami"),
    ]);
    // Not `run`: curl fails (the long URI's transfer) and its output is what is checked.
    let output = tokio::task::spawn_blocking(move || std::process::Command::new("curl").args(&args).output())
        .await
        .expect("join")
        .expect("curl is installed (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(
        lines[0], " [000]",
        "the long URI got a response: {stdout}\n{stderr}"
    );
    let served = "prext-admin|system:masters HTTP/2.0 127.0.0.1 [200]";
    assert_eq!(lines[1], served, "the next request: {stdout}\n{stderr}");
    server.stop().await;
}

/// The generated kubeconfig works with kubectl and full TLS verification (kubectl speaks HTTP/2).
#[tokio::test]
async fn kubectl_uses_the_generated_kubeconfig() {
    let server = Server::start(ServeOptions::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let kubeconfig = pki::write_kubeconfig(dir.path(), &url, &server.pki).expect("kubeconfig");
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let args = ["--kubeconfig", &kubeconfig, "get", "--raw", "/whoami"];
    if let Some(body) = run("kubectl", &args).await {
        assert_eq!(body.trim_end(), "prext-admin|system:masters HTTP/2.0 127.0.0.1");
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish_and_stops_accepting() {
    let server = Server::start(ServeOptions::default()).await;
    let cancel_soon = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        server.shutdown.cancel();
    };
    let (response, ()) = tokio::join!(server.get(None, "/slow"), cancel_soon);
    let response = response.expect("the in-flight request completes");
    assert!(
        response.starts_with("HTTP/1.1 200") && response.ends_with("done"),
        "{response}"
    );
    let addr = server.addr;
    server.stop().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn streaming_responses_are_dropped_after_the_grace_period() {
    let grace = Duration::from_millis(300);
    let server = Server::start(ServeOptions {
        shutdown_grace: grace,
        ..Default::default()
    })
    .await;
    let mut tls = server.connect(None, &[b"http/1.1"]).await.expect("connect");
    tls.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0; 4096];
    let n = tls.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let elapsed = server.stop().await;
    assert!(
        elapsed >= grace && elapsed < grace + Duration::from_secs(30),
        "{elapsed:?}"
    );
    // The stream was cut: reading reaches EOF (or an error) instead of events forever.
    let drained = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(1..) = tls.read(&mut buf).await {}
    });
    drained.await.expect("connection closed after the grace period");
}

// ---- PKI (public API) ----

fn parse_pem(pem: &str) -> X509Certificate<'static> {
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .expect("PEM")
        .expect("PEM");
    let bytes: &'static [u8] = Box::leak(der.to_vec().into_boxed_slice());
    x509_parser::parse_x509_certificate(bytes).expect("X.509").1
}

fn der(pem: &str) -> CertificateDer<'static> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .expect("PEM")
        .expect("PEM")
}

fn days_left(cert: &X509Certificate<'_>) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    (cert.validity().not_after.timestamp() - now.as_secs() as i64) / 86_400
}

fn mode(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).expect("metadata").permissions()) & 0o777
}

fn san_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let ext = cert
        .subject_alternative_name()
        .expect("SAN")
        .expect("SAN present");
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("DNS:{dns}"),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => format!(
                    "IP:{}",
                    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).expect("v4"))
                ),
                _ => format!(
                    "IP:{}",
                    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).expect("v6"))
                ),
            },
            other => format!("{other:?}"),
        })
        .collect()
}

fn owned(sans: &[&str]) -> Vec<String> {
    sans.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn first_start_creates_ca_serving_and_admin_certificates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let pki = pki::ensure(&dir, &owned(&["prext.prext-system.svc", "10.0.0.7"])).expect("ensure");

    let pki_dir = dir.join("pki");
    assert_eq!(mode(&pki_dir), 0o700);
    for key in ["ca.key", "serving.key", "admin.key"] {
        assert_eq!(mode(&pki_dir.join(key)), 0o600, "{key}");
    }
    for (file, pem) in [
        ("ca.crt", &pki.ca_cert_pem),
        ("serving.crt", &pki.server_cert_pem),
        ("admin.key", &pki.admin_key_pem),
    ] {
        assert_eq!(
            &std::fs::read_to_string(pki_dir.join(file)).expect("read"),
            pem,
            "{file}"
        );
    }

    let ca = parse_pem(&pki.ca_cert_pem);
    assert_eq!(ca.subject().to_string(), "CN=prext-ca");
    assert!(ca.is_ca());
    assert!((3640..=3650).contains(&days_left(&ca)));

    let serving = parse_pem(&pki.server_cert_pem);
    assert!((360..=365).contains(&days_left(&serving)));
    assert_eq!(
        san_names(&serving),
        [
            "DNS:localhost",
            "IP:127.0.0.1",
            "IP:::1",
            "DNS:prext.prext-system.svc",
            "IP:10.0.0.7"
        ]
    );
    let eku = serving
        .extended_key_usage()
        .expect("EKU")
        .expect("EKU present")
        .value;
    assert!(eku.server_auth && !eku.client_auth);
    tls::verify_server_chain(&[der(&pki.ca_cert_pem)], &der(&pki.server_cert_pem), &[]).expect("chain");

    let admin = parse_pem(&pki.admin_cert_pem);
    assert_eq!(admin.subject().to_string(), "O=system:masters, CN=prext-admin");
    let eku = admin
        .extended_key_usage()
        .expect("EKU")
        .expect("EKU present")
        .value;
    assert!(eku.client_auth && !eku.server_auth);
    tls::verify_client_chain(&[der(&pki.ca_cert_pem)], &der(&pki.admin_cert_pem), &[]).expect("chain");
    assert!(
        !format!("{pki:?}").contains("PRIVATE KEY"),
        "Debug must not print keys"
    );
}

#[test]
fn later_starts_reuse_files_and_a_new_san_reissues_only_the_serving_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = pki::ensure(tmp.path(), &owned(&["a.example"])).expect("first");
    let again = pki::ensure(tmp.path(), &owned(&["A.example"])).expect("again");
    assert_eq!(
        (
            &first.ca_cert_pem,
            &first.server_cert_pem,
            &first.server_key_pem,
            &first.admin_cert_pem,
            &first.admin_key_pem
        ),
        (
            &again.ca_cert_pem,
            &again.server_cert_pem,
            &again.server_key_pem,
            &again.admin_cert_pem,
            &again.admin_key_pem
        ),
    );

    // Issued by the CA reloaded from disk: same CA, same admin, a new serving key with the new
    // SANs.
    let wider = pki::ensure(tmp.path(), &owned(&["a.example", "fd00::1"])).expect("wider");
    assert_eq!(wider.ca_cert_pem, first.ca_cert_pem);
    assert_eq!(
        (&wider.admin_cert_pem, &wider.admin_key_pem),
        (&first.admin_cert_pem, &first.admin_key_pem)
    );
    assert_ne!(wider.server_key_pem, first.server_key_pem);
    let serving = parse_pem(&wider.server_cert_pem);
    assert!(san_names(&serving).contains(&"IP:fd00::1".to_owned()));
    tls::verify_server_chain(&[der(&wider.ca_cert_pem)], &der(&wider.server_cert_pem), &[]).expect("chain");
}

#[test]
fn the_ca_key_is_needed_only_to_sign_and_the_ca_is_never_replaced() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = pki::ensure(tmp.path(), &[]).expect("first");
    std::fs::remove_file(tmp.path().join("pki/ca.key")).expect("rm");
    let again = pki::ensure(tmp.path(), &[]).expect("reuse without the CA key");
    assert_eq!(again.server_cert_pem, first.server_cert_pem);
    let err = pki::ensure(tmp.path(), &owned(&["new.example"])).expect_err("needs the CA key");
    assert!(matches!(err, PkiError::Ca { .. }), "{err}");
    let ca_file = std::fs::read_to_string(tmp.path().join("pki/ca.crt")).expect("read");
    assert_eq!(ca_file, first.ca_cert_pem);
    let err = pki::ensure(tmp.path(), &owned(&["bad name"])).expect_err("invalid SAN");
    assert!(
        matches!(err, PkiError::InvalidSan(ref san) if san == "bad name"),
        "{err}"
    );
}

#[test]
fn kubeconfig_has_the_expected_structure() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = pki::ensure(tmp.path(), &[]).expect("pki");
    let path = pki::write_kubeconfig(tmp.path(), "https://127.0.0.1:6443", &pki).expect("kubeconfig");
    assert_eq!(path, tmp.path().join("kubeconfig"));
    assert_eq!(mode(&path), 0o600);
    let config: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(&path).expect("read")).expect("YAML");
    let decode = |v: &serde_json::Value| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("string"))
            .expect("base64");
        String::from_utf8(bytes).expect("UTF-8")
    };
    assert_eq!(config["apiVersion"], "v1");
    assert_eq!(config["kind"], "Config");
    assert_eq!(config["current-context"], "prext");
    let cluster = &config["clusters"][0];
    assert_eq!(cluster["name"], "prext");
    assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:6443");
    assert_eq!(
        decode(&cluster["cluster"]["certificate-authority-data"]),
        pki.ca_cert_pem
    );
    let user = &config["users"][0];
    assert_eq!(user["name"], "prext-admin");
    assert_eq!(
        decode(&user["user"]["client-certificate-data"]),
        pki.admin_cert_pem
    );
    assert_eq!(decode(&user["user"]["client-key-data"]), pki.admin_key_pem);
    assert_eq!(
        config["contexts"][0],
        serde_json::json!({"name": "prext", "context": {"cluster": "prext", "user": "prext-admin"}})
    );
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "only pki/ and kubeconfig, no temporary files: {names:?}"
    );
}
