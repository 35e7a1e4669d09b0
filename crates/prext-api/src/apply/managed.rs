//! `metadata.managedFields`: the entries decoded into one field set per manager, and written
//! back in the order kube-apiserver keeps them (`sortEncodedManagedFields`).
//!
//! An entry this module cannot read (another `fieldsType`, an undecodable `fieldsV1`) is kept
//! byte for byte and takes no part in ownership; an entry whose set did not change is also
//! written back as it was read.

use serde_json::{Map, Value};

use super::fieldset::FieldSet;

/// The operation of entries written by server-side apply.
pub const APPLY: &str = "Apply";
/// The operation of entries written by create, update and non-apply patch.
pub const UPDATE: &str = "Update";

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    pub time: Option<String>,
    /// `None` for an entry this module does not understand.
    pub fields: Option<FieldSet>,
    raw: Value,
    dirty: bool,
}

impl Entry {
    /// A new entry, owning `fields`.
    pub fn new(manager: &str, operation: &str, api_version: &str, fields: FieldSet, time: &str) -> Self {
        Entry {
            manager: manager.to_string(),
            operation: operation.to_string(),
            api_version: api_version.to_string(),
            subresource: String::new(),
            time: Some(time.to_string()),
            fields: Some(fields),
            raw: Value::Object(Map::new()),
            dirty: true,
        }
    }

    fn decode(raw: &Value) -> Self {
        let text = |key: &str| {
            raw.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let fields = match (raw.get("fieldsType").and_then(Value::as_str), raw.get("fieldsV1")) {
            (Some("FieldsV1"), Some(tree)) => FieldSet::from_fields_v1(tree).ok(),
            (Some("FieldsV1"), None) => Some(FieldSet::new()),
            _ => None,
        };
        Entry {
            manager: text("manager"),
            operation: text("operation"),
            api_version: text("apiVersion"),
            subresource: text("subresource"),
            time: raw.get("time").and_then(Value::as_str).map(str::to_string),
            fields,
            raw: raw.clone(),
            dirty: false,
        }
    }

    /// Whether this is the entry `manager` writes with `operation` on the main resource
    /// (kube's manager identifier: Update entries are also per apiVersion).
    pub fn is(&self, manager: &str, operation: &str, api_version: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.is_empty()
            && (operation == APPLY || self.api_version == api_version)
    }

    /// The owner as kube names it in conflicts (`printManager`): `"mgr"`, then
    /// ` with subresource "s"`, then ` using <apiVersion>` for Update entries.
    pub fn owner(&self) -> String {
        let mut out = Value::String(self.manager.clone()).to_string();
        if !self.subresource.is_empty() {
            out.push_str(&format!(
                " with subresource {}",
                Value::String(self.subresource.clone())
            ));
        }
        if self.operation == UPDATE {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    /// Replaces the owned set.
    pub fn set_fields(&mut self, fields: FieldSet) {
        if self.fields.as_ref() != Some(&fields) {
            self.fields = Some(fields);
            self.dirty = true;
        }
    }

    /// Takes ownership of `more` too (an entry this module did not understand then owns
    /// `more` alone).
    pub fn own(&mut self, more: FieldSet) {
        match &mut self.fields {
            Some(fields) => self.dirty |= fields.absorb(more),
            None => {
                self.fields = Some(more);
                self.dirty = true;
            }
        }
    }

    /// Gives up ownership of `lost` (in place: most writes release a few fields of a few
    /// entries, or none).
    pub fn release(&mut self, lost: &FieldSet) {
        if let Some(fields) = &mut self.fields {
            self.dirty |= fields.remove_all(lost);
        }
    }

    /// Sets the time of the entry.
    pub fn touch(&mut self, time: &str) {
        if self.time.as_deref() != Some(time) {
            self.time = Some(time.to_string());
            self.dirty = true;
        }
    }

    fn encode(self) -> Value {
        let (true, Some(fields)) = (self.dirty, &self.fields) else {
            return self.raw;
        };
        let fields_v1 = fields.to_fields_v1();
        let mut out = match self.raw {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let mut put = |key: &str, value: Option<Value>| match value {
            Some(v) => {
                out.insert(key.to_string(), v);
            }
            None => {
                out.shift_remove(key);
            }
        };
        put("manager", Some(Value::String(self.manager)));
        put("operation", Some(Value::String(self.operation)));
        put("apiVersion", Some(Value::String(self.api_version)));
        put("time", self.time.map(Value::String));
        put("fieldsType", Some(Value::String("FieldsV1".into())));
        put("fieldsV1", Some(fields_v1));
        let subresource = Some(self.subresource)
            .filter(|s| !s.is_empty())
            .map(Value::String);
        put("subresource", subresource);
        Value::Object(out)
    }

    /// kube's order: operation, time (to the second), manager, apiVersion, subresource.
    fn sort_key(&self) -> (&str, i64, &str, &str, &str) {
        let seconds = self
            .time
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .map_or(0, |t| t.as_second());
        (
            &self.operation,
            seconds,
            &self.manager,
            &self.api_version,
            &self.subresource,
        )
    }
}

/// The managed-fields entries of one object.
#[derive(Debug, Default)]
pub(crate) struct Managed {
    entries: Vec<Entry>,
    reshaped: bool,
}

impl Managed {
    /// The entries of `obj`'s `metadata.managedFields` (none if absent or not a list).
    pub fn decode(obj: &Value) -> Self {
        let entries = obj
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .map(|list| list.iter().map(Entry::decode).collect())
            .unwrap_or_default();
        Managed {
            entries,
            reshaped: false,
        }
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry `manager` writes with `operation`.
    pub fn find_mut(&mut self, manager: &str, operation: &str, api_version: &str) -> Option<&mut Entry> {
        self.entries
            .iter_mut()
            .find(|e| e.is(manager, operation, api_version))
    }

    /// Every entry.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Every entry, mutably.
    pub fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.entries.iter_mut()
    }

    /// Adds an entry.
    pub fn push(&mut self, entry: Entry) {
        self.entries.push(entry);
        self.reshaped = true;
    }

    /// Every field some entry owns.
    pub fn owned(&self) -> FieldSet {
        self.entries
            .iter()
            .filter_map(|e| e.fields.as_ref())
            .fold(FieldSet::new(), |acc, f| acc.union(f))
    }

    /// Drops the entries that own nothing.
    pub fn drop_empty(&mut self) {
        let before = self.entries.len();
        self.entries
            .retain(|e| e.fields.as_ref().is_none_or(|f| !f.is_empty()));
        self.reshaped |= self.entries.len() != before;
    }

    /// Writes the entries into `obj`'s metadata: sorted as kube sorts them when anything
    /// changed, as they were otherwise; the key is removed when there are none.
    pub fn write(mut self, obj: &mut Value) {
        let changed = self.reshaped || self.entries.iter().any(|e| e.dirty);
        if changed {
            self.entries.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        }
        let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            return;
        };
        if self.entries.is_empty() {
            meta.shift_remove("managedFields");
        } else {
            let list = self.entries.into_iter().map(Entry::encode).collect();
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}
