//! prext's HTTP server: the Kubernetes API for policy reports over a [`prext_store::Store`].
//!
//! Layout: [`router`] maps paths and methods to handlers (one module per verb family under
//! `handlers/`, each decode → [`registry`] → render); [`registry`] holds the Kubernetes
//! object rules of every verb, between HTTP and the store; [`state`] is what handlers share;
//! [`request`] decodes paths and query parameters; [`negotiate`] picks the
//! representation; [`render`] writes objects, lists and Tables; [`error`] is the one place
//! where failures become `Status` responses; [`auth`] decides who is calling; [`tls`] and
//! [`pki`] serve HTTPS with client certificates.

// `Status` is the error of request decoding and rendering: built at most once per request,
// boxing it would only add an allocation to every signature on the happy path.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod bare_errors;
pub mod compaction;
pub mod config;
pub mod connections;
pub mod decode;
pub mod disk_reserve;
pub mod error;
pub mod fanout;
pub mod handlers;
pub mod head_limit;
pub mod history;
pub mod idle;
pub mod metrics;
pub mod negotiate;
pub mod panic;
pub mod pki;
pub mod quota;
pub mod registry;
pub mod reload;
pub mod render;
pub mod request;
pub mod router;
pub mod server;
pub mod state;
pub mod tls;
pub mod yaml;

pub use config::Config;
pub use server::run;
pub use state::AppState;
