//! The JSONPath subset used by CRD `additionalPrinterColumns`.
//!
//! apiextensions-apiserver evaluates a column's `jsonPath` with client-go's
//! `util/jsonpath`, wrapped in a template (`{` + path + `}`). The printer columns of the
//! served CRDs only ever select a single value: `.summary.pass`, `.scope.kind`,
//! `.spec.summary.fail`, `.metadata.creationTimestamp` and bracketed label or annotation
//! keys such as `.metadata.labels['audit\.kyverno\.io/source']`. This module implements
//! exactly that single-value subset with client-go's parsing rules:
//!
//! * `.name` selects a field; a backslash escapes the next character and every backslash
//!   is then dropped (`.a\.b` is the key `a.b`), and the name ends at an unescaped
//!   terminator (`.`, `,`, `[`, `]`, `$`, `@`, `{`, `}`, blanks, end of input);
//! * `['key']` is re-parsed as `.key`, so — as in client-go — an unescaped dot inside the
//!   quotes still separates fields (`['a.b']` means `.a.b`); write `['a\.b']` for the key
//!   `a.b`, as the Kyverno CRDs do;
//! * `[n]` indexes an array, negative indices counting from the end;
//! * `$`, `@` and blanks are ignored, an empty field name (`{.}`) selects the current
//!   value, and an optional `{…}` wrapper is accepted.
//!
//! Wildcards, slices, unions, filters and recursive descent are rejected with a
//! [`ParseError`]: they select several values, which a table cell cannot show.

use serde_json::Value;

/// Why a path could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A `[` without its `]`.
    #[error("unterminated array")]
    UnterminatedArray,
    /// A bracket holding neither a quoted key nor an integer index.
    #[error("invalid array index {0}")]
    InvalidIndex(String),
    /// A construct that selects several values (`*`, `..`, `[a:b]`, `[a,b]`, `[?()]`).
    #[error("unsupported JSONPath construct {0:?}: printer columns select a single value")]
    MultiValue(String),
    /// Any other character outside a field name.
    #[error("unrecognized character in action: {0:?}")]
    Unexpected(char),
}

/// One step of a parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Select a key of an object; the empty key selects the current value.
    Field(String),
    /// Select an element of an array; negative counts from the end.
    Index(i64),
}

/// A parsed single-value JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses `path` (with or without the `{…}` template braces).
    pub fn parse(path: &str) -> Result<Self, ParseError> {
        let trimmed = path.trim();
        let inner = trimmed
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(trimmed);
        let mut steps = Vec::new();
        parse_into(inner, &mut steps)?;
        Ok(Self { steps })
    }

    /// The parsed steps, in order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The value this path selects in `v`, or `None` when a step is missing or does not
    /// apply (a field of a non-object, an index out of range).
    pub fn eval<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        self.steps.iter().try_fold(v, |cur, step| match step {
            Step::Field(name) if name.is_empty() => Some(cur),
            Step::Field(name) => cur.as_object()?.get(name),
            Step::Index(i) => {
                let items = cur.as_array()?;
                let len = i64::try_from(items.len()).ok()?;
                let at = if *i < 0 { len + i } else { *i };
                items.get(usize::try_from(at).ok()?)
            }
        })
    }
}

/// Evaluates `path` against `v`, parsing it on each call. An unparsable path selects
/// nothing (apiextensions refuses such columns when the CRD is created).
pub fn eval<'a>(path: &str, v: &'a Value) -> Option<&'a Value> {
    JsonPath::parse(path).ok()?.eval(v)
}

/// client-go's `isTerminator`: characters that end a field name unless escaped.
fn is_terminator(c: char) -> bool {
    matches!(
        c,
        '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}' | ' ' | '\t' | '\r' | '\n'
    )
}

fn parse_into(input: &str, steps: &mut Vec<Step>) -> Result<(), ParseError> {
    let mut rest = input;
    while let Some(c) = rest.chars().next() {
        match c {
            ' ' | '\t' | '$' | '@' => rest = &rest[c.len_utf8()..],
            '.' if rest.starts_with("..") => return Err(ParseError::MultiValue("..".into())),
            '.' => {
                let (name, after) = scan_field(&rest[1..]);
                if name == "*" {
                    return Err(ParseError::MultiValue("*".into()));
                }
                steps.push(Step::Field(name));
                rest = after;
            }
            '[' => {
                if rest.starts_with("[?(") {
                    return Err(ParseError::MultiValue("[?(".into()));
                }
                let close = rest.find(']').ok_or(ParseError::UnterminatedArray)?;
                let text = &rest[1..close];
                if text.contains('\n') {
                    return Err(ParseError::UnterminatedArray);
                }
                parse_bracket(text, steps)?;
                rest = &rest[close + 1..];
            }
            other => return Err(ParseError::Unexpected(other)),
        }
    }
    Ok(())
}

/// Scans a field name up to the next unescaped terminator; returns the name with every
/// backslash removed (client-go's `strings.Replace(value, "\\", "", -1)`) and the rest.
fn scan_field(input: &str) -> (String, &str) {
    let mut end = input.len();
    let mut chars = input.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if is_terminator(c) {
            end = i;
            break;
        }
    }
    (input[..end].replace('\\', ""), &input[end..])
}

