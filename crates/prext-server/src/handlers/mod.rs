//! Request handlers, one module per verb family: each decodes its request, calls the
//! registry (or the store, for the read-only result queries) and renders the answer. No
//! handler imports another; the router picks them.

pub mod delete;
pub mod discovery;
pub mod health;
pub mod openapi;
pub mod read;
pub mod results;
pub mod standalone;
pub mod watch;
pub mod watch_one;
pub mod write;
