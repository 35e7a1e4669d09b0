//! get and list: one object, or one snapshot of a collection with keyset pagination
//! (`limit`/`continue`), `resourceVersion`/`resourceVersionMatch`, and the wait for a
//! revision this replica has not seen yet.

use prext_api::continue_token::ContinueToken;
use prext_api::ResourceDef;
use prext_store::{ListOptions, ListStream, StoredObject};

use super::{Error, ListRequest, ObjectRef, Registry, Result, VersionMatch};

/// How long a request for a resourceVersion the store has not reached waits for it before the
/// 504, as the kube-apiserver's watch cache does (`waitUntilFreshAndBlock`, 3 s).
pub const FRESHNESS_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// A list being read.
pub struct Listed {
    /// The objects, from one snapshot.
    pub stream: ListStream,
    /// The revision the list reports: the first page's snapshot.
    pub revision: i64,
}

impl Registry {
    /// The object `target` names.
    pub async fn get(&self, target: &ObjectRef) -> Result<StoredObject> {
        self.store
            .get(&target.key())
            .await
            .map_err(|e| Error::store(target, e))?
            .ok_or_else(|| Error::not_found(target))
    }

    /// Starts a list of `def`.
    pub async fn list(&self, def: &'static ResourceDef, request: ListRequest) -> Result<Listed> {
        let store = &self.store;
        let mut opts = ListOptions {
            resource: def.group_resource(),
            namespace: request.namespace,
            labels: request.labels,
            fields: request.fields,
            limit: request.limit,
            after: None,
        };
        // The revision every page reports: the first page's snapshot.
        let mut pinned: Option<i64> = None;
        if let Some(token) = &request.continue_token {
            let token = ContinueToken::decode(token).map_err(|e| Error::InvalidContinue(e.to_string()))?;
            let oldest = store.oldest_revision().await.map_err(Error::Storage)?;
            if token.revision < oldest {
                return Err(Error::ContinueExpired);
            }
            // A token from the future (forged, or another replica's newest write): wait for the
            // revision like any other resourceVersion, then 504, never echo it.
            self.wait_until_fresh(token.revision).await?;
            opts.after = Some((token.namespace, token.name));
            pinned = Some(token.revision);
        }
        let requested = request.revision;
        let exact = match (request.version_match, request.limit, &request.continue_token) {
            (Some(VersionMatch::Exact), _, _) => true,
            (None, Some(_), None) => requested.is_some(),
            _ => false,
        };
        let mut stream = store.list(opts.clone()).await.map_err(Error::Storage)?;
        if let Some(n) = requested {
            if n > stream.revision {
                // A replica that has not yet seen a write another one acknowledged catches up
                // within moments: wait for it, then list again.
                drop(stream);
                self.wait_until_fresh(n).await?;
                stream = store.list(opts).await.map_err(Error::Storage)?;
            }
            if exact && n != stream.revision {
                return Err(Error::TooOldRevision {
                    requested: n,
                    current: stream.revision,
                });
            }
        }
        let revision = pinned.unwrap_or(stream.revision);
        Ok(Listed { stream, revision })
    }

    /// Waits until the store has published revision `n` (another replica's write, or one still
    /// being committed), at most [`FRESHNESS_WAIT`]; then [`Error::TooLargeRevision`].
    pub async fn wait_until_fresh(&self, n: i64) -> Result<()> {
        let mut published = self.store.subscribe();
        let reached = tokio::time::timeout(FRESHNESS_WAIT, published.wait_for(|r| *r >= n)).await;
        match reached {
            Ok(Ok(_)) => Ok(()),
            _ => Err(Error::TooLargeRevision { requested: n }),
        }
    }
}
