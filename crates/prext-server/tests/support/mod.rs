//! Test support for the authentication tests: certificates ([`certs`]), a raw HTTPS client that
//! controls client certificates and headers and reports the server's certificate ([`client`]),
//! and a kube-apiserver test double ([`kube_double`]).

#![allow(dead_code)] // each test binary uses a different subset

pub mod certs;
pub mod client;
pub mod kube_double;
