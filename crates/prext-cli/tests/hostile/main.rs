//! Hostile requests against a real `prext serve` (issue 15): each attack gets a `Status`, is
//! refused quickly, changes nothing and leaves the server serving others.
//!
//! `connections`: idle and capped connections. `parsers`: deep YAML, amplifying JSON patches, huge error lists, panics, property keys and
//! continue tokens. `startup`: fatal start-up errors.

#[path = "../common/mod.rs"]
mod common;

mod connections;
mod parsers;
mod startup;
