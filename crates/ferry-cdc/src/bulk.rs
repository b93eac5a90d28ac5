//! The set-based statements that apply a folded run: one INSERT, one DELETE and one UPDATE
//! per shape (which columns the run wrote) for each table, every value bound as a `text[]`
//! parameter, unnested and cast to the target column's type like the one-row statements.

use crate::relations::Relation;

/// Which set-based statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BulkOp {
    Insert,
    Update,
    Delete,
}

/// `unnest($1::text[], …) AS ferry_in(p1, …)`: the run's rows, one array per column.
fn unnest(n: usize) -> String {
    let arrays: Vec<String> = (1..=n).map(|i| format!("${i}::text[]")).collect();
    let names: Vec<String> = (1..=n).map(|i| format!("p{i}")).collect();
    format!(
        "unnest({}) AS ferry_in({})",
        arrays.join(", "),
        names.join(", ")
    )
}

fn input(n: usize, rel: &Relation, column: usize) -> String {
    format!("CAST(ferry_in.p{n} AS {})", rel.columns[column].target_type)
}

/// `ferry_row.k = CAST(ferry_in.pN AS …) AND …` for the key columns bound from `first`.
fn key_match(rel: &Relation, key: &[usize], first: usize) -> String {
    let tests: Vec<String> = key
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            format!(
                "ferry_row.{} = {}",
                rel.columns[i].quoted,
                input(first + n, rel, i)
            )
        })
        .collect();
    tests.join(" AND ")
}

/// Inserts every column (identity ALWAYS columns take the source's values). Binds every
/// column in order.
pub(crate) fn insert(rel: &Relation) -> String {
    let cols: Vec<&str> = rel.columns.iter().map(|c| c.quoted.as_str()).collect();
    let values: Vec<String> = (0..rel.columns.len())
        .map(|i| input(i + 1, rel, i))
        .collect();
    format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}",
        rel.qualified,
        cols.join(", "),
        values.join(", "),
        unnest(rel.columns.len())
    )
}

/// Sets the `set` columns of the rows named by `key`. Binds `set`, then `key`.
pub(crate) fn update(rel: &Relation, set: &[usize], key: &[usize]) -> String {
    let mut assignments: Vec<String> = set
        .iter()
        .enumerate()
        .map(|(n, &i)| format!("{} = {}", rel.columns[i].quoted, input(n + 1, rel, i)))
        .collect();
    if assignments.is_empty() {
        // Only unsent TOAST values besides the key: nothing to write, but the row must exist.
        if let Some(&k) = key.first() {
            let col = &rel.columns[k].quoted;
            assignments.push(format!("{col} = ferry_row.{col}"));
        }
    }
    format!(
        "UPDATE {} AS ferry_row SET {} FROM {} WHERE {}",
        rel.qualified,
        assignments.join(", "),
        unnest(set.len() + key.len()),
        key_match(rel, key, set.len() + 1)
    )
}

/// Deletes the rows named by `key`. Binds `key`.
pub(crate) fn delete(rel: &Relation, key: &[usize]) -> String {
    format!(
        "DELETE FROM {} AS ferry_row USING {} WHERE {}",
        rel.qualified,
        unnest(key.len()),
        key_match(rel, key, 1)
    )
}
