//! Validation of a pruned and defaulted custom resource: a port of the kube-openapi
//! schema validator (`k8s.io/kube-openapi/pkg/validation/validate`) as apiextensions
//! configures it, with the conversion of its results to field errors of
//! `apiextensions-apiserver/pkg/apiserver/validation` (`kubeOpenAPIResultToFieldErrors`).

use serde_json::{Map, Number, Value};

use super::prune::{field_schema, joined, push_index, push_key, skip};
use super::{Schema, Type};
use crate::limits::{self, MAX_CAUSES};
use crate::names::go_quote;
use crate::status::StatusCause;

const REQUIRED: &str = "FieldValueRequired";
const NOT_SUPPORTED: &str = "FieldValueNotSupported";
const INVALID: &str = "FieldValueInvalid";
const TYPE_INVALID: &str = "FieldValueTypeInvalid";
const TOO_LONG: &str = "FieldValueTooLong";
const TOO_MANY: &str = "FieldValueTooMany";

// The validators run in kube-openapi's `SchemaValidator` order: type, string, number,
// slice, enum, object.

/// The causes of `obj`'s violations: the first [`MAX_CAUSES`] of them and, when there are more,
/// a last cause counting the rest ([`limits::left_out`]), so that 300,000 invalid results cost
/// a count, not 300,000 causes held in memory.
pub(super) fn check_root(obj: &mut Value, s: &Schema) -> Vec<StatusCause> {
    let mut c = Checker {
        path: String::new(),
        causes: Vec::new(),
        left_out: 0,
    };
    c.check(obj, s, true);
    let mut causes = c.causes;
    if c.left_out > 0 {
        causes.push(limits::left_out(c.left_out));
    }
    causes
}

struct Checker {
    path: String,
    /// At most [`MAX_CAUSES`].
    causes: Vec<StatusCause>,
    /// Violations found beyond those.
    left_out: usize,
}

/// Largest integer a JSON number holds exactly (`swag.IsFloat64AJSONInteger`).
const MAX_JSON_INT: f64 = 9_007_199_254_740_991.0;

fn is_json_integer(f: f64) -> bool {
    f.is_finite() && f.abs() <= MAX_JSON_INT && f.trunc() == f
}

/// The JSON type and Go format kube-openapi infers for a decoded value. Go decodes a
/// number into an `int64` when its literal is an integer that fits, else a `float64`.
fn detect(x: &Value) -> (&'static str, &'static str) {
    match x {
        Value::Null => ("null", ""),
        Value::Bool(_) => ("boolean", ""),
        Value::String(_) => ("string", ""),
        Value::Number(n) if n.is_i64() => ("integer", "int64"),
        Value::Number(_) => ("number", "float64"),
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
    }
}

impl Checker {
    fn at(&self, reason: &str, message: String) -> StatusCause {
        StatusCause::new(reason, message, self.path.clone())
    }

    fn push(&mut self, reason: &str, message: String) {
        let cause = self.at(reason, message);
        self.keep(cause);
    }

    /// Keeps `cause` while fewer than [`MAX_CAUSES`] are kept, else only counts it.
    fn keep(&mut self, cause: StatusCause) {
        if self.causes.len() < MAX_CAUSES {
            self.causes.push(cause);
        } else {
            self.left_out = self.left_out.saturating_add(1);
        }
    }

    /// `field.Invalid(path, value, "<path> in body <detail>")`.
    fn invalid(&mut self, value: String, detail: &str) {
        let msg = format!("Invalid value: {value}: {} in body {detail}", self.path);
        self.push(INVALID, msg);
    }

