//! Server configuration, as given on the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `prext serve` needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the PKI, the kubeconfig and (by default) the SQLite database live.
    pub data_dir: PathBuf,
    /// The address to listen on; port 0 binds a free port.
    pub listen: SocketAddr,
    /// The store URL: `sqlite:PATH` (default `sqlite:DATA_DIR/prext.db`).
    pub store: Option<String>,
    /// Extra DNS names or IPs for the generated serving certificate.
    pub extra_sans: Vec<String>,
    /// How many of the newest revisions the change log keeps (watch history).
    pub history_revisions: i64,
    /// How often the change log is compacted.
    pub compaction_interval: Duration,
    /// How long in-flight requests get to finish on SIGTERM.
    pub shutdown_grace: Duration,
}

impl Config {
    /// A configuration with the documented defaults for a data dir and listen address.
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            listen,
            store: None,
            extra_sans: Vec::new(),
            history_revisions: 100_000,
            compaction_interval: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// The store URL in effect.
    pub fn store_url(&self) -> String {
        self.store
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("prext.db").display()))
    }
}
