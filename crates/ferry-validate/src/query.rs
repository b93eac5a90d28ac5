//! The SQL each side runs. Identifiers come from the catalog and are quoted; values (range
//! bounds, keys) are always parameters, given as text and cast to the column's type.

use ferry_pg::quote;

use crate::shape::Shape;

/// A key's values as text, in key order (key columns are NOT NULL).
pub(crate) type Key = Vec<String>;

/// How a row's text becomes a 64-bit hash; the same on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashFn {
    /// `hashtextextended` (PostgreSQL 11 and later): fast.
    Extended,
    /// The first 64 bits of `md5` (PostgreSQL 10 on either side).
    Md5,
}

impl HashFn {
    pub fn for_versions(source: u32, target: u32) -> HashFn {
        if source.min(target) >= 110_000 {
            HashFn::Extended
        } else {
            HashFn::Md5
        }
    }

    fn apply(self, text: &str) -> String {
        match self {
            HashFn::Extended => format!("hashtextextended(({text}) COLLATE \"C\", 0)"),
            HashFn::Md5 => format!("('x' || left(md5({text}), 16))::bit(64)::int8"),
        }
    }
}

/// The compared values of a row as one text (a row constructor: NULL and '' differ).
fn row_text(shape: &Shape) -> String {
    let parts: Vec<String> = shape.columns.iter().map(|c| c.compared()).collect();
    format!("ROW({})::text", parts.join(", "))
}

pub(crate) fn row_hash(shape: &Shape, hash: HashFn) -> String {
    hash.apply(&row_text(shape))
}

/// Key column `i` as ordered by both sides.
fn key_col(shape: &Shape, i: usize) -> String {
    let c = &shape.columns[shape.key[i]];
    let name = quote::ident(&c.name);
    if shape.collate_c[i] {
        format!("{name} COLLATE \"C\"")
    } else {
        name
    }
}

fn key_list(shape: &Shape) -> String {
    let cols: Vec<String> = (0..shape.key.len()).map(|i| key_col(shape, i)).collect();
    cols.join(", ")
}

/// `($n::text::type, ...)` for the key, parameters from `first`.
fn key_params(shape: &Shape, first: usize) -> String {
    let vals: Vec<String> = shape
        .key_columns()
        .enumerate()
        .map(|(i, c)| {
            let collate = if shape.collate_c[i] {
                " COLLATE \"C\""
            } else {
                ""
            };
            format!("(${}::text::{}){collate}", first + i, c.sql_type)
        })
        .collect();
    vals.join(", ")
}

/// `WHERE` for a key range `[lo, hi)`, either end open, with its parameters.
pub(crate) fn range(shape: &Shape, lo: Option<&Key>, hi: Option<&Key>) -> (String, Vec<String>) {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    let keys = format!("({})", key_list(shape));
    if let Some(lo) = lo {
        conds.push(format!(
            "{keys} >= ({})",
            key_params(shape, params.len() + 1)
        ));
        params.extend(lo.iter().cloned());
    }
    if let Some(hi) = hi {
        conds.push(format!(
            "{keys} < ({})",
            key_params(shape, params.len() + 1)
        ));
        params.extend(hi.iter().cloned());
    }
    if conds.is_empty() {
        (String::new(), params)
    } else {
        (format!(" WHERE {}", conds.join(" AND ")), params)
    }
}

/// Count and hash sum of the rows in a range (the whole table for a keyless one).
pub(crate) fn chunk_hash(shape: &Shape, hash: HashFn, filter: &str) -> String {
    format!(
        "SELECT count(*)::int8, coalesce(sum({}), 0)::text FROM {}{filter}",
        row_hash(shape, hash),
        shape.from
    )
}

