//! Watch of one object by its path: `GET …/NAME?watch=true` and the deprecated
//! `GET /apis/G/V/watch/[namespaces/NS/]PLURAL/NAME`, served as a watch of the collection
//! restricted to that name, as `listOpts` of k8s.io/apiserver/pkg/endpoints/handlers/get.go
//! restricts it (a `metadata.name` field selector; another name in `fieldSelector` is a 400).

use prext_api::fields::{Field, FieldOp, FieldRequirement};
use prext_api::status::Status;

use crate::request::{Ctx, ListParams};

/// The watch parameters of the object `ctx.path` names, its path turned into the collection's
/// (the router then hands `ctx` to the watch handler).
pub fn params(ctx: &mut Ctx) -> Result<ListParams, Status> {
    let name = ctx.path.name.take().unwrap_or_default();
    let mut params = ListParams::parse(&ctx.query)?;
    params.watch = true;
    restrict_to_name(&mut params, &name)?;
    Ok(params)
}

/// Adds the `metadata.name` requirement, or checks the one the selector already has.
fn restrict_to_name(params: &mut ListParams, name: &str) -> Result<(), Status> {
    if params.fields.is_empty() {
        params.fields.requirements.push(FieldRequirement {
            field: Field::Name,
            op: FieldOp::Equals,
            value: name.to_string(),
        });
        return Ok(());
    }
    match params.fields.pinned_name() {
        Some(pinned) if pinned == name => Ok(()),
        _ => Err(Status::name_selector_mismatch()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Query;

    #[test]
    fn name_selector_is_added_or_checked() {
        let mut p = ListParams::parse(&Query::parse(Some("watch=1"))).unwrap();
        restrict_to_name(&mut p, "r1").unwrap();
        assert!(p.fields.matches("ns", "r1") && !p.fields.matches("ns", "r2"));
        let mut p = ListParams::parse(&Query::parse(Some("fieldSelector=metadata.name%3Dr1"))).unwrap();
        restrict_to_name(&mut p, "r1").unwrap();
        let mut p = ListParams::parse(&Query::parse(Some("fieldSelector=metadata.name%3Dr2"))).unwrap();
        assert_eq!(restrict_to_name(&mut p, "r1").unwrap_err().code, 400);
        let mut p = ListParams::parse(&Query::parse(Some("fieldSelector=metadata.namespace%3Da"))).unwrap();
        assert_eq!(restrict_to_name(&mut p, "r1").unwrap_err().code, 400);
    }
}
