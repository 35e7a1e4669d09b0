//! Object metadata validation ported from apimachinery: names (DNS-1123 subdomains),
//! namespaces (DNS-1123 labels), label and annotation maps, and `generateName`.
//!
//! Messages match `k8s.io/apimachinery/pkg/api/validate/content` (`IsDNS1123Subdomain`,
//! `IsLabelKey`, `IsLabelValue`, ...) word for word, so clients see the errors a real
//! API server would return.

use std::fmt::Write as _;

use rand::Rng as _;
use serde_json::{Map, Value};

/// Maximum length of a DNS-1123 subdomain (object names).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Maximum length of a DNS-1123 label (namespace names).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Maximum length of a label value and of the name part of a qualified name.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Maximum total size of all annotation keys and values (`TotalAnnotationSizeLimitB`).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
/// Longest `generateName` prefix kept before the random suffix is appended.
pub const MAX_GENERATED_NAME_PREFIX: usize = 63 - GENERATED_SUFFIX_LENGTH;

const GENERATED_SUFFIX_LENGTH: usize = 5;
/// `k8s.io/apimachinery/pkg/util/rand` alphabet: no vowels, no confusable characters.
const GENERATED_SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Field path of label causes.
const LABELS_FIELD: &str = "metadata.labels";
/// Field path of annotation causes.
const ANNOTATIONS_FIELD: &str = "metadata.annotations";

/// Validates an object name (`metadata.name`) as a DNS-1123 subdomain
/// (`NameIsDNSSubdomain`). Returns the messages of every violation; empty when valid.
///
/// An empty name yields the regex message; callers that accept `generateName` should
/// report `Required value: name or generateName is required` before calling this.
pub fn validate_name(name: &str) -> Vec<String> {
    is_dns1123_subdomain(name)
}

/// Validates a `metadata.generateName` prefix: like [`validate_name`] but a trailing `-`
/// is allowed (apimachinery's `maskTrailingDash`, quirks included).
pub fn validate_generate_name(prefix: &str) -> Vec<String> {
    let masked = match prefix.strip_suffix('-') {
        // Upstream replaces the last *two* bytes with "a"; both are ASCII here when the
        // prefix is otherwise valid, and anything else fails validation either way.
        Some(_) if prefix.len() > 1 => {
            let cut = floor_char_boundary(prefix, prefix.len() - 2);
            format!("{}a", &prefix[..cut])
        }
        _ => prefix.to_string(),
    };
    is_dns1123_subdomain(&masked)
}

/// Validates a namespace name as a DNS-1123 label (`ValidateNamespaceName`).
pub fn validate_namespace(namespace: &str) -> Vec<String> {
    is_dns1123_label(namespace)
}

/// Validates `metadata.labels` (`ValidateLabels`): keys must be qualified names, values
/// valid label values; non-string values are rejected.
///
/// Each entry is `(field, message)` where `message` is the full cause body
/// (`Invalid value: "<bad>": <detail>`), ready for a `FieldValueInvalid` status cause.
pub fn validate_labels(labels: &Map<String, Value>) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    for (key, value) in labels {
        for msg in is_qualified_name(key) {
            errs.push((LABELS_FIELD.to_string(), invalid_value(key, &msg)));
        }
        match value.as_str() {
            Some(v) => {
                for msg in is_valid_label_value(v) {
                    errs.push((LABELS_FIELD.to_string(), invalid_value(v, &msg)));
                }
            }
            None => errs.push((LABELS_FIELD.to_string(), not_a_string("label", key, value))),
        }
    }
    errs
}

