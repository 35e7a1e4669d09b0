//! `sslmode` against a cluster that only accepts TLS, with a certificate for `localhost` issued
//! by a test CA.

use prext_store::postgres::PostgresStore;
use prext_store::testsuite::{ServerTls, TempPostgres};
use prext_store::{Error, Store};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A CA certificate (PEM) and a server certificate for `localhost` it issued.
fn certificates() -> (String, ServerTls) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    (
        ca_cert.pem(),
        ServerTls {
            cert_pem: server.pem(),
            key_pem: server_key.serialize_pem(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_modes() {
    let (ca_pem, server) = certificates();
    let (other_ca_pem, _) = certificates();
    let pg = TempPostgres::with_tls(server).await;
    let files = tempfile::tempdir().expect("tempdir");
    let ca = files.path().join("ca.pem");
    let other_ca = files.path().join("other-ca.pem");
    std::fs::write(&ca, ca_pem).expect("write CA");
    std::fs::write(&other_ca, other_ca_pem).expect("write other CA");
    let url = |host: &str, query: &str| format!("postgres://prext@{host}:{}/postgres?{query}", pg.port());
    let root = |path: &std::path::Path| format!("sslrootcert={}", path.display());

    let accepted = [
        url("localhost", &format!("sslmode=verify-full&{}", root(&ca))),
        url("127.0.0.1", &format!("sslmode=verify-ca&{}", root(&ca))),
        url("127.0.0.1", "sslmode=require"),
        url("127.0.0.1", "sslmode=prefer"),
        url("127.0.0.1", ""),
    ];
    for u in accepted {
        let store = PostgresStore::connect(&u, pg.options())
            .await
            .unwrap_or_else(|e| panic!("{u}: {e}"));
        store.ping().await.unwrap_or_else(|e| panic!("{u}: ping: {e}"));
        store.close().await;
    }

    let refused = [
        // The certificate names localhost, not 127.0.0.1.
        (
            url("127.0.0.1", &format!("sslmode=verify-full&{}", root(&ca))),
            "certificate",
        ),
        // Issued by another CA (require with a root verifies the chain, as libpq does).
        (
            url("localhost", &format!("sslmode=verify-full&{}", root(&other_ca))),
            "certificate",
        ),
        (
            url("127.0.0.1", &format!("sslmode=verify-ca&{}", root(&other_ca))),
            "certificate",
        ),
        (
            url("127.0.0.1", &format!("sslmode=require&{}", root(&other_ca))),
            "certificate",
        ),
        // The server accepts TLS connections only.
        (url("127.0.0.1", "sslmode=disable"), "no encryption"),
    ];
    for (u, why) in refused {
        match PostgresStore::connect(&u, pg.options()).await {
            Err(Error::Unavailable(m)) => assert!(m.contains(why), "{u}: {m}"),
            other => panic!("{u}: want Unavailable ({why}), got {other:?}"),
        }
    }
    let missing = url(
        "localhost",
        &format!("sslmode=verify-full&{}", root(&files.path().join("nope.pem"))),
    );
    assert!(matches!(
        PostgresStore::connect(&missing, pg.options()).await,
        Err(Error::Internal(m)) if m.contains("nope.pem")
    ));
}