    fn check(&mut self, x: &mut Value, s: &Schema, root: bool) {
        let types = type_list(s);
        if x.is_null() {
            if !types.is_empty() && !s.nullable {
                self.type_invalid(&types.join(","), "null");
            }
            self.check_enum(x, s);
            return;
        }
        normalize_integer(x, types);
        self.check_type(x, s, types);
        match x {
            Value::String(text) => self.check_string(text, s),
            Value::Number(n) => self.check_number(n, s),
            _ => {}
        }
        if let Value::Array(items) = x {
            if let Some(item_schema) = s.items.as_deref() {
                for (i, v) in items.iter_mut().enumerate() {
                    let len = self.path.len();
                    push_index(&mut self.path, i);
                    self.check(v, item_schema, false);
                    self.path.truncate(len);
                }
            }
            self.check_item_count(items.len() as u64, s);
        }
        self.check_enum(x, s);
        if let Value::Object(map) = x {
            self.check_object(map, s, root);
        }
    }

    fn type_invalid(&mut self, expected: &str, actual: &str) {
        let q = go_quote(actual);
        let msg = format!(
            "Invalid value: {q}: {} in body must be of type {expected}: {q}",
            self.path
        );
        self.push(TYPE_INVALID, msg);
    }

    /// kube-openapi's `typeValidator`, including its handling of `format`.
    fn check_type(&mut self, x: &Value, s: &Schema, types: &[&str]) {
        let format = s.format.as_deref().unwrap_or("");
        if types.is_empty() && format.is_empty() {
            return;
        }
        let (detected, detected_format) = detect(x);
        let has = |t: &str| types.contains(&t);
        let is_float_int = detected == "number" && x.as_f64().is_some_and(is_json_integer) && has("integer");
        let is_int_float = detected == "integer" && has("number");
        let accepted = has(detected) || is_float_int || is_int_float;
        let string_or_slice = x.is_string() || x.is_array();
        if !format.is_empty() {
            if !string_or_slice && !accepted && detected_format != format {
                self.type_invalid(format, detected_format);
                return;
            }
            if string_or_slice && !(has("number") || has("integer")) {
                // kube-openapi accepts any string or array for a formatted non-numeric type.
                return;
            }
        }
        if !accepted {
            self.type_invalid(&types.join(","), detected);
        }
    }

    fn check_string(&mut self, text: &str, s: &Schema) {
        if s.max_length.is_none() && s.min_length.is_none() {
            return;
        }
        let len = text.chars().count() as u64;
        if let Some(max) = s.max_length.filter(|max| len > *max) {
            let unit = if max == 1 { "byte" } else { "bytes" };
            self.push(TOO_LONG, format!("Too long: may not be more than {max} {unit}"));
        } else if let Some(min) = s.min_length.filter(|min| len < *min) {
            self.invalid(go_quote(text), &format!("should be at least {min} chars long"));
        }
    }

