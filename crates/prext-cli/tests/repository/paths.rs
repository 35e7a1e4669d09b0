//! The check that the repository stands on its own: no file refers to a path outside the
//! repository root. It flags, in every file (tracked or not ignored):
//!
//! * relative paths that climb above the root: `..` components counted per line (per
//!   statement in Rust, so `.join("..").join("..")` adds up, and so do calls of `parent`
//!   and `ancestors`), against the depth of the
//!   directory the path is relative to (the crate directory for Rust code, which joins
//!   `CARGO_MANIFEST_DIR` or runs with the crate as working directory; the file's own
//!   directory for `include_str!`/`#[path]` in Rust and for every other file);
//! * absolute paths into a machine's own directories ([`MACHINE_DIRS`] at the root of the
//!   file system; a Dockerfile's paths are the image's and are not checked) and the
//!   workplace's shared reference folder ([`SHARED`]);
//! * symbolic links whose target is absolute or climbs above the root.

use std::path::{Component, Path};

/// One reference to the outside.
#[derive(Debug)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    pub why: String,
}

/// Directories at the root of the file system that belong to one machine, never to a
/// checkout (written without their slashes so that this file does not flag itself).
const MACHINE_DIRS: [&str; 5] = ["work", "home", "root", "Users", "mnt"];

/// The components of the workplace's shared reference folder, which a fresh clone lacks.
const SHARED: [&str; 2] = ["shared", "reference"];

/// The depth of `dir` below the root (`""` is 0).
fn depth(dir: &Path) -> usize {
    dir.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// The nearest directory at or above `file`'s holding a `Cargo.toml`, per `is_crate`.
fn crate_dir<'a>(file: &'a Path, is_crate: &dyn Fn(&Path) -> bool) -> &'a Path {
    let mut dir = file.parent().unwrap_or(Path::new(""));
    loop {
        if is_crate(dir) {
            return dir;
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => return Path::new(""),
        }
    }
}

/// How many `..` path components `chunk` holds. In Rust only those inside string literals
/// count (delimited by quotes or separators), so ranges and `..` patterns do not.
fn ups(chunk: &str, rust: bool) -> usize {
    let bytes = chunk.as_bytes();
    let delim = |b: Option<&u8>| match b {
        None => !rust,
        Some(b'/' | b'\\' | b'"' | b'\'') => true,
        Some(b' ' | b'\t' | b'(' | b')' | b'=' | b':' | b'`' | b'[' | b']' | b'<' | b'>') => !rust,
        Some(_) => false,
    };
    (0..bytes.len().saturating_sub(1))
        .filter(|&i| {
            bytes[i] == b'.'
                && bytes[i + 1] == b'.'
                && delim(i.checked_sub(1).and_then(|j| bytes.get(j)))
                && delim(bytes.get(i + 2))
        })
        .count()
}

/// How many directories a Rust statement climbs by method: `parent` (called, or passed as
/// `Path::parent`) and `ancestors` followed by `nth`. The patterns are assembled at run time
/// so that this file does not flag itself.
fn parents(chunk: &str) -> usize {
    let (parent, ancestors) = ("parent", "ancestors");
    let nth_call = format!("{ancestors}().nth(");
    let nth = chunk
        .match_indices(nth_call.as_str())
        .map(|(at, m)| {
            let rest = &chunk[at + m.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or(1)
        })
        .sum::<usize>();
    chunk.matches(&format!(".{parent}()")).count() + chunk.matches(&format!("Path::{parent}")).count() + nth
}

/// `chunk` cut before every `include_str!`-like macro and `#[path`, so that each piece holds
/// at most one file-relative path.
fn split_includes(chunk: &str) -> impl Iterator<Item = &str> {
    let mut starts: Vec<usize> = ["include_str!", "include_bytes!", "include!", "#[path"]
        .iter()
        .flat_map(|m| chunk.match_indices(m).map(|(at, _)| at))
        .collect();
    starts.push(0);
    starts.push(chunk.len());
    starts.sort_unstable();
    starts.dedup();
    let pieces: Vec<&str> = starts.windows(2).map(|w| &chunk[w[0]..w[1]]).collect();
    pieces.into_iter()
}

/// The findings in `text`, the content of the file at `path` (relative to the root).
pub fn check_text(path: &str, text: &str, is_crate: &dyn Fn(&Path) -> bool) -> Vec<Finding> {
    let file = Path::new(path);
    let rust = file.extension().is_some_and(|e| e == "rs");
    let own = depth(file.parent().unwrap_or(Path::new("")));
    let base = if rust {
        depth(crate_dir(file, is_crate))
    } else {
        own
    };
    let mut out = Vec::new();
    let mut flag = |line: usize, why: String| {
        out.push(Finding {
            file: path.to_owned(),
            line,
            why,
        })
    };
    let dockerfile = file
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("Dockerfile"));
    let machine_dirs: Vec<String> = if dockerfile {
        Vec::new()
    } else {
        MACHINE_DIRS.iter().map(|d| format!("/{d}/")).collect()
    };
    let shared = SHARED.join("/");
    for (n, line) in text.lines().enumerate() {
        for dir in &machine_dirs {
            let mut from = 0;
            while let Some(at) = line[from..].find(dir) {
                let at = from + at;
                let before = line[..at].chars().next_back();
                if !before.is_some_and(|c| c.is_alphanumeric() || "._-/".contains(c)) {
                    flag(n + 1, format!("absolute path into {dir}: {}", line.trim()));
                }
                from = at + dir.len();
            }
        }
        if line.contains(&shared) {
            flag(n + 1, format!("the workplace's shared folder: {}", line.trim()));
        }
    }
    // Rust: per statement (a path may be joined over several lines); else per line.
    let mut line_no = 1;
    let chunks: Vec<&str> = if rust {
        text.split_inclusive([';', '{', '}']).collect()
    } else {
        text.split_inclusive('\n').collect()
    };
    for chunk in chunks {
        let file_relative = ["include_str!", "include_bytes!", "include!", "#[path"]
            .iter()
            .any(|m| chunk.contains(m));
        let (n, allowed) = if rust && file_relative {
            // Each include names its own file: the deepest climb counts, not their sum.
            let deepest = split_includes(chunk)
                .map(|piece| ups(piece, rust))
                .max()
                .unwrap_or(0);
            (deepest, own)
        } else {
            (ups(chunk, rust) + if rust { parents(chunk) } else { 0 }, base)
        };
        if n > allowed {
            flag(
                line_no,
                format!("climbs {n} directories from depth {allowed}: {}", chunk.trim()),
            );
        }
        line_no += chunk.matches('\n').count();
    }
    out
}

/// A symbolic link at `path` (relative to the root) pointing at `target`, if it leaves the root.
pub fn check_link(path: &str, target: &Path) -> Option<Finding> {
    let mut level = depth(Path::new(path).parent().unwrap_or(Path::new(""))) as isize;
    let mut escapes = target.is_absolute();
    for c in target.components() {
        match c {
            Component::ParentDir => level -= 1,
            Component::Normal(_) => level += 1,
            _ => {}
        }
        escapes |= level < 0;
    }
    escapes.then(|| Finding {
        file: path.to_owned(),
        line: 0,
        why: format!("symbolic link to {}", target.display()),
    })
}
