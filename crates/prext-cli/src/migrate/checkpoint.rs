//! The resume point of `prext migrate`: which kinds are done and the continue token of the
//! kind in progress, in `DATA_DIR/migrate-checkpoint.json`.
//!
//! The file is written after each page has been committed to the store, by writing a
//! temporary file, syncing it and renaming it over the old one, so a crash leaves either the
//! previous checkpoint or the new one, never a torn file. A page committed but not yet
//! checkpointed is simply read again on resume: copying is idempotent. The file is removed
//! when a run completes, so the next run starts from the beginning (and finds everything
//! unchanged).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name under the data dir.
pub const FILE_NAME: &str = "migrate-checkpoint.json";

/// The format version written by this build.
const VERSION: u32 = 1;

/// Progress of an interrupted run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// [`VERSION`].
    pub version: u32,
    /// The source it was made against (API server URL and context).
    pub source: String,
    /// Kinds (`plural.group`) copied completely, or found not served.
    pub completed: Vec<String>,
    /// The kind in progress and where its next page starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Resume>,
}

/// Where to go on within one kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// `plural.group`.
    pub resource: String,
    /// The continue token of the next page to read; `None` is the first page.
    #[serde(rename = "continue", default, skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
}

impl Checkpoint {
    /// An empty checkpoint for `source`.
    pub fn new(source: &str) -> Self {
        Self {
            version: VERSION,
            source: source.to_string(),
            completed: Vec::new(),
            resume: None,
        }
    }

    /// True when `resource` needs no more work.
    pub fn is_completed(&self, resource: &str) -> bool {
        self.completed.iter().any(|r| r == resource)
    }

    /// The token to start `resource` from (`None`: its first page).
    pub fn start_of(&self, resource: &str) -> Option<String> {
        self.resume
            .as_ref()
            .filter(|r| r.resource == resource)
            .and_then(|r| r.continue_token.clone())
    }

    /// Records that `resource` goes on at `continue_token`.
    pub fn set_resume(&mut self, resource: &str, continue_token: Option<String>) {
        self.resume = Some(Resume {
            resource: resource.to_string(),
            continue_token,
        });
    }

    /// Records that `resource` is done.
    pub fn complete(&mut self, resource: &str) {
        if !self.is_completed(resource) {
            self.completed.push(resource.to_string());
        }
        if self.resume.as_ref().is_some_and(|r| r.resource == resource) {
            self.resume = None;
        }
    }
}

/// Errors reading or writing the checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a checkpoint of this version of prext ({source}); delete it to start over")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The checkpoint file of a data dir.
#[derive(Debug, Clone)]
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    /// The checkpoint file under `data_dir`.
    pub fn in_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE_NAME),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved checkpoint, if there is one.
    pub fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(self.io("reading", source)),
        };
        let checkpoint: Checkpoint =
            serde_json::from_slice(&text).map_err(|source| CheckpointError::Unreadable {
                path: self.path.clone(),
                source,
            })?;
        if checkpoint.version != VERSION {
            let source = serde::de::Error::custom(format!("format version {}", checkpoint.version));
            return Err(CheckpointError::Unreadable {
                path: self.path.clone(),
                source,
            });
        }
        Ok(Some(checkpoint))
    }

    /// Replaces the file atomically and durably.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io("creating the directory of", e))?;
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(checkpoint).unwrap_or_default();
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&body)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // The rename is durable once the directory entry is.
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| self.io("writing", e))
    }

    /// Deletes the file (a completed run).
    pub fn remove(&self) -> Result<(), CheckpointError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("removing", e)),
        }
    }

    fn io(&self, action: &'static str, source: std::io::Error) -> CheckpointError {
        CheckpointError::Io {
            action,
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_removes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = CheckpointFile::in_dir(&dir.path().join("data"));
        assert_eq!(file.load().expect("load"), None);
        let mut cp = Checkpoint::new("https://10.0.0.1:6443");
        cp.complete("policyreports.wgpolicyk8s.io");
        cp.set_resume("reports.openreports.io", Some("tok+/=".into()));
        file.save(&cp).expect("save");
        assert_eq!(file.load().expect("load"), Some(cp.clone()));
        let text = std::fs::read_to_string(file.path()).expect("read");
        assert!(text.contains("\"continue\": \"tok+/=\""), "{text}");
        assert!(!file.path().with_extension("json.tmp").exists());
        file.remove().expect("remove");
        file.remove().expect("removing twice is fine");
        assert_eq!(file.load().expect("load"), None);
    }

    #[test]
    fn resume_points_belong_to_one_kind() {
        let mut cp = Checkpoint::new("s");
        cp.set_resume("a", Some("t".into()));
        assert_eq!(cp.start_of("a"), Some("t".into()));
        assert_eq!(cp.start_of("b"), None);
        cp.complete("a");
        cp.complete("a");
        assert_eq!(cp.completed, vec!["a".to_string()]);
        assert!(cp.resume.is_none());
        assert!(cp.is_completed("a"));
    }

    #[test]
    fn garbage_and_future_versions_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = CheckpointFile::in_dir(dir.path());
        std::fs::write(file.path(), "{not json").expect("write");
        assert!(matches!(file.load(), Err(CheckpointError::Unreadable { .. })));
        std::fs::write(file.path(), r#"{"version":9,"source":"s","completed":[]}"#).expect("write");
        let err = file.load().expect_err("future version");
        assert!(err.to_string().contains("format version 9"), "{err}");
    }
}
