//! A minimal HTTPS/1.1 client: one request per connection, optional client certificate,
//! arbitrary headers, and the server's leaf certificate in the answer.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::certs::Identity;

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body (de-chunked).
    pub body: Vec<u8>,
    /// The server's leaf certificate.
    pub server_cert: CertificateDer<'static>,
}

impl Response {
    /// The body as JSON (panics with the body text otherwise).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Client {
    /// The server.
    pub addr: SocketAddr,
    /// PEM CA bundle trusted for the server certificate.
    pub roots_pem: String,
    /// The client certificate to present, if any.
    pub identity: Option<Identity>,
}

fn ders(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates")
}

impl Client {
    /// The same client presenting `identity`.
    pub fn with_identity(&self, identity: Option<&Identity>) -> Self {
        Self {
            identity: identity.cloned(),
            ..self.clone()
        }
    }

    /// Sends one request on a fresh connection.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> std::io::Result<Response> {
        let mut roots = rustls::RootCertStore::empty();
        for root in ders(&self.roots_pem) {
            roots.add(root).expect("root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some(id) => {
                let key = rustls_pemfile::private_key(&mut id.key_pem.as_bytes())
                    .expect("key")
                    .expect("key present");
                builder
                    .with_client_auth_cert(ders(&id.cert_pem), key)
                    .expect("client auth")
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::try_from("localhost").expect("name");
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await?;
        let server_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(<[_]>::first)
            .expect("server certificate")
            .clone()
            .into_owned();

        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        tls.write_all(request.as_bytes()).await?;
        tls.write_all(body).await?;
        let mut raw = Vec::new();
        tls.read_to_end(&mut raw).await?;
        parse(&raw, server_cert)
    }

    /// `GET path` with `headers`.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Response> {
        self.send("GET", path, headers, None).await
    }
}

fn parse(raw: &[u8], server_cert: CertificateDer<'static>) -> std::io::Result<Response> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers (connection closed early?)"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("chunked body"))?;
    }
    Ok(Response {
        status,
        body,
        server_cert,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