    fn check_number(&mut self, n: &Number, s: &Schema) {
        let data = n.as_f64().unwrap_or(f64::NAN);
        // An integer is compared with the bound truncated to an integer, as in Go.
        let bound = |b: f64| {
            if n.is_i64() {
                go_float(b.trunc())
            } else {
                go_float(b)
            }
        };
        if let Some(max) = s.maximum {
            let max_cmp = if n.is_i64() { max.trunc() } else { max };
            if (s.exclusive_maximum && data >= max_cmp) || (!s.exclusive_maximum && data > max_cmp) {
                let op = if s.exclusive_maximum {
                    "less than"
                } else {
                    "less than or equal to"
                };
                self.invalid(go_number(n), &format!("should be {op} {}", bound(max)));
            }
        }
        if let Some(min) = s.minimum {
            let min_cmp = if n.is_i64() { min.trunc() } else { min };
            if (s.exclusive_minimum && data <= min_cmp) || (!s.exclusive_minimum && data < min_cmp) {
                let op = if s.exclusive_minimum {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                self.invalid(go_number(n), &format!("should be {op} {}", bound(min)));
            }
        }
    }

    fn check_item_count(&mut self, len: u64, s: &Schema) {
        if let Some(min) = s.min_items.filter(|min| len < *min) {
            self.invalid(len.to_string(), &format!("should have at least {min} items"));
        }
        if let Some(max) = s.max_items.filter(|max| len > *max) {
            self.push(
                TOO_MANY,
                format!("Too many: {len}: must have at most {max} items"),
            );
        }
    }

    fn check_enum(&mut self, x: &Value, s: &Schema) {
        let Some(allowed) = s.enumeration.as_deref().filter(|e| !e.is_empty()) else {
            return;
        };
        if !x.is_null() && allowed.iter().any(|a| enum_eq(a, x)) {
            return;
        }
        let supported = allowed
            .iter()
            .map(|a| go_quote(&a.as_str().map_or_else(|| a.to_string(), str::to_string)))
            .collect::<Vec<_>>()
            .join(", ");
        let msg = format!(
            "Unsupported value: {}: supported values: {supported}",
            go_value(x)
        );
        self.push(NOT_SUPPORTED, msg);
    }

    fn check_object(&mut self, map: &mut Map<String, Value>, s: &Schema, root: bool) {
        let count = map.len() as u64;
        if let Some(min) = s.min_properties.filter(|min| count < *min) {
            self.invalid(min.to_string(), &format!("should have at least {min} properties"));
            return;
        }
        if let Some(max) = s.max_properties.filter(|max| count > *max) {
            self.push(TOO_MANY, format!("Too many: {max}: has too many items"));
            return;
        }
        for (k, v) in map.iter_mut() {
            if skip(root, k) {
                continue;
            }
            if let Some(sub) = field_schema(s, k) {
                let len = self.path.len();
                push_key(&mut self.path, k);
                self.check(v, sub, false);
                self.path.truncate(len);
            }
        }
        for name in &s.required {
            if !skip(root, name) && !map.contains_key(name) {
                let cause = StatusCause::new(REQUIRED, "Required value", joined(&self.path, name));
                self.keep(cause);
            }
        }
    }
}

/// The `type` list kube-openapi checks against (`x-kubernetes-int-or-string` is
/// `integer,string`).
fn type_list(s: &Schema) -> &'static [&'static str] {
    if s.int_or_string {
        return &["integer", "string"];
    }
    match s.ty {
        Some(Type::String) => &["string"],
        Some(Type::Integer) => &["integer"],
        Some(Type::Number) => &["number"],
        Some(Type::Boolean) => &["boolean"],
        Some(Type::Object) => &["object"],
        Some(Type::Array) => &["array"],
        None => &[],
    }
}

/// Rewrites an integral float (`2.0`) as an integer where the schema wants an integer:
/// Kubernetes accepts it and serializes the Go `float64` as `2`.
fn normalize_integer(x: &mut Value, types: &[&str]) {
    if !types.contains(&"integer") || types.contains(&"number") {
        return;
    }
    if let Value::Number(n) = x {
        if let Some(f) = n.as_f64().filter(|f| !n.is_i64() && is_json_integer(*f)) {
            // Exact: |f| <= 2^53 - 1.
            *x = Value::from(f as i64);
        }
    }
}

/// Enum membership with Go's numeric conversions: `1` matches `1.0`.
fn enum_eq(allowed: &Value, x: &Value) -> bool {
    match (allowed, x) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => allowed == x,
    }
}

/// A bad value as apimachinery's `field.Error` prints it: strings quoted, numbers and
/// booleans bare, `null` for nil; composite values as JSON.
fn go_value(x: &Value) -> String {
    match x {
        Value::Null => "null".into(),
        Value::String(s) => go_quote(s),
        Value::Number(n) => go_number(n),
        other => other.to_string(),
    }
}

fn go_number(n: &Number) -> String {
    match n.as_i64() {
        Some(i) => i.to_string(),
        None => go_float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

/// Go's `%v` for a `float64` (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest
/// representation, in exponent form when the decimal exponent is below -4 or at least 6
/// (`1e+06`, `123456`, `0.0001`, `1e-05`).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}
