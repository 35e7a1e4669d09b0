//! Limits that keep one request's work bounded: YAML nesting checked in linear time before
//! parsing ([`yaml`]), JSON patches counted and their copies measured ([`patch`]), and error
//! causes capped ([`cap_causes`]).

pub mod patch;
pub mod yaml;

use crate::status::StatusCause;

/// The most causes an error response lists (kube-apiserver's field validation stops listing
/// errors too; the last cause says how many were left out).
pub const MAX_CAUSES: usize = 100;

/// The reason of the last cause of a capped list, the one counting what was left out.
const LEFT_OUT_REASON: &str = "TooMany";

/// The cause saying that `n` more errors were found and not listed.
pub fn left_out(n: usize) -> StatusCause {
    StatusCause::new(LEFT_OUT_REASON, format!("{n} more errors not listed"), "")
}

/// How many errors `cause` says were left out, if it is a [`left_out`] cause.
fn left_out_count(cause: &StatusCause) -> Option<usize> {
    if cause.reason != LEFT_OUT_REASON || !cause.field.is_empty() {
        return None;
    }
    cause
        .message
        .strip_suffix(" more errors not listed")?
        .parse()
        .ok()
}

/// Keeps the first [`MAX_CAUSES`] causes and, when there were more, adds one saying how many
/// were left out. Lists already capped where they were found (schema validation stops keeping
/// causes at the cap, see `schema::validate`) carry their count in a [`left_out`] cause, which
/// is added to the count rather than listed.
pub fn cap_causes(causes: Vec<StatusCause>) -> Vec<StatusCause> {
    let mut kept = Vec::with_capacity(causes.len().min(MAX_CAUSES + 1));
    let mut left = 0usize;
    for cause in causes {
        if let Some(n) = left_out_count(&cause) {
            left = left.saturating_add(n);
        } else if kept.len() < MAX_CAUSES {
            kept.push(cause);
        } else {
            left = left.saturating_add(1);
        }
    }
    if left > 0 {
        kept.push(left_out(left));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_capped_and_the_rest_counted() {
        let causes: Vec<StatusCause> = (0..300_000)
            .map(|i| StatusCause::new("FieldValueInvalid", "bad", format!("results[{i}].result")))
            .collect();
        let capped = cap_causes(causes);
        assert_eq!(capped.len(), MAX_CAUSES + 1);
        assert_eq!(capped[MAX_CAUSES - 1].field, "results[99].result");
        assert_eq!(capped[MAX_CAUSES].message, "299900 more errors not listed");
        let few = vec![StatusCause::new("FieldValueInvalid", "bad", "x")];
        assert_eq!(cap_causes(few.clone()), few);
        let status = crate::Status::invalid_kind(
            "PolicyReport",
            "wgpolicyk8s.io",
            "a",
            cap_causes(
                (0..1000)
                    .map(|i| StatusCause::new("FieldValueInvalid", "bad", format!("f{i}")))
                    .collect(),
            ),
        );
        assert!(serde_json::to_vec(&status).expect("json").len() < 16 * 1024);
    }

    #[test]
    fn counts_left_out_where_found_are_added_not_listed() {
        let mut causes: Vec<StatusCause> = (0..3)
            .map(|i| StatusCause::new("FieldValueInvalid", "bad", format!("metadata.f{i}")))
            .collect();
        causes.extend((0..MAX_CAUSES).map(|i| StatusCause::new("FieldValueInvalid", "bad", format!("r{i}"))));
        causes.push(left_out(500));
        let capped = cap_causes(causes);
        assert_eq!(capped.len(), MAX_CAUSES + 1);
        assert_eq!(capped[0].field, "metadata.f0");
        assert_eq!(capped[MAX_CAUSES].message, "503 more errors not listed");
        // Under the cap, the count stays last and unchanged.
        let few = vec![StatusCause::new("FieldValueInvalid", "bad", "x"), left_out(7)];
        assert_eq!(cap_causes(few.clone()), few);
        // A cause that only looks alike is listed like any other.
        let alike = vec![StatusCause::new("TooMany", "7 more errors not listed", "spec.x")];
        assert_eq!(cap_causes(alike.clone()), alike);
    }
}
