//! prext's API layer: the resource table and every piece of pure logic the server needs
//! (selectors, validation, `Status`, continue tokens, OpenAPI, Table rendering).
//!
//! Nothing in this crate performs I/O: it is tested with plain `#[test]`s and property tests.

// `Status` is the error of request-scoped validation: built at most once per request,
// boxing it would only add an allocation on the happy path's signatures.
#![allow(clippy::result_large_err)]

pub mod apply;
pub mod continue_token;
pub mod discovery;
pub mod duplicates;
pub mod duration;
pub mod equal;
pub mod fields;
pub mod jsonpath;
pub mod labels;
pub mod limits;
pub mod meta;
pub mod names;
pub mod openapi;
pub mod report;
pub mod resources;
pub mod results;
pub mod schema;
pub mod standalone;
pub mod status;
pub mod table;

pub use resources::{ResourceDef, RESOURCES};
pub use status::Status;
