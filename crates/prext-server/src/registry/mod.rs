//! The registry: the Kubernetes object rules between HTTP and storage (the generic
//! apiserver's `registry/generic/registry.Store`).
//!
//! Every verb is a method of [`Registry`] over typed options, returning typed results and a
//! typed [`Error`]; nothing here knows HTTP. One module per verb family:
//! [`create`], [`update`] (update and patch), [`apply`] (server-side apply), [`delete`]
//! (delete and deletecollection), [`read`] (get, list and the freshness wait) and [`watch`]
//! (a stream of typed events: initial events, bookmarks, selector transitions). The rules every write shares live in [`strategy`] (defaulting, validation,
//! field validation, finalizers, the store write), and every read-modify-write goes through
//! the one retry loop, [`guaranteed_update`](Registry::guaranteed_update).
//!
//! The HTTP handlers decode a request, call one method here, and render what it returns;
//! `prext migrate` uses [`strategy`] to admit what it copies.

use std::sync::Arc;

use prext_api::status::Status;
use prext_api::ResourceDef;
use prext_store::{ObjectKey, Store};

pub mod apply;
pub mod create;
pub mod delete;
mod error;
mod guaranteed_update;
mod options;
pub mod read;
pub mod strategy;
pub mod update;
pub mod watch;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod watch_tests;

pub use error::{Error, Result};
pub use options::{DeleteOptions, FieldValidation, ListRequest, Patch, VersionMatch, WriteOptions};

/// How many times a write that lost an optimistic-concurrency race is tried in all, when the
/// client did not pin a resourceVersion.
pub const RETRIES: usize = 5;

/// Admission that needs the world outside the store: namespace lifecycle in delegated mode
/// (creates go only into namespaces that exist and are not terminating).
#[async_trait::async_trait]
pub trait Admission: Send + Sync + 'static {
    /// Decides whether an object may be created in `namespace`.
    async fn admit_create(&self, namespace: &str) -> Result<(), Status>;
}

/// The object a request addresses.
#[derive(Debug, Clone)]
pub struct ObjectRef {
    pub def: &'static ResourceDef,
    /// `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// Its storage key.
    pub fn key(&self) -> ObjectKey {
        ObjectKey::new(
            self.def.group_resource(),
            self.namespace.clone().unwrap_or_default(),
            self.name.clone(),
        )
    }
}

/// What a create, update, patch or apply answers.
#[derive(Debug, Clone)]
pub struct Written {
    /// The object as stored (or as it would be, for a dry run).
    pub body: bytes::Bytes,
    /// The object was created (201) rather than updated (200).
    pub created: bool,
    /// `Warning`s to send (unknown fields with `fieldValidation=Warn`).
    pub warnings: Vec<String>,
}

/// The registry of every served kind over one store.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    admission: Option<Arc<dyn Admission>>,
}

impl Registry {
    /// A registry over `store`, with the admission of creates when there is one.
    pub fn new(store: Arc<dyn Store>, admission: Option<Arc<dyn Admission>>) -> Self {
        Self { store, admission }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Runs create admission for an object in `namespace` (nothing for cluster-scoped ones).
    async fn admit_create(&self, namespace: Option<&str>) -> Result<()> {
        if let (Some(admission), Some(ns)) = (&self.admission, namespace) {
            admission.admit_create(ns).await?;
        }
        Ok(())
    }
}
