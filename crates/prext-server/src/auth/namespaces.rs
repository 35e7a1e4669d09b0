//! Namespace lifecycle admission for creates, the part of upstream's `NamespaceLifecycle` plugin
//! that an aggregated server must run itself (kube-apiserver does not admit aggregated
//! resources): no new object in a namespace that does not exist or is being terminated, so a
//! report created while its namespace is deleted is not orphaned.
//!
//! Namespaces are mirrored by a kube-rs reflector (list + watch); a namespace missing from the
//! mirror (not yet synced, or created a moment ago) is looked up live before the create is
//! refused, as upstream does.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::Api;
use prext_api::names::go_quote;
use prext_api::status::{reason, Status, StatusCause, StatusDetails};
use tokio_util::sync::CancellationToken;

/// How long a live namespace lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The phase of a namespace being deleted.
const TERMINATING: &str = "Terminating";

/// Admits creates into namespaces that exist and are not terminating.
pub struct NamespaceLifecycle {
    api: Api<Namespace>,
    cache: Store<Namespace>,
}

impl std::fmt::Debug for NamespaceLifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceLifecycle")
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl NamespaceLifecycle {
    /// Starts mirroring `client`'s namespaces until `shutdown`.
    pub fn start(client: kube::Client, shutdown: CancellationToken) -> Arc<Self> {
        let api: Api<Namespace> = Api::all(client);
        let (cache, writer) = reflector::store();
        let events = reflector::reflector(
            writer,
            watcher(api.clone(), watcher::Config::default()).default_backoff(),
        );
        tokio::spawn(async move {
            futures::pin_mut!(events);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = events.next() => match next {
                        None => return,
                        Some(Ok(_)) => {}
                        Some(Err(e)) => tracing::warn!(error = %e, "watching namespaces failed; retrying"),
                    },
                }
            }
        });
        Arc::new(Self { api, cache })
    }

    /// Decides whether an object may be created in `namespace`: `404 NotFound` (`namespaces
    /// "x" not found`) when it does not exist, `403 Forbidden` with cause
    /// `NamespaceTerminating` when it is being deleted, `500` when the lookup fails.
    pub async fn admit_create(&self, namespace: &str) -> Result<(), Status> {
        if let Some(ns) = self.cache.get(&ObjectRef::new(namespace)) {
            return check(&ns, namespace);
        }
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, self.api.get_opt(namespace)).await;
        match lookup {
            Ok(Ok(Some(ns))) => check(&ns, namespace),
            Ok(Ok(None)) => Err(namespace_not_found(namespace)),
            Ok(Err(e)) => {
                tracing::warn!(namespace, error = %e, "namespace lookup failed");
                Err(Status::internal(format!("Internal error occurred: {e}")))
            }
            Err(_) => {
                tracing::warn!(namespace, "namespace lookup timed out");
                Err(Status::internal(
                    "Internal error occurred: namespace lookup timed out",
                ))
            }
        }
    }
}

fn check(ns: &Namespace, name: &str) -> Result<(), Status> {
    let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase == Some(TERMINATING) {
        return Err(namespace_terminating(name));
    }
    Ok(())
}

/// `errors.NewNotFound(v1.Resource("namespaces"), name)`.
pub fn namespace_not_found(name: &str) -> Status {
    Status::failure(
        404,
        reason::NOT_FOUND,
        format!("namespaces {} not found", go_quote(name)),
    )
    .with_details(StatusDetails {
        name: name.to_owned(),
        kind: "namespaces".to_owned(),
        ..StatusDetails::default()
    })
}

/// The 403 of a create into a terminating namespace (`lifecycle/admission.go`).
pub fn namespace_terminating(name: &str) -> Status {
    Status::failure(
        403,
        reason::FORBIDDEN,
        format!("unable to create new content in namespace {name} because it is being terminated"),
    )
    .with_details(StatusDetails {
        causes: vec![StatusCause::new(
            "NamespaceTerminating",
            format!("namespace {name} is being terminated"),
            "metadata.namespace",
        )],
        ..StatusDetails::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;

    fn namespace(phase: Option<&str>) -> Namespace {
        Namespace {
            status: Some(NamespaceStatus {
                phase: phase.map(str::to_owned),
                ..NamespaceStatus::default()
            }),
            ..Namespace::default()
        }
    }

    #[test]
    fn only_terminating_namespaces_are_refused() {
        assert!(check(&namespace(Some("Active")), "a").is_ok());
        assert!(check(&namespace(None), "a").is_ok());
        assert!(check(&Namespace::default(), "a").is_ok());
        let refused = check(&namespace(Some("Terminating")), "a").expect_err("terminating");
        assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"));
        assert_eq!(
            refused.message,
            "unable to create new content in namespace a because it is being terminated"
        );
        let cause = &refused.details.expect("details").causes[0];
        assert_eq!(
            (cause.reason.as_str(), cause.field.as_str()),
            ("NamespaceTerminating", "metadata.namespace")
        );
    }

    #[test]
    fn not_found_names_the_namespace_resource() {
        let s = namespace_not_found("x");
        assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
        assert_eq!(s.message, "namespaces \"x\" not found");
        let details = s.details.expect("details");
        assert_eq!(
            (
                details.name.as_str(),
                details.kind.as_str(),
                details.group.as_str()
            ),
            ("x", "namespaces", "")
        );
    }
}