/// Validates `metadata.annotations` (`ValidateAnnotations`): keys must be qualified names
/// (case-insensitively), values strings, and the total size of keys and values at most
/// [`TOTAL_ANNOTATION_SIZE_LIMIT`] bytes.
///
/// Messages are full cause bodies: `Invalid value: ...` (reason `FieldValueInvalid`) or,
/// for the size limit, `Too long: may not be more than 262144 bytes` (`FieldValueTooLong`).
pub fn validate_annotations(annotations: &Map<String, Value>) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (key, value) in annotations {
        for msg in is_qualified_name(&key.to_lowercase()) {
            errs.push((ANNOTATIONS_FIELD.to_string(), invalid_value(key, &msg)));
        }
        total = total.saturating_add(key.len());
        match value.as_str() {
            Some(v) => total = total.saturating_add(v.len()),
            None => errs.push((
                ANNOTATIONS_FIELD.to_string(),
                not_a_string("annotation", key, value),
            )),
        }
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push((
            ANNOTATIONS_FIELD.to_string(),
            format!("Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        ));
    }
    errs
}

/// Generates a name from a `generateName` prefix (`SimpleNameGenerator`): the prefix cut
/// to [`MAX_GENERATED_NAME_PREFIX`] bytes plus five random characters from
/// `bcdfghjklmnpqrstvwxz2456789`.
pub fn generate_name(base: &str) -> String {
    let cut = floor_char_boundary(base, MAX_GENERATED_NAME_PREFIX);
    let mut rng = rand::rng();
    let mut out = String::with_capacity(cut + GENERATED_SUFFIX_LENGTH);
    out.push_str(&base[..cut]);
    for _ in 0..GENERATED_SUFFIX_LENGTH {
        let i = rng.random_range(0..GENERATED_SUFFIX_ALPHABET.len());
        out.push(char::from(GENERATED_SUFFIX_ALPHABET[i]));
    }
    out
}

/// `IsDNS1123Subdomain`: at most 253 bytes of dot-separated DNS-1123 labels.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// `IsDNS1123Label`: at most 63 bytes of `[-a-z0-9]`, alphanumeric at both ends.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// `IsLabelKey` (formerly `IsQualifiedName`): `[DNS_SUBDOMAIN/]NAME`, the name at most
/// 63 bytes of `[-A-Za-z0-9_.]`, alphanumeric at both ends.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(LABEL_KEY_ERR, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(format!("name part {}", max_len_error(LABEL_VALUE_MAX_LENGTH)));
    }
    if !matches_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(LABEL_KEY_ERR, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// `IsLabelValue`: empty, or at most 63 bytes of `[-A-Za-z0-9_.]`, alphanumeric at both
/// ends.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// The body of an apimachinery `field.Invalid` error for a string value:
/// `Invalid value: "<value>": <detail>`.
pub fn invalid_value(value: &str, detail: &str) -> String {
    format!("Invalid value: {}: {detail}", go_quote(value))
}

/// Quotes a string like Go's `strconv.Quote` (`%q`), so messages embedding user input
/// match upstream byte for byte and cannot smuggle control characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0B}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: graphic characters and the ASCII space,
/// but no other spaces, controls or format characters.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let format_char = matches!(
        c,
        '\u{AD}'
            | '\u{600}'..='\u{605}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E000}'..='\u{F8FF}'
            | '\u{E0001}'..='\u{E007F}'
    );
    !c.is_control() && !c.is_whitespace() && !format_char
}

fn not_a_string(what: &str, key: &str, value: &Value) -> String {
    format!(
        "Invalid value: {value}: the value of {what} {} must be a string",
        go_quote(key)
    )
}

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} bytes")
}

/// apimachinery's `RegexError`, including its `'example',  or` double space.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = msg.to_string();
    out.push_str(" (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        let _ = write!(out, "'{example}', ");
    }
    let _ = write!(out, "regex used for validation is '{fmt}')");
    out
}

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-'),
        _ => false,
    }
}

/// `^<label>(\.<label>)*$`
fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

