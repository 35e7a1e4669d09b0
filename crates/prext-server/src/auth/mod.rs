//! Who is calling and what they may do: the generic apiserver's delegated authentication and
//! authorization, plus namespace lifecycle admission.
//!
//! * [`trust`]: the client CA and the front proxy's CA, swappable at run time, shared with the
//!   TLS handshake.
//! * [`authn`]: front proxy (`X-Remote-*` headers), client certificates, bearer tokens
//!   (TokenReview).
//! * [`attributes`] and [`authz`]: the request's RequestInfo and its SubjectAccessReview.
//! * [`extension_config`]: the `kube-system/extension-apiserver-authentication` ConfigMap.
//! * [`namespaces`]: refuses creates into missing or terminating namespaces.
//! * [`setup`]: builds all of it from [`crate::config::AuthConfig`].
//!
//! Standalone mode (no flags) trusts client certificates of the server's own CA and allows
//! every authenticated request. In every mode, requests to the API without credentials are
//! answered 401 and the health endpoints are open.
//!
//! The [`authenticate`] middleware finds its [`Auth`] as a request extension
//! (`Extension<Arc<Auth>>` layered over the router); without one it behaves as standalone mode.

pub mod attributes;
pub mod authn;
pub mod authz;
pub mod cache;
pub mod extension_config;
pub mod namespaces;
pub mod setup;
pub mod trust;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prext_api::status::Status;

use crate::error::ApiError;
use crate::tls::{ClientIdentity, Verifier};
use attributes::Attributes;
use authn::Authenticator;
use authz::{Authorizer, Decision};

pub use namespaces::NamespaceLifecycle;

/// The authenticated caller, available to handlers as a request extension.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// The user's UID (empty when unknown).
    pub uid: String,
    /// The user's groups; always includes `system:authenticated`.
    pub groups: Vec<String>,
    /// Extra attributes (scopes, ...).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// Adds `system:authenticated` unless already present (upstream's
    /// `AuthenticatedGroupAdder`).
    pub fn with_authenticated_group(mut self) -> Self {
        if !self
            .groups
            .iter()
            .any(|g| g == authn::AUTHENTICATED_GROUP || g == "system:unauthenticated")
        {
            self.groups.push(authn::AUTHENTICATED_GROUP.to_owned());
        }
        self
    }
}

/// Paths served without authentication.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

/// Authentication and authorization of every request.
#[derive(Debug)]
pub struct Auth {
    authenticator: Authenticator,
    authorizer: Authorizer,
}

impl Auth {
    /// Combines an authenticator and an authorizer.
    pub fn new(authenticator: Authenticator, authorizer: Authorizer) -> Self {
        Self {
            authenticator,
            authorizer,
        }
    }

    /// Authenticates and authorizes `req`, stripping credentials that must not reach the
    /// handlers. Returns the caller, or the Status to answer (401, 403 or 500).
    pub async fn check(&self, req: &mut Request) -> Result<UserInfo, Status> {
        let certificate = req
            .extensions()
            .get::<Option<ClientIdentity>>()
            .cloned()
            .flatten();
        let user = match self
            .authenticator
            .authenticate(req.headers_mut(), certificate.as_ref())
            .await
        {
            Ok(Some(user)) => user,
            Ok(None) => return Err(Status::unauthorized("Unauthorized")),
            Err(e) => {
                tracing::info!(error = %e, "unable to authenticate the request");
                return Err(Status::unauthorized("Unauthorized"));
            }
        };
        let attributes = Attributes::of(req.method(), req.uri().path(), req.uri().query());
        match self.authorizer.authorize(&user, &attributes).await {
            Ok(Decision::Allow) => Ok(user),
            Ok(Decision::Deny(why)) => {
                tracing::debug!(user = %user.name, verb = attributes.verb(), path = req.uri().path(), "forbidden");
                Err(authz::forbidden(&user.name, &attributes, &why))
            }
            Err(e) => {
                tracing::error!(error = %e, "authorization failed");
                Err(Status::internal(format!("Internal error occurred: {e}")))
            }
        }
    }
}

/// Middleware: authenticates and authorizes the request, or answers 401/403/500.
pub async fn authenticate(mut req: Request, next: Next) -> Response {
    let auth = req.extensions().get::<Arc<Auth>>().cloned();
    if is_public(req.uri().path()) {
        authn::strip_proxy_headers(req.headers_mut(), None);
        return next.run(req).await;
    }
    let checked = match auth {
        Some(auth) => auth.check(&mut req).await,
        None => standalone(&mut req),
    };
    match checked {
        Ok(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Err(status) => ApiError::from(status).into_response(),
    }
}

/// Standalone behaviour for routers built without an [`Auth`]: any verified client
/// certificate is an allowed user.
fn standalone(req: &mut Request) -> Result<UserInfo, Status> {
    authn::strip_proxy_headers(req.headers_mut(), None);
    req.extensions()
        .get::<Option<ClientIdentity>>()
        .cloned()
        .flatten()
        .filter(|id| id.verified_by == Verifier::ClientCa)
        .map(|id| {
            UserInfo {
                name: id.user,
                groups: id.groups,
                ..UserInfo::default()
            }
            .with_authenticated_group()
        })
        .ok_or_else(|| Status::unauthorized("Unauthorized"))
}
