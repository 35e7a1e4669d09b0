//! The label selector lexer and recursive-descent parser, ported token for token from
//! `k8s.io/apimachinery/pkg/labels/selector.go` so that inputs are accepted, rejected and
//! reported exactly like kube-apiserver does.

use std::collections::BTreeSet;

use super::{invalid, new_requirement, Operator, Requirement};
use crate::names::is_qualified_name;

/// Parses a selector string into its requirements (in input order).
pub(super) fn parse(s: &str) -> Result<Vec<Requirement>, String> {
    Parser {
        items: lex(s),
        pos: 0,
    }
    .parse()
}

/// Lexer tokens (`selector.go` `Token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// Operator tokens and keywords by their literal (`string2token`).
fn keyword(lit: &[u8]) -> Option<Token> {
    Some(match lit {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits the input into tokens, ending with `EndOfString`. Like upstream, a NUL byte
/// ends the token being read (and the input, where a token would start).
fn lex(s: &str) -> Vec<(Token, String)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let read = |pos: &mut usize| -> u8 {
        let c = b.get(*pos).copied().unwrap_or(0);
        if *pos < b.len() {
            *pos += 1;
        }
        c
    };
    let mut items = Vec::new();
    loop {
        let mut c = read(&mut pos);
        while is_whitespace(c) {
            c = read(&mut pos);
        }
        if c == 0 {
            items.push((Token::EndOfString, String::new()));
            return items;
        }
        pos -= 1;
        let mut buf = Vec::new();
        let item = if is_special(c) {
            // Longest run of special characters that still forms an operator.
            let mut last = None;
            loop {
                let c = read(&mut pos);
                if c == 0 {
                    break;
                }
                if !is_special(c) {
                    pos -= 1;
                    break;
                }
                buf.push(c);
                if let Some(tok) = keyword(&buf) {
                    last = Some((tok, buf.len()));
                } else if last.is_some() {
                    pos -= 1;
                    break;
                }
            }
            // Every special character is an operator on its own, so `last` is always set.
            let (tok, len) = last.unwrap_or((Token::Identifier, buf.len()));
            (tok, String::from_utf8_lossy(&buf[..len]).into_owned())
        } else {
            loop {
                let c = read(&mut pos);
                if c == 0 {
                    break;
                }
                if is_special(c) || is_whitespace(c) {
                    pos -= 1;
                    break;
                }
                buf.push(c);
            }
            let tok = keyword(&buf).unwrap_or(Token::Identifier);
            (tok, String::from_utf8_lossy(&buf).into_owned())
        };
        items.push(item);
    }
}

/// Whether `in`/`notin` are keywords (after a key) or plain values.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

/// The recursive-descent parser over the scanned tokens.
struct Parser {
    items: Vec<(Token, String)>,
    pos: usize,
}

impl Parser {
    fn peek(&self, ctx: Context) -> (Token, String) {
        let (tok, lit) = self
            .items
            .get(self.pos)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        match tok {
            Token::In | Token::NotIn if ctx == Context::Values => (Token::Identifier, lit),
            _ => (tok, lit),
        }
    }

    fn next(&mut self, ctx: Context) -> (Token, String) {
        let item = self.peek(ctx);
        self.pos += 1;
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.peek(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (tok, lit) = self.next(Context::Values);
                    match tok {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (tok, lit) = self.peek(Context::Values);
                            if tok != Token::Identifier && tok != Token::DoesNotExist {
                                return Err(format!("found '{lit}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{lit}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, unary) = self.parse_key_and_infer_operator()?;
        if let Some(op) = unary {
            return new_requirement(&key, op, Vec::new()).map_err(|e| e.0);
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(&key, op, values).map_err(|e| e.0)
    }

    /// Reads `[!]KEY`; a key followed by `,` or the end is an existence test.
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let (mut tok, mut lit) = self.next(Context::Values);
        let mut op = None;
        if tok == Token::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.next(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let errs = is_qualified_name(&lit);
        if !errs.is_empty() {
            return Err(invalid("<nil>", &lit, &errs.join("; ")));
        }
        let (next, _) = self.peek(Context::Values);
        if op.is_none() && matches!(next, Token::EndOfString | Token::Comma) {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.next(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals | Token::DoubleEquals => Operator::Equals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    /// `( VALUE, ... )`; empty entries are the empty value.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.next(Context::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.peek(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                if self.next(Context::Values).0 != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.next(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            let (tok, lit) = self.next(Context::Values);
            match tok {
                Token::Identifier => {
                    values.insert(lit);
                    let (tok, lit) = self.peek(Context::Values);
                    match tok {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values.into_iter().collect()),
                        _ => return Err(format!("found '{lit}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    match self.peek(Context::Values).0 {
                        Token::ClosedPar => {
                            values.insert(String::new());
                            return Ok(values.into_iter().collect());
                        }
                        Token::Comma => {
                            self.next(Context::Values);
                            values.insert(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>` or `<` (possibly empty).
    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.peek(Context::Values);
        if matches!(tok, Token::EndOfString | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.next(Context::Values);
        if tok == Token::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::LabelSelector;
    use super::*;

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        let values = values.iter().map(|v| v.to_string()).collect();
        Requirement {
            key: key.into(),
            operator,
            values,
        }
    }

    fn parse(s: &str) -> Vec<Requirement> {
        LabelSelector::parse(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .requirements
    }

    fn err(s: &str) -> String {
        LabelSelector::parse(s).unwrap_err().0
    }

    #[test]
    fn grammar() {
        assert!(parse("").is_empty());
        assert!(parse("  ").is_empty());
        assert_eq!(parse("a=b"), vec![req("a", Operator::Equals, &["b"])]);
        assert_eq!(parse("a == b"), vec![req("a", Operator::Equals, &["b"])]);
        assert_eq!(parse("a!=b"), vec![req("a", Operator::NotEquals, &["b"])]);
        assert_eq!(parse("a="), vec![req("a", Operator::Equals, &[""])]);
        assert_eq!(parse("a"), vec![req("a", Operator::Exists, &[])]);
        assert_eq!(parse(" ! a "), vec![req("a", Operator::DoesNotExist, &[])]);
        assert_eq!(parse("a>1"), vec![req("a", Operator::GreaterThan, &["1"])]);
        assert_eq!(parse("a < 10"), vec![req("a", Operator::LessThan, &["10"])]);
        assert_eq!(
            parse("x in (foo,,baz),y,z notin ()"),
            vec![
                req("x", Operator::In, &["", "baz", "foo"]),
                req("y", Operator::Exists, &[]),
                req("z", Operator::NotIn, &[""]),
            ]
        );
        assert_eq!(
            parse("a in (b,b, c ,)"),
            vec![req("a", Operator::In, &["", "b", "c"])]
        );
        assert_eq!(parse("a in (,b)"), vec![req("a", Operator::In, &["", "b"])]);
        // Keywords are plain identifiers where a key or a value is expected.
        assert_eq!(
            parse("in in (in,notin)"),
            vec![req("in", Operator::In, &["in", "notin"])]
        );
        assert_eq!(parse("notin=in"), vec![req("notin", Operator::Equals, &["in"])]);
        assert_eq!(
            parse("example.com/tier\t=\tweb,app.kubernetes.io/name"),
            vec![
                req("app.kubernetes.io/name", Operator::Exists, &[]),
                req("example.com/tier", Operator::Equals, &["web"]),
            ]
        );
    }

    #[test]
    fn errors_match_upstream() {
        assert_eq!(
            err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(err("a,"), "found '', expected: identifier after ','");
        assert_eq!(
            err(",a"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            err("a in b"),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            err("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            err("a in (="),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(parse("a=="), vec![req("a", Operator::Equals, &[""])]);
        assert_eq!(
            err("a===b"),
            "unable to parse requirement: found '=', expected: identifier"
        );
        assert_eq!(
            err("-a"),
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert!(err("a=-b").starts_with(
            "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be"
        ));
        assert_eq!(
            err("a>b"),
            "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        // Two errors are aggregated.
        assert!(err("a>b_").starts_with("unable to parse requirement: [values[0]: "));
        assert!(
            err("a>-1").contains("values[0][a]"),
            "negative numbers are not label values"
        );
        assert!(err(&format!("a={}", "v".repeat(64))).contains("must be no more than 63 bytes"));
    }
}
