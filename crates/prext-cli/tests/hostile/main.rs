//! Hostile requests against a real `prext serve` (issue 15): each attack gets a `Status`, is
//! refused quickly, changes nothing and leaves the server serving others.
//!
//! `parsers`: deep YAML, amplifying JSON patches, huge error lists, panics and property keys.

#[path = "../common/mod.rs"]
mod common;

mod parsers;
