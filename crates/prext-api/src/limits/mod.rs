//! Limits that keep one request's work bounded: YAML nesting checked in linear time before
//! parsing ([`yaml`]), JSON patches counted and their copies measured ([`patch`]), and error
//! causes capped ([`cap_causes`]).

pub mod patch;
pub mod yaml;

use crate::status::StatusCause;

/// The most causes an error response lists (kube-apiserver's field validation stops listing
/// errors too; the last cause says how many were left out).
pub const MAX_CAUSES: usize = 100;

/// Keeps the first [`MAX_CAUSES`] causes and, when there were more, adds one saying how many
/// were left out.
pub fn cap_causes(mut causes: Vec<StatusCause>) -> Vec<StatusCause> {
    if causes.len() > MAX_CAUSES {
        let left_out = causes.len() - MAX_CAUSES;
        causes.truncate(MAX_CAUSES);
        causes.push(StatusCause::new(
            "TooMany",
            format!("{left_out} more errors not listed"),
            "",
        ));
    }
    causes
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
}
