//! Exhausted storage (issue 15, point 6) against a real `prext serve`: `quota`, the
//! `--store-quota-bytes` quota; `disk_full`, a full disk (root: a tmpfs).
//!
//! A test target of its own, apart from `hostile`: these tests write tens of megabytes as fast
//! as they can, and run beside the connection tests, whose one-log-line-per-episode checks
//! depend on a machine that is not saturated.

#[path = "../common/mod.rs"]
mod common;

mod disk_full;
mod quota;
