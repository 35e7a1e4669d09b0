//! Request handlers, one module per verb family.

pub mod apply;
pub mod delete;
pub mod discovery;
pub mod findings;
pub mod health;
pub mod openapi;
pub mod read;
pub mod resource;
pub mod results;
pub mod standalone;
pub mod watch;
pub mod watch_one;
pub mod write;
pub mod write_rules;
