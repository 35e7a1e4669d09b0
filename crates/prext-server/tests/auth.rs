//! End-to-end tests of delegated authentication and authorization: prext (`prext_server::run`)
//! against a kube-apiserver test double (`support::kube_double`), over real TLS.
//!
//! Covered: anonymous and foreign-CA callers, the front proxy (certificate + `X-Remote-*`
//! headers, and the same headers without the certificate), client certificates, bearer tokens
//! (TokenReview), SubjectAccessReview (attributes sent, 403 text, caching, failures), the
//! always-allowed group, serving-certificate rotation, CA rotation through the ConfigMap,
//! standalone mode, and namespace lifecycle admission.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prext_server::auth::NamespaceLifecycle;
use prext_server::Config;
use serde_json::{json, Value};
use support::certs::{Ca, Identity};
use support::client::{Client, Response};
use support::kube_double::KubeDouble;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const CONFIGMAP: &str = "extension-apiserver-authentication";
const REPORTS: &str = "/apis/wgpolicyk8s.io/v1alpha2/namespaces/ns/policyreports";
const PROXY_CN: &str = "front-proxy-client";

/// A running prext.
struct Prext {
    client: Client,
    data_dir: PathBuf,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Prext {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Starts prext with `configure` applied to a fresh config; `roots` is the serving CA when
/// not the generated one. Returns once `/healthz` answers.
async fn start_prext(roots: Option<String>, configure: impl FnOnce(&mut Config)) -> Prext {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut config = Config::new(data_dir.clone(), addr);
    config.auth.reload_interval = Duration::from_millis(100);
    configure(&mut config);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(prext_server::run(config, shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(!task.is_finished(), "prext exited during startup");
        assert!(Instant::now() < deadline, "prext did not become ready");
        let roots = roots
            .clone()
            .or_else(|| std::fs::read_to_string(data_dir.join("pki/ca.crt")).ok());
        if let Some(roots_pem) = roots {
            let client = Client {
                addr,
                roots_pem,
                identity: None,
            };
            if client.get("/healthz", &[]).await.is_ok_and(|r| r.status == 200) {
                return Prext {
                    client,
                    data_dir,
                    shutdown,
                    task,
                    _dir: dir,
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What kube-apiserver writes into the ConfigMap.
fn extension_data(client_ca: &Ca, proxy_ca: &Ca) -> BTreeMap<String, String> {
    [
        ("client-ca-file", client_ca.pem.as_str()),
        ("requestheader-client-ca-file", proxy_ca.pem.as_str()),
        ("requestheader-allowed-names", "[\"front-proxy-client\"]"),
        ("requestheader-username-headers", "[\"X-Remote-User\"]"),
        ("requestheader-uid-headers", "[\"X-Remote-Uid\"]"),
        ("requestheader-group-headers", "[\"X-Remote-Group\"]"),
        ("requestheader-extra-headers-prefix", "[\"X-Remote-Extra-\"]"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// prext in delegated mode against a double.
struct Cluster {
    double: KubeDouble,
    client_ca: Ca,
    proxy_ca: Ca,
    /// The front proxy's client certificate.
    proxy: Identity,
    prext: Prext,
    _dir: tempfile::TempDir,
}

/// Users the default policy allows.
const ALLOWED: [&str; 3] = ["alice", "carol", "dave"];

async fn cluster() -> Cluster {
    let double = KubeDouble::start().await;
    let (client_ca, proxy_ca) = (Ca::new("client-ca"), Ca::new("front-proxy-ca"));
    double.put_configmap(CONFIGMAP, &extension_data(&client_ca, &proxy_ca));
    double.put_namespace("ns", "Active");
    double.set_policy(|spec| match spec["user"].as_str() {
        Some(user) if ALLOWED.contains(&user) => Ok((true, String::new())),
        Some("erin") => Err(()),
        _ => Ok((false, "no RBAC policy matched".to_owned())),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = double.kubeconfig(dir.path());
    let prext = start_prext(None, |c| {
        c.auth.authentication_kubeconfig = Some(kubeconfig.clone());
        c.auth.authorization_kubeconfig = Some(kubeconfig);
    })
    .await;
    let proxy = proxy_ca.client(PROXY_CN, &[]);
    Cluster {
        double,
        client_ca,
        proxy_ca,
        proxy,
        prext,
        _dir: dir,
    }
}

impl Cluster {
    fn as_(&self, identity: Option<&Identity>) -> Client {
        self.prext.client.with_identity(identity)
    }

    fn reviews(&self) -> usize {
        self.double.counters().access_reviews.load(Ordering::SeqCst)
    }

    fn token_reviews(&self) -> usize {
        self.double.counters().token_reviews.load(Ordering::SeqCst)
    }

    fn last_review(&self) -> Value {
        self.double
            .reviews()
            .pop()
            .expect("a SubjectAccessReview was sent")
    }
}

fn assert_status(response: &Response, code: u16, reason: &str) -> Value {
    let body = response.json();
    assert_eq!(response.status, code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    body
}

#[tokio::test]
async fn anonymous_and_foreign_callers_are_rejected() {
    let c = cluster().await;
    let anonymous = c.as_(None);
    assert_status(
        &anonymous.get(REPORTS, &[]).await.expect("GET"),
        401,
        "Unauthorized",
    );
    assert_status(
        &anonymous.get("/apis", &[]).await.expect("GET"),
        401,
        "Unauthorized",
    );
    assert_eq!(anonymous.get("/readyz", &[]).await.expect("GET").status, 200);

    // The front-proxy headers from a caller without the front-proxy certificate are ignored.
    let spoofed = [("X-Remote-User", "alice"), ("X-Remote-Group", "system:masters")];
    assert_status(
        &anonymous.get(REPORTS, &spoofed).await.expect("GET"),
        401,
        "Unauthorized",
    );

    // A certificate from a CA prext does not trust never gets a request served.
    let foreign = Ca::new("foreign").client("alice", &["system:masters"]);
    match c.as_(Some(&foreign)).get(REPORTS, &spoofed).await {
        Err(e) => assert!(e.to_string().contains("alert"), "{e}"),
        Ok(r) => panic!("a foreign certificate was served: {}", r.status),
    }
    // The front-proxy CA with a common name outside the allowed names authenticates nobody.
    let intruder = c.proxy_ca.client("intruder", &[]);
    let response = c.as_(Some(&intruder)).get(REPORTS, &spoofed).await.expect("GET");
    assert_status(&response, 401, "Unauthorized");
    assert_eq!(c.reviews(), 0, "nothing was authorized");
    assert!(
        !c.prext.data_dir.join("kubeconfig").exists(),
        "no admin kubeconfig whose certificate the cluster does not trust"
    );
}

#[tokio::test]
async fn front_proxy_identity_is_what_the_review_carries() {
    let c = cluster().await;
    let headers = [
        ("X-Remote-User", "alice"),
        ("X-Remote-Uid", "alice-uid"),
        ("X-Remote-Group", "g1"),
        ("X-Remote-Group", "g2"),
        ("X-Remote-Extra-Scopes", "a"),
        ("X-Remote-Extra-Scopes", "b"),
        ("X-Remote-Extra-Example.org%2fteam", "t"),
    ];
    let response = c
        .as_(Some(&c.proxy))
        .get(&format!("{REPORTS}/r1"), &headers)
        .await
        .expect("GET");
    // Authorized, then answered by the handler: the report does not exist.
    assert_status(&response, 404, "NotFound");
    assert_eq!(
        c.last_review(),
        json!({
            "user": "alice",
            "uid": "alice-uid",
            "groups": ["g1", "g2", "system:authenticated"],
            "extra": {"example.org/team": ["t"], "scopes": ["a", "b"]},
            "resourceAttributes": {
                "namespace": "ns",
                "verb": "get",
                "group": "wgpolicyk8s.io",
                "version": "v1alpha2",
                "resource": "policyreports",
                "name": "r1"
            }
        })
    );

    // Discovery is a non-resource request; a field selector pins the name of a watch.
    let alice = [("X-Remote-User", "alice")];
    let response = c.as_(Some(&c.proxy)).get("/apis", &alice).await.expect("GET");
    assert_eq!(response.status, 200);
    assert_eq!(
        c.last_review()["nonResourceAttributes"],
        json!({"path": "/apis", "verb": "get"})
    );
    let pinned = format!("{REPORTS}?watch=1&fieldSelector=metadata.name%3Dr2&timeoutSeconds=1");
    let response = c.as_(Some(&c.proxy)).get(&pinned, &alice).await.expect("watch");
    assert_eq!(response.status, 200);
    let attributes = &c.last_review()["resourceAttributes"];
    assert_eq!(
        (&attributes["verb"], &attributes["name"]),
        (&json!("watch"), &json!("r2"))
    );

    // The always-allowed group skips the review (kube-aggregator's availability probe).
    let before = c.reviews();
    let aggregator = [
        ("X-Remote-User", "system:kube-aggregator"),
        ("X-Remote-Group", "system:masters"),
    ];
    let response = c
        .as_(Some(&c.proxy))
        .get("/apis/wgpolicyk8s.io/v1alpha2", &aggregator)
        .await
        .expect("GET");
    assert_eq!(response.status, 200);
    assert_eq!(c.reviews(), before);
}

#[tokio::test]
async fn denials_are_403_with_upstream_text_and_decisions_are_cached() {
    let c = cluster().await;
    let proxy = c.as_(Some(&c.proxy));
    let bob = [("X-Remote-User", "bob")];
    let path = format!("{REPORTS}/x");
    let denied = assert_status(&proxy.get(&path, &bob).await.expect("GET"), 403, "Forbidden");
    assert_eq!(
        denied["message"],
        "policyreports.wgpolicyk8s.io \"x\" is forbidden: User \"bob\" cannot get resource \
         \"policyreports\" in API group \"wgpolicyk8s.io\" in the namespace \"ns\": no RBAC \
         policy matched"
    );
    assert_eq!(
        denied["details"],
        json!({"name": "x", "group": "wgpolicyk8s.io", "kind": "policyreports"})
    );
    let reviews = c.reviews();
    assert_status(&proxy.get(&path, &bob).await.expect("GET"), 403, "Forbidden");
    assert_eq!(c.reviews(), reviews, "the denial came from the cache");

    let alice = [("X-Remote-User", "alice")];
    assert_eq!(proxy.get(REPORTS, &alice).await.expect("GET").status, 200);
    let reviews = c.reviews();
    for _ in 0..3 {
        assert_eq!(proxy.get(REPORTS, &alice).await.expect("GET").status, 200);
    }
    assert_eq!(c.reviews(), reviews, "the allowance came from the cache");
    // A different request is a different decision.
    assert_eq!(proxy.get("/apis", &alice).await.expect("GET").status, 200);
    assert_eq!(c.reviews(), reviews + 1);

    // A review that fails is an error, never an allow.
    let erin = [("X-Remote-User", "erin")];
    let failed = assert_status(
        &proxy.get(REPORTS, &erin).await.expect("GET"),
        500,
        "InternalError",
    );
    assert!(
        failed["message"]
            .as_str()
            .is_some_and(|m| m.contains("subject access review")),
        "{failed}"
    );
}

#[tokio::test]
async fn client_certificates_and_bearer_tokens_authenticate() {
    let c = cluster().await;
    // Client CA: CN is the user, O the groups; front-proxy headers next to it are ignored.
    let carol = c.client_ca.client("carol", &["team-a"]);
    let spoofed = [("X-Remote-User", "mallory")];
    let response = c.as_(Some(&carol)).get(REPORTS, &spoofed).await.expect("GET");
    assert_eq!(response.status, 200);
    let review = c.last_review();
    assert_eq!(review["user"], "carol");
    assert_eq!(review["groups"], json!(["team-a", "system:authenticated"]));

    // Bearer tokens go to TokenReview; the answer is cached.
    c.double.add_token("t-dave", "dave", &["devs"]);
    let bearer = [("Authorization", "Bearer t-dave")];
    assert_eq!(c.as_(None).get(REPORTS, &bearer).await.expect("GET").status, 200);
    let review = c.last_review();
    assert_eq!(review["user"], "dave");
    assert_eq!(review["uid"], "uid-dave");
    assert_eq!(review["groups"], json!(["devs", "system:authenticated"]));
    let token_reviews = c.token_reviews();
    assert_eq!(token_reviews, 1);
    assert_eq!(c.as_(None).get(REPORTS, &bearer).await.expect("GET").status, 200);
    assert_eq!(
        c.token_reviews(),
        token_reviews,
        "the token review came from the cache"
    );

    let unknown = [("Authorization", "Bearer nope")];
    assert_status(
        &c.as_(None).get(REPORTS, &unknown).await.expect("GET"),
        401,
        "Unauthorized",
    );
    assert_eq!(c.token_reviews(), token_reviews + 1);
}

/// Polls `check` every 100 ms for up to 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn ca_rotation_in_the_configmap_is_followed() {
    let c = cluster().await;
    let old = c.client_ca.client("carol", &[]);
    assert_eq!(
        c.as_(Some(&old)).get(REPORTS, &[]).await.expect("GET").status,
        200
    );

    let rotated = Ca::new("client-ca-2");
    let new = rotated.client("carol", &[]);
    c.double
        .put_configmap(CONFIGMAP, &extension_data(&rotated, &c.proxy_ca));
    eventually("the new client CA is trusted", || async {
        c.as_(Some(&new))
            .get(REPORTS, &[])
            .await
            .is_ok_and(|r| r.status == 200)
    })
    .await;
    assert!(
        c.as_(Some(&old)).get(REPORTS, &[]).await.is_err(),
        "the old client CA is no longer trusted"
    );
    // The front proxy kept working throughout.
    let alice = [("X-Remote-User", "alice")];
    assert_eq!(
        c.as_(Some(&c.proxy))
            .get(REPORTS, &alice)
            .await
            .expect("GET")
            .status,
        200
    );
}

#[tokio::test]
async fn rotated_serving_certificate_files_are_picked_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let serving_ca = Ca::new("serving-ca");
    let first = serving_ca.server("first");
    std::fs::write(&cert_path, &first.cert_pem).expect("write cert");
    std::fs::write(&key_path, &first.key_pem).expect("write key");
    let prext = start_prext(Some(serving_ca.pem.clone()), |c| {
        c.auth.tls_cert_file = Some(cert_path.clone());
        c.auth.tls_private_key_file = Some(key_path.clone());
    })
    .await;
    let der = |pem: &str| {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .expect("one")
            .expect("pem")
    };
    let served = prext.client.get("/healthz", &[]).await.expect("GET").server_cert;
    assert_eq!(served, der(&first.cert_pem));

    let second = serving_ca.server("second");
    std::fs::write(&cert_path, &second.cert_pem).expect("write cert");
    std::fs::write(&key_path, &second.key_pem).expect("write key");
    eventually("new handshakes present the new certificate", || async {
        prext
            .client
            .get("/healthz", &[])
            .await
            .is_ok_and(|r| r.server_cert == der(&second.cert_pem))
    })
    .await;

    // Standalone authentication is unchanged: the generated admin certificate is allowed.
    let admin = Identity {
        cert_pem: std::fs::read_to_string(prext.data_dir.join("pki/admin.crt")).expect("admin cert"),
        key_pem: std::fs::read_to_string(prext.data_dir.join("pki/admin.key")).expect("admin key"),
    };
    let response = prext
        .client
        .with_identity(Some(&admin))
        .get(REPORTS, &[])
        .await
        .expect("GET");
    assert_eq!(response.status, 200);
    assert_status(
        &prext.client.get(REPORTS, &[]).await.expect("GET"),
        401,
        "Unauthorized",
    );
    prext.shutdown.cancel();
}

#[tokio::test]
async fn standalone_mode_trusts_the_generated_ca_only() {
    let mut prext = start_prext(None, |_| {}).await;
    assert!(
        prext.data_dir.join("kubeconfig").exists(),
        "the admin kubeconfig is written"
    );
    let admin = Identity {
        cert_pem: std::fs::read_to_string(prext.data_dir.join("pki/admin.crt")).expect("admin cert"),
        key_pem: std::fs::read_to_string(prext.data_dir.join("pki/admin.key")).expect("admin key"),
    };
    let as_admin = prext.client.with_identity(Some(&admin));
    assert_eq!(as_admin.get(REPORTS, &[]).await.expect("GET").status, 200);
    // Without a front proxy, X-Remote-* headers change nothing.
    let spoofed = [("X-Remote-User", "someone-else")];
    assert_eq!(as_admin.get(REPORTS, &spoofed).await.expect("GET").status, 200);
    assert_status(
        &prext.client.get(REPORTS, &spoofed).await.expect("GET"),
        401,
        "Unauthorized",
    );
    let other = Ca::new("other").client("prext-admin", &["system:masters"]);
    assert!(prext
        .client
        .with_identity(Some(&other))
        .get(REPORTS, &[])
        .await
        .is_err());
    prext.shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut prext.task).await;
    assert!(
        stopped.is_ok_and(|r| r.is_ok_and(|r| r.is_ok())),
        "prext stops cleanly"
    );
}

#[tokio::test]
async fn namespace_lifecycle_refuses_missing_and_terminating_namespaces() {
    let double = KubeDouble::start().await;
    double.put_namespace("live", "Active");
    double.put_namespace("dying", "Terminating");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = kube::config::Kubeconfig::read_from(double.kubeconfig(dir.path())).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let shutdown = CancellationToken::new();
    let lifecycle = NamespaceLifecycle::start(client, shutdown.clone());

    lifecycle
        .admit_create("live")
        .await
        .expect("an active namespace admits creates");
    let dying = lifecycle.admit_create("dying").await.expect_err("terminating");
    assert_eq!((dying.code, dying.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        dying.message,
        "unable to create new content in namespace dying because it is being terminated"
    );
    assert_eq!(
        dying.details.expect("details").causes[0].reason,
        "NamespaceTerminating"
    );
    let missing = lifecycle.admit_create("missing").await.expect_err("missing");
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, "namespaces \"missing\" not found");

    // Once the mirror is synced, known namespaces are answered without a live lookup.
    let gets = || double.counters().namespace_gets.load(Ordering::SeqCst);
    eventually("the namespace mirror is watching", || async {
        double.counters().watches.load(Ordering::SeqCst) > 0
    })
    .await;
    let before = gets();
    for _ in 0..3 {
        lifecycle.admit_create("live").await.expect("admitted");
    }
    assert_eq!(gets(), before, "answered from the mirror");

    // Changes reach the mirror: a namespace that starts terminating refuses creates.
    double.put_namespace("live", "Terminating");
    eventually("the terminating phase is seen", || async {
        lifecycle.admit_create("live").await.is_err_and(|s| s.code == 403)
    })
    .await;
    double.put_namespace("fresh", "Active");
    lifecycle
        .admit_create("fresh")
        .await
        .expect("a new namespace admits creates");
    double.delete_namespace("fresh");
    eventually("the deletion is seen", || async {
        lifecycle
            .admit_create("fresh")
            .await
            .is_err_and(|s| s.code == 404)
    })
    .await;
    shutdown.cancel();
}
