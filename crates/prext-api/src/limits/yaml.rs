//! A linear pre-scan of YAML nesting, run before the YAML parser.
//!
//! libyaml (under `serde_norway`) does work proportional to the current nesting for every token
//! (its simple-key and indentation stacks), so a body of 100,000 nested flow sequences costs
//! seconds of CPU before any depth limit of the deserializer is reached. This scan follows the
//! structure a YAML scanner sees (flow collections opened and closed, block indentation levels,
//! compact `- - x` sequences) while skipping quoted scalars, block scalars and comments, in one
//! pass over the bytes, and stops at the first point where the nesting passes the limit.
//!
//! It is deliberately an over-estimate in odd corners (an unbalanced `[` starting a continuation
//! line of a plain scalar counts as a flow collection), never an under-estimate of what the
//! parser nests; the limit is far above any real report's nesting.

/// The deepest YAML nesting accepted; JSON bodies are refused past 128 levels by serde_json, so
/// nothing deeper than this could be accepted after parsing anyway.
pub const MAX_YAML_DEPTH: usize = 200;

/// Where a YAML text nests deeper than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooDeep {
    /// The 1-based line where the limit was passed.
    pub line: usize,
    /// The limit.
    pub limit: usize,
}

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: nesting deeper than {} levels", self.line, self.limit)
    }
}

/// Scanner state carried from line to line.
struct Scan {
    limit: usize,
    flow: usize,
    block: Vec<usize>,
    /// Inside a quoted scalar: its quote.
    quote: Option<u8>,
    /// Inside a block scalar (`|`, `>`): the indentation of the line that introduced it.
    block_scalar: Option<usize>,
    line: usize,
}

impl Scan {
    fn depth(&self) -> usize {
        self.flow + self.block.len()
    }

