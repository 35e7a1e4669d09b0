//! The discovery and OpenAPI documents, byte for byte, against the committed copies in
//! `tests/golden/` (the served documents must not change when the code that builds them
//! does; `PREXT_BLESS=1 cargo test -p prext-api --test documents` rewrites the copies after
//! an intended change, to be reviewed in the diff).
//!
//! The OpenAPI documents are compared by their SHA-512 (they embed the CRD schemas and are
//! hundreds of KB); the discovery documents in full.

use std::path::PathBuf;

use prext_api::{discovery, openapi, resources};
use sha2::{Digest, Sha512};

/// Every served group/version, report kinds' and results', as `/apis` announces them.
fn group_versions() -> Vec<(String, String)> {
    let list = discovery::api_group_list();
    let mut out = Vec::new();
    for g in list["groups"].as_array().into_iter().flatten() {
        for v in g["versions"].as_array().into_iter().flatten() {
            out.push((
                g["name"].as_str().unwrap_or_default().to_owned(),
                v["version"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    out
}

/// Name → bytes of every document checked.
fn documents() -> Vec<(String, Vec<u8>)> {
    let json = |v: &serde_json::Value| serde_json::to_vec_pretty(v).expect("JSON");
    let mut docs = vec![
        ("apis.json".to_owned(), json(&discovery::api_group_list())),
        ("apis-v2.json".to_owned(), discovery::aggregated().json.clone()),
        (
            "apis-v2.etag".to_owned(),
            discovery::aggregated().etag.clone().into_bytes(),
        ),
        ("openapi-v3.json".to_owned(), json(&openapi::v3_root())),
        (
            "openapi-v2.sha512".to_owned(),
            hex::encode(Sha512::digest(openapi::v2())).into_bytes(),
        ),
    ];
    for (group, version) in group_versions() {
        let g = discovery::api_group_doc(&group).expect("announced group is served");
        docs.push((format!("apis-{group}.json"), json(&g)));
        let rl = discovery::api_resource_list(&group, &version).expect("announced version is served");
        docs.push((format!("apis-{group}-{version}.json"), json(&rl)));
        let v3 = openapi::v3_group_version(&group, &version).expect("v3 document");
        docs.push((
            format!("openapi-v3-{group}-{version}.sha512"),
            v3.hash.clone().into_bytes(),
        ));
    }
    docs
}

#[test]
fn served_documents_match_the_committed_copies() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden");
    let bless = std::env::var_os("PREXT_BLESS").is_some();
    let mut differ = Vec::new();
    for (name, bytes) in documents() {
        let path = dir.join(&name);
        if bless {
            std::fs::write(&path, &bytes).expect("write golden copy");
            continue;
        }
        let want = std::fs::read(&path).unwrap_or_default();
        if want != bytes {
            differ.push(name);
        }
    }
    assert!(
        differ.is_empty(),
        "documents differ from tests/golden: {differ:?} (PREXT_BLESS=1 rewrites them after an intended change)"
    );
    assert!(!group_versions().is_empty() && resources::RESOURCES.len() > 1);
}

#[test]
fn unserved_paths_have_no_document() {
    assert!(discovery::api_group_doc("nope.io").is_none());
    assert!(discovery::api_resource_list("results.prext.io", "v1").is_none());
    assert!(discovery::api_resource_list("wgpolicyk8s.io", "v1").is_none());
    assert!(openapi::v3_group_version("results.prext.io", "v1").is_none());
}