/// One key from each block of a block sample, in key order (where the first ranges are cut).
/// The output columns are renamed so that `ORDER BY` sorts by the key's type, not its text.
pub(crate) fn sample(shape: &Shape, percent: f64) -> String {
    let names: Vec<String> = shape.key_columns().map(|c| quote::ident(&c.name)).collect();
    let texts: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("s.{n}::text AS \"ferry k{i}\""))
        .collect();
    format!(
        "SELECT {} FROM (SELECT DISTINCT ON ((ctid::text::point)[0]) {} \
         FROM {} TABLESAMPLE SYSTEM ({percent})) s ORDER BY {}",
        texts.join(", "),
        names.join(", "),
        shape.from,
        key_list(shape)
    )
}

/// Every `$step`-th key of a range, in key order (where a differing range is split). The
/// step is the last parameter.
pub(crate) fn split(shape: &Shape, filter: &str, step_param: usize) -> String {
    let names: Vec<String> = shape.key_columns().map(|c| quote::ident(&c.name)).collect();
    let texts: Vec<String> = names.iter().map(|n| format!("s.{n}::text")).collect();
    format!(
        "SELECT {} FROM (SELECT {}, row_number() OVER (ORDER BY {}) AS \"ferry rn\" \
         FROM {}{filter}) s WHERE s.\"ferry rn\" % ${step_param}::int8 = 0 \
         ORDER BY s.\"ferry rn\"",
        texts.join(", "),
        names.join(", "),
        key_list(shape),
        shape.from
    )
}

/// The columns fetched for rows: every column's text, then the compared form of the
/// columns compared apart from their text.
fn fetched(shape: &Shape) -> String {
    let mut cols: Vec<String> = shape
        .columns
        .iter()
        .map(|c| format!("{}::text", quote::ident(&c.name)))
        .collect();
    cols.extend(
        shape
            .columns
            .iter()
            .filter(|c| c.compared_apart())
            .map(|c| format!("{}::text", c.compared())),
    );
    if cols.is_empty() {
        "1".to_owned()
    } else {
        cols.join(", ")
    }
}

/// The rows of a range.
pub(crate) fn fetch(shape: &Shape, filter: &str) -> String {
    format!("SELECT {} FROM {}{filter}", fetched(shape), shape.from)
}

/// The rows whose keys are given as one text array per key column ($1, $2, ...).
pub(crate) fn fetch_keys(shape: &Shape) -> String {
    let casts: Vec<String> = shape
        .key_columns()
        .enumerate()
        .map(|(i, c)| format!("u.k{i}::{}", c.sql_type))
        .collect();
    let arrays: Vec<String> = (1..=shape.key.len())
        .map(|i| format!("${i}::text[]"))
        .collect();
    let aliases: Vec<String> = (0..shape.key.len()).map(|i| format!("k{i}")).collect();
    let plain: Vec<String> = shape.key_columns().map(|c| quote::ident(&c.name)).collect();
    format!(
        "SELECT {} FROM {} WHERE ({}) IN (SELECT {} FROM unnest({}) AS u({}))",
        fetched(shape),
        shape.from,
        plain.join(", "),
        casts.join(", "),
        arrays.join(", "),
        aliases.join(", ")
    )
}

/// Rows of a keyless table whose hash falls in the given buckets (`$1::int8[]`, bucket
/// count `$2`).
pub(crate) fn fetch_buckets(shape: &Shape, hash: HashFn) -> String {
    format!(
        "SELECT {} FROM {} WHERE ({} & ($2::int8 - 1)) = ANY($1::int8[])",
        fetched(shape),
        shape.from,
        row_hash(shape, hash)
    )
}

/// Count and hash sum per bucket of a keyless table (bucket count `$1`, a power of two).
pub(crate) fn bucket_hashes(shape: &Shape, hash: HashFn) -> String {
    format!(
        "SELECT h & ($1::int8 - 1), count(*)::int8, sum(h)::text \
         FROM (SELECT {} AS h FROM {}) s GROUP BY 1",
        row_hash(shape, hash),
        shape.from
    )
}