    fn check(&self) -> Result<(), TooDeep> {
        if self.depth() > self.limit {
            return Err(TooDeep {
                line: self.line,
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// A block collection entry (or key) at `column`.
    fn indent(&mut self, column: usize) -> Result<(), TooDeep> {
        while self.block.last().is_some_and(|&top| top > column) {
            self.block.pop();
        }
        if self.block.last() != Some(&column) {
            self.block.push(column);
        }
        self.check()
    }

    fn line(&mut self, line: &[u8]) -> Result<(), TooDeep> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        if let Some(parent) = self.block_scalar {
            if indent == line.len() || indent > parent {
                return Ok(());
            }
            self.block_scalar = None;
        }
        let mut i = 0;
        if self.quote.is_none() && self.flow == 0 {
            let rest = &line[indent..];
            if rest.is_empty() || rest[0] == b'#' {
                return Ok(());
            }
            let marker = |m: &[u8]| {
                indent == 0 && rest.starts_with(m) && rest.get(3).is_none_or(|b| *b == b' ' || *b == b'\t')
            };
            if marker(b"---") || marker(b"...") {
                self.block.clear();
                i = 3;
            } else if rest[0] != b'%' {
                self.indent(indent)?;
                i = indent;
            } else {
                return Ok(()); // a directive
            }
        }
        let blank = |b: Option<&u8>| b.is_none_or(|b| *b == b' ' || *b == b'\t');
        let mut token_start = true;
        while i < line.len() {
            let c = line[i];
            if let Some(q) = self.quote {
                match (q, c) {
                    (b'"', b'\\') => i += 1,
                    (b'\'', b'\'') if line.get(i + 1) == Some(&b'\'') => i += 1,
                    (q, c) if q == c => {
                        self.quote = None;
                        token_start = false;
                    }
                    _ => {}
                }
                i += 1;
                continue;
            }
            let after_blank = i == 0 || line[i - 1] == b' ' || line[i - 1] == b'\t';
            match c {
                b' ' | b'\t' => {}
                b'#' if after_blank => return Ok(()),
                b'[' | b'{' if token_start || self.flow > 0 => {
                    self.flow += 1;
                    self.check()?;
                    token_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    token_start = false;
                }
                b',' if self.flow > 0 => token_start = true,
                b'"' | b'\'' if token_start => self.quote = Some(c),
                b'-' | b'?' if token_start && blank(line.get(i + 1)) => {
                    if self.flow == 0 {
                        let next = i + 1 + line[i + 1..].iter().take_while(|&&b| b == b' ').count();
                        if next < line.len() {
                            self.indent(next)?;
                        }
                    }
                }
                b':' if blank(line.get(i + 1)) || self.flow > 0 => token_start = true,
                b'|' | b'>' if token_start && self.flow == 0 => {
                    self.block_scalar = Some(indent);
                    return Ok(());
                }
                b'&' | b'!' if token_start => {
                    // An anchor or a tag: the value follows it.
                    while i + 1 < line.len() && !blank(line.get(i + 1)) {
                        i += 1;
                    }
                }
                _ => token_start = false,
            }
            i += 1;
        }
        Ok(())
    }
}

/// Checks that `text` nests at most `limit` levels (flow collections plus block levels), in time
/// linear in its length.
pub fn check_depth(text: &str, limit: usize) -> Result<(), TooDeep> {
    let mut scan = Scan {
        limit,
        flow: 0,
        block: Vec::new(),
        quote: None,
        block_scalar: None,
        line: 0,
    };
    for line in text.as_bytes().split(|&b| b == b'\n') {
        scan.line += 1;
        scan.line(line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, limit: usize) -> bool {
        check_depth(text, limit).is_ok()
    }

    #[test]
    fn deep_flow_and_block_nesting_is_refused() {
        let flow = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            check_depth(&flow, MAX_YAML_DEPTH),
            Err(TooDeep {
                line: 1,
                limit: MAX_YAML_DEPTH
            })
        );
        let maps = "{a: ".repeat(300) + &"}".repeat(300);
        assert!(!depth_ok(&maps, MAX_YAML_DEPTH));
        let block: String = (0..300).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert!(!depth_ok(&block, MAX_YAML_DEPTH));
        let compact = "- ".repeat(300) + "x";
        assert!(!depth_ok(&compact, MAX_YAML_DEPTH));
        // Unterminated: the opening brackets alone count.
        assert!(!depth_ok(&"[".repeat(201), MAX_YAML_DEPTH));
    }

    #[test]
    fn depth_is_counted_as_the_parser_nests() {
        assert!(depth_ok("a: [[[x]]]", 4));
        assert!(!depth_ok("a: [[[x]]]", 3));
        assert!(depth_ok("a:\n  b:\n    c: 1\n", 3));
        assert!(!depth_ok("a:\n  b:\n    c: 1\n", 2));
        // Siblings do not add up.
        let siblings: String = (0..1000).map(|i| format!("k{i}: [[1]]\n")).collect();
        assert!(depth_ok(&siblings, 3));
        let seq: String = (0..1000).map(|i| format!("- a: {i}\n  b: [x]\n")).collect();
        assert!(depth_ok(&seq, 3));
    }

    #[test]
    fn brackets_in_scalars_and_comments_do_not_count() {
        let text = format!(
            "message: 'a {}'\nother: \"b {} \\\" {}\"\nplain: x {}\nblock: |\n  {}\n  {}\n# {}\nafter: [1]\n",
            "[".repeat(500),
            "{".repeat(500),
            "[".repeat(500),
            "[".repeat(500),
            "[".repeat(500),
            "{".repeat(500),
            "[".repeat(500),
        );
        assert!(depth_ok(&text, 3), "{:?}", check_depth(&text, 3));
        let folded = format!("- m: >-\n    {}\n  n: 1\n", "[".repeat(500));
        assert!(depth_ok(&folded, 3));
        let multi_line_quote = format!("m: \"a\n  {}\n  b\"\nn: [1]\n", "[".repeat(500));
        assert!(depth_ok(&multi_line_quote, 3));
        let documents = "---\na:\n  b: 1\n---\nc:\n  d: 1\n...\n";
        assert!(depth_ok(documents, 2));
    }

    #[test]
    fn real_reports_pass() {
        let report = "apiVersion: wgpolicyk8s.io/v1alpha2\nkind: PolicyReport\nmetadata:\n  name: a\n  labels: {app: x, 'b': \"c\"}\nresults:\n- policy: p\n  resources:\n  - {apiVersion: v1, kind: Pod, name: x}\n  properties:\n    score: '9.8'\n  message: \"uses [brackets] and {braces}: fine\"\nsummary: {pass: 1}\n";
        assert!(depth_ok(report, 8));
    }
}
