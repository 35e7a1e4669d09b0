//! Minimal definitions of the apimachinery meta types the kind schemas and operations
//! reference, so that every `$ref` resolves inside each document. Field sets and
//! descriptions follow `k8s.io/apimachinery/pkg/apis/meta/v1` (abridged).

use serde_json::{json, Value};

use super::ops::META;

/// A v3 reference to a meta type (`ObjectMeta` → `#/components/schemas/io.k8s…ObjectMeta`).
pub(super) fn meta_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{META}{name}")})
}

/// A property that references a meta type, with its own description (OpenAPI 3.0 ignores
/// siblings of `$ref`, hence the single-element `allOf`, as kube-openapi emits).
pub(super) fn meta_property(name: &str, description: &str) -> Value {
    json!({"description": description, "allOf": [meta_ref(name)]})
}

fn string(description: &str) -> Value {
    json!({"description": description, "type": "string"})
}

fn integer(description: &str, format: &str) -> Value {
    json!({"description": description, "type": "integer", "format": format})
}

fn boolean(description: &str) -> Value {
    json!({"description": description, "type": "boolean"})
}

fn string_map(description: &str) -> Value {
    json!({"description": description, "type": "object", "additionalProperties": {"type": "string", "default": ""}})
}

fn gvk(kind: &str) -> Value {
    json!([{"group": "", "kind": kind, "version": "v1"}])
}

