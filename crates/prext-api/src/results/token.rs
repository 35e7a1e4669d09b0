//! Continue tokens of result lists: the first page's revision, the order and the sort key of
//! the last row returned, as URL-safe base64 (no padding) of a small JSON document with a
//! checksum, so garbage, truncation, edits and a token of a list in another order are
//! refused (400) instead of resuming from the wrong place.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::query::{ResultCursor, ResultOrder};

const VERSION: &str = "prext-results/v1";
const MAX_ENCODED_LEN: usize = 4096;

/// Where the next page of a result list resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsToken {
    /// The revision the first page reported; later pages report it too.
    pub revision: i64,
    /// The order of the list.
    pub order: ResultOrder,
    /// The last row returned.
    pub cursor: ResultCursor,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid continue token: {0}")]
pub struct InvalidToken(String);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    v: String,
    rv: i64,
    o: String,
    k: i64,
    ns: String,
    rep: String,
    res: String,
    i: i64,
    sum: String,
}

fn order_tag(order: ResultOrder) -> &'static str {
    match order {
        ResultOrder::Report => "report",
        ResultOrder::Severity { ascending: false } => "severity-desc",
        ResultOrder::Severity { ascending: true } => "severity-asc",
        ResultOrder::Timestamp { ascending: false } => "timestamp-desc",
        ResultOrder::Timestamp { ascending: true } => "timestamp-asc",
    }
}

fn checksum(w: &Wire) -> String {
    let mut h = Sha256::new();
    for part in [
        w.v.as_str(),
        &w.rv.to_string(),
        &w.o,
        &w.k.to_string(),
        &w.ns,
        &w.rep,
        &w.res,
        &w.i.to_string(),
    ] {
        h.update(part.len().to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

impl ResultsToken {
    /// Encodes the token for `metadata.continue`.
    pub fn encode(&self) -> String {
        let mut w = Wire {
            v: VERSION.into(),
            rv: self.revision,
            o: order_tag(self.order).into(),
            k: self.cursor.key,
            ns: self.cursor.namespace.clone(),
            rep: self.cursor.report.clone(),
            res: self.cursor.resource.clone(),
            i: self.cursor.index,
            sum: String::new(),
        };
        w.sum = checksum(&w);
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&w).unwrap_or_default())
    }

    /// Decodes a token sent back for a list in `order`.
    pub fn decode(token: &str, order: ResultOrder) -> Result<ResultsToken, InvalidToken> {
        if token.len() > MAX_ENCODED_LEN {
            return Err(InvalidToken("too long".into()));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|e| InvalidToken(format!("not URL-safe base64: {e}")))?;
        let w: Wire = serde_json::from_slice(&bytes).map_err(|e| InvalidToken(format!("malformed: {e}")))?;
        if w.v != VERSION {
            return Err(InvalidToken(format!("version {:?} is not supported", w.v)));
        }
        if w.sum != checksum(&w) {
            return Err(InvalidToken("checksum does not match its content".into()));
        }
        if w.o != order_tag(order) {
            return Err(InvalidToken(format!(
                "it continues a list sorted by {}, not {}",
                w.o,
                order_tag(order)
            )));
        }
        Ok(ResultsToken {
            revision: w.rv,
            order,
            cursor: ResultCursor {
                key: w.k,
                namespace: w.ns,
                report: w.rep,
                resource: w.res,
                index: w.i,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn token(ns: String, report: String, index: i64, key: i64) -> ResultsToken {
        ResultsToken {
            revision: 7,
            order: ResultOrder::Severity { ascending: false },
            cursor: ResultCursor {
                key,
                namespace: ns,
                report,
                resource: "policyreports.wgpolicyk8s.io".into(),
                index,
            },
        }
    }

    proptest! {
        #[test]
        fn round_trips(ns in ".{0,20}", report in ".{0,40}", index in any::<i64>(), key in any::<i64>()) {
            let t = token(ns, report, index, key);
            prop_assert_eq!(ResultsToken::decode(&t.encode(), t.order), Ok(t));
        }

        #[test]
        fn garbage_is_refused(s in "[A-Za-z0-9_-]{0,64}") {
            prop_assert!(ResultsToken::decode(&s, ResultOrder::Report).is_err());
        }
    }

    #[test]
    fn edits_and_other_orders_are_refused() {
        let t = token("a".into(), "r".into(), 1, 4);
        let encoded = t.encode();
        assert!(ResultsToken::decode(&encoded, ResultOrder::Report)
            .is_err_and(|e| e.to_string().contains("sorted by severity-desc")));
        let json = String::from_utf8(URL_SAFE_NO_PAD.decode(&encoded).expect("b64")).expect("utf8");
        let edited = URL_SAFE_NO_PAD.encode(json.replace("\"i\":1", "\"i\":2"));
        assert!(ResultsToken::decode(&edited, t.order).is_err_and(|e| e.to_string().contains("checksum")));
    }
}
