//! Content negotiation: which representation the client asked for in `Accept`
//! (plain JSON, a `meta.k8s.io` Table, or PartialObjectMetadata), following the generic
//! apiserver's rules (`handlers/response.go`). YAML is offered except for watches (the
//! encoding itself is [`crate::yaml`]'s); protobuf and CBOR are never offered.

use prext_api::status::Status;

/// What a Table row carries in `object` (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// The representation to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The objects themselves as JSON.
    Json,
    /// A `meta.k8s.io` Table of the given version (`v1` or `v1beta1`).
    Table {
        version: &'static str,
        include: IncludeObject,
    },
    /// `PartialObjectMetadata` / `PartialObjectMetadataList` of the given version.
    Metadata { version: &'static str },
}

impl Output {
    /// The `apiVersion` of the meta.k8s.io wrapper types.
    pub fn meta_api_version(self) -> &'static str {
        match self {
            Output::Table { version, .. } | Output::Metadata { version } => {
                if version == "v1beta1" {
                    "meta.k8s.io/v1beta1"
                } else {
                    "meta.k8s.io/v1"
                }
            }
            Output::Json => "meta.k8s.io/v1",
        }
    }
}

/// Whether the request addresses one object or a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Object,
    Collection,
    /// A watch: events carry single objects, whichever metadata form was asked for.
    Watch,
}

/// Chooses the output for an `Accept` header value and the `includeObject` parameter.
pub fn negotiate(accept: Option<&str>, target: Target, include: Option<&str>) -> Result<Output, Status> {
    let include = match include {
        None | Some("") | Some("Metadata") => IncludeObject::Metadata,
        Some("Object") => IncludeObject::Object,
        Some("None") => IncludeObject::None,
        Some(other) => {
            return Err(Status::bad_request(format!(
                "includeObject: unsupported value \"{other}\": supported values: \"Metadata\", \"None\", \"Object\""
            )))
        }
    };
    let accept = match accept.map(str::trim) {
        None | Some("") => return Ok(Output::Json),
        Some(a) => a,
    };
    let mut saw_table_elsewhere = false;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let (mut as_, mut g, mut v) = (None, None, None);
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                let val = val.trim().trim_matches('"');
                match k.trim() {
                    "as" => as_ = Some(val.to_string()),
                    "g" => g = Some(val.to_string()),
                    "v" => v = Some(val.to_string()),
                    _ => {}
                }
            }
        }
        // YAML is the same document re-encoded on the way out (`crate::yaml`); watch streams
        // have no YAML framing, as kube-apiserver's YAML serializer has no stream serializer.
        let yaml = media == crate::yaml::YAML && target != Target::Watch;
        if !(yaml || matches!(media.as_str(), "application/json" | "application/*" | "*/*")) {
            continue;
        }
        let Some(as_) = as_ else {
            return Ok(Output::Json);
        };
        if g.as_deref() != Some("meta.k8s.io") {
            saw_table_elsewhere = true;
            continue;
        }
        let version = match v.as_deref() {
            Some("v1") => "v1",
            Some("v1beta1") => "v1beta1",
            _ => continue,
        };
        match (as_.as_str(), target) {
            ("Table", _) => return Ok(Output::Table { version, include }),
            ("PartialObjectMetadata", Target::Object | Target::Watch)
            | ("PartialObjectMetadataList", Target::Collection | Target::Watch) => {
                return Ok(Output::Metadata { version })
            }
            _ => continue,
        }
    }
    if saw_table_elsewhere {
        return Err(Status::not_acceptable(
            "only the following media types are accepted: application/json; as=Table and PartialObjectMetadata are served for g=meta.k8s.io only",
        ));
    }
    Err(Status::not_acceptable(
        "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    const METADATA_CLIENT: &str = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";

    #[test]
    fn kubectl_gets_a_table() {
        assert_eq!(
            negotiate(Some(KUBECTL), Target::Collection, None).unwrap(),
            Output::Table {
                version: "v1",
                include: IncludeObject::Metadata
            }
        );
    }

    #[test]
    fn metadata_client_gets_partial_metadata_in_json() {
        assert_eq!(
            negotiate(Some(METADATA_CLIENT), Target::Collection, None).unwrap(),
            Output::Metadata { version: "v1" }
        );
        // The list variant on a single object falls through to plain JSON.
        assert_eq!(
            negotiate(Some(METADATA_CLIENT), Target::Object, None).unwrap(),
            Output::Json
        );
    }

    #[test]
    fn yaml_is_served_except_for_watches() {
        assert_eq!(
            negotiate(Some("application/yaml"), Target::Object, None).unwrap(),
            Output::Json
        );
        assert_eq!(
            negotiate(
                Some("application/yaml;as=Table;v=v1;g=meta.k8s.io"),
                Target::Collection,
                None
            )
            .unwrap(),
            Output::Table {
                version: "v1",
                include: IncludeObject::Metadata
            }
        );
        assert_eq!(
            negotiate(Some("application/yaml"), Target::Watch, None)
                .unwrap_err()
                .code,
            406
        );
    }

    #[test]
    fn protobuf_only_is_not_acceptable() {
        let e = negotiate(Some("application/vnd.kubernetes.protobuf"), Target::Object, None).unwrap_err();
        assert_eq!(e.code, 406);
    }

    #[test]
    fn parameters_in_any_order_and_bad_include() {
        assert_eq!(
            negotiate(
                Some("application/json; g=meta.k8s.io; v=v1beta1; as=Table"),
                Target::Object,
                Some("Object")
            )
            .unwrap(),
            Output::Table {
                version: "v1beta1",
                include: IncludeObject::Object
            }
        );
        assert_eq!(
            negotiate(None, Target::Object, Some("Bogus")).unwrap_err().code,
            400
        );
        assert_eq!(
            negotiate(Some("*/*"), Target::Object, None).unwrap(),
            Output::Json
        );
    }
}