const API_VERSION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// `(name without the meta prefix, schema)` of every meta type, in v3 form.
pub(super) fn schemas() -> Vec<(&'static str, Value)> {
    let time = "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON.";
    vec![
        (
            "DeleteOptions",
            json!({
                "description": "DeleteOptions may be provided when deleting an API object.",
                "type": "object",
                "properties": {
                    "apiVersion": string(API_VERSION),
                    "dryRun": {"description": "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed", "type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "atomic"},
                    "gracePeriodSeconds": integer("The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately.", "int64"),
                    "kind": string(KIND),
                    "orphanDependents": boolean("Deprecated: please use the PropagationPolicy. Should the dependent objects be orphaned."),
                    "preconditions": meta_property("Preconditions", "Must be fulfilled before a deletion is carried out. If not possible, a 409 Conflict status will be returned."),
                    "propagationPolicy": string("Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.")
                },
                "x-kubernetes-group-version-kind": gvk("DeleteOptions")
            }),
        ),
        (
            "FieldsV1",
            json!({
                "description": "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format.",
                "type": "object"
            }),
        ),
        (
            "ListMeta",
            json!({
                "description": "ListMeta describes metadata that synthetic resources must have, including lists and various status objects.",
                "type": "object",
                "properties": {
                    "continue": string("continue may be set if the user set a limit on the number of items returned, and indicates that the server has more data available."),
                    "remainingItemCount": integer("remainingItemCount is the number of subsequent items in the list which are not included in this list response.", "int64"),
                    "resourceVersion": string("String that identifies the server's internal version of this object that can be used by clients to determine when objects have changed. Value must be treated as opaque by clients and passed unmodified back to the server."),
                    "selfLink": string("Deprecated: selfLink is a legacy read-only field that is no longer populated by the system.")
                }
            }),
        ),
        (
            "ManagedFieldsEntry",
            json!({
                "description": "ManagedFieldsEntry is a workflow-id, a FieldSet and the group version of the resource that the fieldset applies to.",
                "type": "object",
                "properties": {
                    "apiVersion": string("APIVersion defines the version of this resource that this field set applies to."),
                    "fieldsType": string("FieldsType is the discriminator for the different fields format and version. There is currently only one possible value: \"FieldsV1\""),
                    "fieldsV1": meta_property("FieldsV1", "FieldsV1 holds the first JSON version format as described in the \"FieldsV1\" type."),
                    "manager": string("Manager is an identifier of the workflow managing these fields."),
                    "operation": string("Operation is the type of operation which lead to this ManagedFieldsEntry being created. The only valid values for this field are 'Apply' and 'Update'."),
                    "subresource": string("Subresource is the name of the subresource used to update that object, or empty string if the object was updated through the main resource."),
                    "time": meta_property("Time", "Time is the timestamp of when the ManagedFields entry was added.")
                }
            }),
        ),
        (
            "ObjectMeta",
            json!({
                "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
                "type": "object",
                "properties": {
                    "annotations": string_map("Annotations is an unstructured key value map stored with a resource that may be set by external tools to store and retrieve arbitrary metadata. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/annotations"),
                    "creationTimestamp": meta_property("Time", "CreationTimestamp is a timestamp representing the server time when this object was created. Populated by the system. Read-only. Null for lists."),
                    "deletionGracePeriodSeconds": integer("Number of seconds allowed for this object to gracefully terminate before it will be removed from the system. Only set when deletionTimestamp is also set. Read-only.", "int64"),
                    "deletionTimestamp": meta_property("Time", "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted. Populated by the system when a graceful deletion is requested. Read-only."),
                    "finalizers": {"description": "Must be empty before the object is deleted from the registry. Each entry is an identifier for the responsible component that will remove the entry from the list.", "type": "array", "items": {"type": "string", "default": ""}, "x-kubernetes-list-type": "set"},
                    "generateName": string("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
                    "generation": integer("A sequence number representing a specific generation of the desired state. Populated by the system. Read-only.", "int64"),
                    "labels": string_map("Map of string keys and values that can be used to organize and categorize (scope and select) objects. May match selectors of replication controllers and services. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels"),
                    "managedFields": {"description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow.", "type": "array", "items": meta_ref("ManagedFieldsEntry"), "x-kubernetes-list-type": "atomic"},
                    "name": string("Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"),
                    "namespace": string("Namespace defines the space within which each name must be unique. An empty namespace is equivalent to the \"default\" namespace, but \"default\" is the canonical representation. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces"),
                    "ownerReferences": {"description": "List of objects depended by this object. If ALL objects in the list have been deleted, this object will be garbage collected.", "type": "array", "items": meta_ref("OwnerReference"), "x-kubernetes-list-map-keys": ["uid"], "x-kubernetes-list-type": "map"},
                    "resourceVersion": string("An opaque value that represents the internal version of this object that can be used by clients to determine when objects have changed. Populated by the system. Read-only."),
                    "selfLink": string("Deprecated: selfLink is a legacy read-only field that is no longer populated by the system."),
                    "uid": string("UID is the unique in time and space value for this object. It is typically generated by the server on successful creation of a resource and is not allowed to change on PUT operations. Populated by the system. Read-only.")
                }
            }),
        ),
        (
            "OwnerReference",
            json!({
                "description": "OwnerReference contains enough information to let you identify an owning object. An owning object must be in the same namespace as the dependent, or be cluster-scoped, so there is no namespace field.",
                "type": "object",
                "required": ["apiVersion", "kind", "name", "uid"],
                "properties": {
                    "apiVersion": string("API version of the referent."),
                    "blockOwnerDeletion": boolean("If true, AND if the owner has the \"foregroundDeletion\" finalizer, then the owner cannot be deleted from the key-value store until this reference is removed."),
                    "controller": boolean("If true, this reference points to the managing controller."),
                    "kind": string(KIND),
                    "name": string("Name of the referent."),
                    "uid": string("UID of the referent.")
                },
                "x-kubernetes-map-type": "atomic"
            }),
        ),
        (
            "Patch",
            json!({
                "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.",
                "type": "object"
            }),
        ),
        (
            "Preconditions",
            json!({
                "description": "Preconditions must be fulfilled before an operation (update, delete, etc.) is carried out.",
                "type": "object",
                "properties": {
                    "resourceVersion": string("Specifies the target ResourceVersion"),
                    "uid": string("Specifies the target UID.")
                }
            }),
        ),
        (
            "Status",
            json!({
                "description": "Status is a return value for calls that don't return other objects.",
                "type": "object",
                "properties": {
                    "apiVersion": string(API_VERSION),
                    "code": integer("Suggested HTTP return code for this status, 0 if not set.", "int32"),
                    "details": meta_property("StatusDetails", "Extended data associated with the reason. Each reason may define its own extended details."),
                    "kind": string(KIND),
                    "message": string("A human-readable description of the status of this operation."),
                    "metadata": meta_property("ListMeta", "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"),
                    "reason": string("A machine-readable description of why this operation is in the \"Failure\" status."),
                    "status": string("Status of the operation. One of: \"Success\" or \"Failure\".")
                },
                "x-kubernetes-group-version-kind": gvk("Status")
            }),
        ),
        (
            "StatusCause",
            json!({
                "description": "StatusCause provides more information about an api.Status failure, including cases when multiple errors are encountered.",
                "type": "object",
                "properties": {
                    "field": string("The field of the resource that has caused this error, as named by its JSON serialization."),
                    "message": string("A human-readable description of the cause of the error."),
                    "reason": string("A machine-readable description of the cause of the error.")
                }
            }),
        ),
        (
            "StatusDetails",
            json!({
                "description": "StatusDetails is a set of additional properties that MAY be set by the server to provide additional information about a response.",
                "type": "object",
                "properties": {
                    "causes": {"description": "The Causes array includes more details associated with the StatusReason failure.", "type": "array", "items": meta_ref("StatusCause"), "x-kubernetes-list-type": "atomic"},
                    "group": string("The group attribute of the resource associated with the status StatusReason."),
                    "kind": string("The kind attribute of the resource associated with the status StatusReason."),
                    "name": string("The name attribute of the resource associated with the status StatusReason (when there is a single name which can be described)."),
                    "retryAfterSeconds": integer("If specified, the time in seconds before the operation should be retried.", "int32"),
                    "uid": string("UID of the resource.")
                }
            }),
        ),
        (
            "Time",
            json!({"description": time, "type": "string", "format": "date-time"}),
        ),
        (
            "WatchEvent",
            json!({
                "description": "Event represents a single event to a watched resource.",
                "type": "object",
                "required": ["type", "object"],
                "properties": {
                    "object": {"description": "Object is: * If Type is Added or Modified: the new state of the object. * If Type is Deleted: the state of the object immediately before deletion. * If Type is Error: *Status is recommended; other types may make sense depending on context.", "type": "object"},
                    "type": string("ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.")
                },
                "x-kubernetes-group-version-kind": gvk("WatchEvent")
            }),
        ),
    ]
}
