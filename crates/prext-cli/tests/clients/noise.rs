//! A client that sends an IP address as TLS SNI (Node.js and Ruby do, for
//! `https://127.0.0.1:…`) is normal client behaviour: prext logs no warning for it.

use std::process::{Command, Stdio};

use crate::common::TestServer;

#[tokio::test]
async fn an_ip_address_as_sni_logs_no_warning() {
    let server = TestServer::start();
    let authority = server.url.trim_start_matches("https://").to_string();
    let host = authority.split(':').next().unwrap().to_string();
    for _ in 0..3 {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &authority, "-servername", &host, "-brief"])
            .stdin(Stdio::null())
            .output()
            .expect("openssl s_client (the openssl package)");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            all.contains("CONNECTION ESTABLISHED") || all.contains("CONNECTED"),
            "{all}"
        );
    }
    // A request after the handshakes: the log is read once they have surely been handled.
    let client = server.client().await;
    crate::common::http::get(&client, "/version").await.expect(200);
    let logs = server.logs();
    assert!(logs.contains("prext is ready"), "the log is captured: {logs}");
    assert!(!logs.contains("Illegal SNI"), "{logs}");
    assert!(!logs.lines().any(|l| l.contains("WARN")), "{logs}");
}
