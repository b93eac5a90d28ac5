//! The crate's error: what is wrong with a spec, located by file, line and key.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// Why a spec could not become a [`Plan`](crate::Plan).
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read the spec {}: {source}; check the path and its permissions", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid spec. Every problem found is listed, one per
    /// line, so an operator fixes them all in one pass.
    #[error("{}", render(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// The key as an operator reads it: `name`, `[copy] jobs`.
    pub key: Option<String>,
    /// What is wrong and, where it helps, what to write instead. Never a dsn's text.
    pub message: String,
}

impl Problem {
    pub(crate) fn at(text: &str, span: Option<Range<usize>>, key: &str, message: String) -> Self {
        Problem {
            line: span.map(|s| line_of(text, s.start)),
            key: Some(key.to_owned()),
            message,
        }
    }

    /// A problem reported by the toml crate (syntax, unknown key, wrong type). Uses the bare
    /// message, never the rendered source line (which may hold a secret).
    pub(crate) fn from_toml(text: &str, error: &toml::de::Error) -> Self {
        let span = error.span();
        let line = span.as_ref().map(|s| line_of(text, s.start));
        let mut message = error.message().trim().to_owned();
        let mut key = span.as_ref().and_then(|s| key_at(text, s.start));
        if let Some(rest) = message.strip_prefix("unknown field ") {
            let field = rest.split('`').nth(1).unwrap_or_default().to_owned();
            let table = span.as_ref().and_then(|s| table_at(text, s.start));
            key = Some(qualified(table.as_deref(), &field));
            message = match rest.split_once(", ") {
                _ if field == "password" => "unknown key; secrets never live in the spec: \
                     remove it and set password_env (or PGPASSWORD, ~/.pgpass)"
                    .to_owned(),
                Some((_, expected)) => format!("unknown key; {expected}"),
                None => "unknown key".to_owned(),
            };
        }
        Problem {
            line,
            key,
            message: plain_type_error(message),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Rewrites serde's type errors for operators: no echoed string (it may be a secret pasted
/// under the wrong key) and no Rust type names.
fn plain_type_error(message: String) -> String {
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        return message;
    };
    let (found, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, ""));
    let found = if found.starts_with("string ") {
        "a string"
    } else {
        found
    };
    let expected = match expected {
        "i64" | "u64" | "usize" => "an integer",
        e if e.starts_with("struct ") => "a table",
        e => e,
    };
    format!("expected {expected}, found {found}")
}

fn render(file: &std::path::Path, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match p.line {
            Some(line) => format!("{} line {line}: {p}", file.display()),
            None => format!("{}: {p}", file.display()),
        })
        .collect();
    lines.join("\n")
}

/// The 1-based line holding byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()
        .get(..end)
        .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
        + 1
}

/// The line holding byte `offset`, up to that offset.
fn line_prefix(text: &str, offset: usize) -> &str {
    let before = text.get(..offset).unwrap_or(text);
    before.rsplit('\n').next().unwrap_or(before)
}

/// The `[table]` that governs byte `offset`, if any. When the offset lies inside a header
/// (`[copy.extra]`), the table is the header's prefix (`copy`).
fn table_at(text: &str, offset: usize) -> Option<String> {
    let prefix = line_prefix(text, offset).trim_start();
    if let Some(inner) = prefix.strip_prefix('[') {
        let parent = inner
            .trim_start_matches('[')
            .trim()
            .trim_end_matches('.')
            .trim();
        return (!parent.is_empty()).then(|| parent.to_owned());
    }
    let before = text.get(..offset).unwrap_or(text);
    before.lines().rev().find_map(|line| {
        let name = line.trim().strip_prefix('[')?.split(']').next()?.trim();
        (!name.starts_with('[')).then(|| name.to_owned())
    })
}

/// `[table] key` for the value at byte `offset`, read from the source line (best effort:
/// the toml crate does not expose the key path).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let (key, _) = line_prefix(text, offset).split_once('=')?;
    let key = key.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if key.is_empty() || !key.chars().all(bare) {
        return None;
    }
    Some(qualified(table_at(text, offset).as_deref(), key))
}

pub(crate) fn qualified(table: Option<&str>, key: &str) -> String {
    match table {
        Some(table) => format!("[{table}] {key}"),
        None => key.to_owned(),
    }
}