fn parse_bracket(text: &str, steps: &mut Vec<Step>) -> Result<(), ParseError> {
    // client-go splits on commas (a union) before it looks for a quoted key.
    if text.contains(',') {
        return Err(ParseError::MultiValue(format!("[{text}]")));
    }
    if let Some(key) = text.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        if key.contains('\'') {
            return Err(ParseError::InvalidIndex(text.to_string()));
        }
        // client-go re-parses the quoted key as `.key`.
        return parse_into(&format!(".{key}"), steps);
    }
    if text == "*" || text.contains(':') {
        return Err(ParseError::MultiValue(format!("[{text}]")));
    }
    let index = text
        .parse::<i64>()
        .map_err(|_| ParseError::InvalidIndex(text.to_string()))?;
    steps.push(Step::Index(index));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn report() -> Value {
        json!({
            "metadata": {
                "name": "r",
                "creationTimestamp": "2024-01-02T03:04:05Z",
                "labels": {"audit.kyverno.io/source": "admission", "app": "x"},
                "annotations": {"audit.kyverno.io/resource.name": "nginx"}
            },
            "scope": {"kind": "Deployment"},
            "summary": {"pass": 3, "fail": 0},
            "spec": {"summary": {"fail": 2}},
            "results": [{"policy": "a"}, {"policy": "b"}]
        })
    }

    #[test]
    fn evaluates_every_printer_column_path_of_the_served_crds() {
        let v = report();
        assert_eq!(eval(".summary.pass", &v), Some(&json!(3)));
        assert_eq!(eval(".scope.kind", &v), Some(&json!("Deployment")));
        assert_eq!(eval(".spec.summary.fail", &v), Some(&json!(2)));
        assert_eq!(
            eval(".metadata.creationTimestamp", &v),
            Some(&json!("2024-01-02T03:04:05Z"))
        );
        assert_eq!(
            eval(r".metadata.labels['audit\.kyverno\.io/source']", &v),
            Some(&json!("admission"))
        );
        assert_eq!(
            eval(r".metadata.annotations['audit\.kyverno\.io/resource\.name']", &v),
            Some(&json!("nginx"))
        );
    }

    #[test]
    fn every_column_path_in_the_embedded_crds_parses() {
        for def in crate::resources::RESOURCES {
            let crd: Value =
                serde_norway::from_str(def.crd().expect("stored kind").0).expect("embedded CRD is YAML");
            for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
                for col in version["additionalPrinterColumns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let path = col["jsonPath"].as_str().expect("jsonPath is a string");
                    assert!(JsonPath::parse(path).is_ok(), "{path}");
                }
            }
        }
    }

    #[test]
    fn missing_and_mismatched_steps_select_nothing() {
        let v = report();
        assert_eq!(eval(".summary.warn", &v), None);
        assert_eq!(eval(".scope.kind.deeper", &v), None);
        assert_eq!(eval(".metadata.labels['missing']", &v), None);
        assert_eq!(eval(".results[5]", &v), None);
        assert_eq!(eval(".results.policy", &v), None);
    }

    #[test]
    fn indices_braces_root_and_identity() {
        let v = report();
        assert_eq!(eval("{.results[1].policy}", &v), Some(&json!("b")));
        assert_eq!(eval(".results[-1].policy", &v), Some(&json!("b")));
        assert_eq!(eval("$.results[0].policy", &v), Some(&json!("a")));
        assert_eq!(eval("{.}", &v), Some(&v));
        assert_eq!(eval("", &v), Some(&v));
    }

    #[test]
    fn unescaped_dots_in_brackets_split_fields_as_in_client_go() {
        let v = json!({"a": {"b": 1}, "a.b": 2});
        assert_eq!(eval(".['a.b']", &v), Some(&json!(1)));
        assert_eq!(eval(r".['a\.b']", &v), Some(&json!(2)));
        assert_eq!(eval(r".a\.b", &v), Some(&json!(2)));
    }

    #[test]
    fn multi_value_and_malformed_paths_are_rejected() {
        for p in [".items[*]", ".a..b", ".a.*", ".a[0:2]", ".a[0,1]", ".a[?(@.x)]"] {
            assert!(
                matches!(JsonPath::parse(p), Err(ParseError::MultiValue(_))),
                "{p}"
            );
        }
        assert_eq!(JsonPath::parse(".a[0"), Err(ParseError::UnterminatedArray));
        assert_eq!(
            JsonPath::parse(".a[x]"),
            Err(ParseError::InvalidIndex("x".into()))
        );
        assert_eq!(JsonPath::parse("a"), Err(ParseError::Unexpected('a')));
        assert_eq!(eval(".a[x]", &json!({"a": [1]})), None);
    }

    /// Escapes a key for use inside `['…']`, the way a CRD author must.
    fn escape(key: &str) -> String {
        key.chars()
            .flat_map(|c| {
                let esc = is_terminator(c).then_some('\\');
                esc.into_iter().chain(std::iter::once(c))
            })
            .collect()
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = JsonPath::parse(&s);
        }

        #[test]
        fn escaped_bracket_keys_round_trip(
            key in "[^,'\\]\\\\\r\n]{1,20}",
            value in any::<i64>(),
        ) {
            // `['*']` is client-go's wildcard, not a key.
            prop_assume!(key != "*");
            let obj = json!({"metadata": {"labels": {key.clone(): value}}});
            let path = format!(".metadata.labels['{}']", escape(&key));
            prop_assert_eq!(eval(&path, &obj), Some(&json!(value)));
        }

        #[test]
        fn dotted_paths_follow_nested_objects(
            keys in proptest::collection::vec("[a-zA-Z_][a-zA-Z0-9_-]{0,8}", 1..5),
        ) {
            let mut v = json!("leaf");
            for k in keys.iter().rev() {
                v = json!({ k.clone(): v });
            }
            let path: String = keys.iter().map(|k| format!(".{k}")).collect();
            prop_assert_eq!(eval(&path, &v), Some(&json!("leaf")));
        }
    }
}