/// `^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
fn matches_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// The largest char boundary of `s` at or below `max` bytes.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn names_accept_dns_subdomains() {
        for ok in ["a", "0", "polr-ns-default", "a.b-c.d", &"a".repeat(253)] {
            assert!(validate_name(ok).is_empty(), "{ok}");
        }
    }

    #[test]
    fn names_reject_with_upstream_messages() {
        assert_eq!(validate_name("Foo"), vec![SUBDOMAIN_MSG.to_string()]);
        for bad in ["", "-a", "a-", "a..b", ".a", "a_b", "a b", "é"] {
            assert_eq!(validate_name(bad), vec![SUBDOMAIN_MSG.to_string()], "{bad:?}");
        }
        let long = "a".repeat(254);
        assert_eq!(
            validate_name(&long),
            vec!["must be no more than 253 bytes".to_string()]
        );
        assert_eq!(validate_name(&format!("{long}-")).len(), 2);
    }

    #[test]
    fn generate_name_prefix_may_end_with_dash() {
        assert!(validate_generate_name("polr-").is_empty());
        assert!(validate_generate_name("a-").is_empty());
        assert!(!validate_generate_name("-").is_empty());
        assert!(!validate_generate_name("Polr-").is_empty());
        assert!(!validate_name("polr-").is_empty());
    }

    #[test]
    fn namespaces_are_dns_labels() {
        assert!(validate_namespace("kube-system").is_empty());
        assert!(validate_namespace(&"a".repeat(63)).is_empty());
        assert_eq!(
            validate_namespace("a.b"),
            vec!["must not contain dots".to_string()]
        );
        assert_eq!(
            validate_namespace("Default"),
            vec!["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()]
        );
        assert_eq!(
            validate_namespace(&"a".repeat(64)),
            vec!["must be no more than 63 bytes".to_string()]
        );
    }

    #[test]
    fn qualified_names() {
        for ok in ["app", "App_1.x-y", "example.com/MyName", "a/b", &"x".repeat(63)] {
            assert!(is_qualified_name(ok).is_empty(), "{ok}");
        }
        assert_eq!(
            is_qualified_name("/a"),
            vec!["prefix part must be non-empty".to_string()]
        );
        let errs = is_qualified_name("Example.com/a");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("prefix part a lowercase RFC 1123 subdomain"));
        let errs = is_qualified_name("a/");
        assert_eq!(errs[0], "name part must be non-empty");
        assert_eq!(errs.len(), 2, "empty also fails the regex upstream");
        assert_eq!(
            is_qualified_name(&"x".repeat(64)),
            vec!["name part must be no more than 63 bytes".to_string()]
        );
        assert_eq!(
            is_qualified_name("a/b/c"),
            vec!["a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string()]
        );
        assert!(is_qualified_name("-a")[0].starts_with("name part must consist of"));
    }

    #[test]
    fn label_values() {
        for ok in ["", "v1", "a.b_c-d", &"z".repeat(63)] {
            assert!(is_valid_label_value(ok).is_empty(), "{ok}");
        }
        assert_eq!(is_valid_label_value("-a").len(), 1);
        assert_eq!(is_valid_label_value("a b").len(), 1);
        assert_eq!(
            is_valid_label_value(&"z".repeat(64)),
            vec!["must be no more than 63 bytes".to_string()]
        );
    }

    #[test]
    fn labels_map_validation() {
        assert!(validate_labels(&map(json!({"app": "x", "k8s.io/part": ""}))).is_empty());
        let errs = validate_labels(&map(json!({"bad key": "ok", "good": "bad value", "n": 5})));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs.iter().all(|(f, _)| f == "metadata.labels"));
        assert!(errs[0]
            .1
            .starts_with("Invalid value: \"bad key\": name part must consist"));
        assert!(errs[1]
            .1
            .starts_with("Invalid value: \"bad value\": a valid label must be"));
        assert_eq!(
            errs[2].1,
            "Invalid value: 5: the value of label \"n\" must be a string"
        );
    }

    #[test]
    fn annotations_validation() {
        assert!(validate_annotations(&map(json!({"Example.com/Note": "x y z"}))).is_empty());
        let errs = validate_annotations(&map(json!({"a/b/c": "x", "n": null})));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0]
            .1
            .starts_with("Invalid value: \"a/b/c\": a valid label key"));
        assert!(errs[1].1.contains("must be a string"));

        let at_limit = "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT - 1);
        assert!(validate_annotations(&map(json!({ "k": at_limit }))).is_empty());
        let over = "v".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        assert_eq!(
            validate_annotations(&map(json!({ "k": over }))),
            vec![(
                "metadata.annotations".to_string(),
                "Too long: may not be more than 262144 bytes".to_string()
            )]
        );
    }

    #[test]
    fn generated_names() {
        let name = generate_name("polr-ns-");
        assert_eq!(name.len(), 13);
        assert!(name.starts_with("polr-ns-"));
        assert!(name[8..].bytes().all(|b| GENERATED_SUFFIX_ALPHABET.contains(&b)));
        assert!(validate_name(&name).is_empty());

        let long = generate_name(&"a".repeat(100));
        assert_eq!(long.len(), 63);
        assert!(validate_name(&long).is_empty());

        // Never splits a multi-byte character.
        let uni = generate_name(&"é".repeat(40));
        assert_eq!(uni.len(), 58 + 5);
        assert_ne!(generate_name("x-"), generate_name("x-"));
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\n\t\u{1}\u{7f}"), r#""\n\t\x01\x7f""#);
        assert_eq!(go_quote("é ü"), "\"é ü\"");
        assert_eq!(go_quote("\u{200b}\u{a0}"), r#""\u200b\u00a0""#);
        assert_eq!(go_quote("\u{E0001}"), r#""\U000e0001""#);
    }
}
