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

/// `unnest($1::text[], …)` as `ferry_in(p1, …)`: the run's rows, one array per column,
/// sorted by the key (`sort`: parameter numbers of the key columns, in key order) so the
/// target walks its key index and table in order: fewer pages touched, and near-sequential
/// reads when they are not cached.
fn rows_in(rel: &Relation, n: usize, sort: &[(usize, usize)]) -> String {
    let arrays: Vec<String> = (1..=n).map(|i| format!("${i}::text[]")).collect();
    let names: Vec<String> = (1..=n).map(|i| format!("p{i}")).collect();
    if sort.is_empty() {
        return format!(
            "unnest({}) AS ferry_in({})",
            arrays.join(", "),
            names.join(", ")
        );
    }
    let unnest = format!(
        "unnest({}) AS ferry_u({})",
        arrays.join(", "),
        names.join(", ")
    );
    let order: Vec<String> = sort
        .iter()
        .map(|&(param, column)| {
            format!(
                "CAST(ferry_u.p{param} AS {})",
                rel.columns[column].target_type
            )
        })
        .collect();
    format!(
        "(SELECT * FROM {unnest} ORDER BY {}) AS ferry_in",
        order.join(", ")
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

/// The sort of a statement whose key columns are bound from parameter `first` on.
fn by_key(key: &[usize], first: usize) -> Vec<(usize, usize)> {
    key.iter()
        .enumerate()
        .map(|(n, &k)| (first + n, k))
        .collect()
}

/// Inserts every column (identity ALWAYS columns take the source's values). Binds every
/// column in order.
pub(crate) fn insert(rel: &Relation) -> String {
    let sort: Vec<(usize, usize)> = rel.key_columns().map(|k| (k + 1, k)).collect();
    let cols: Vec<&str> = rel.columns.iter().map(|c| c.quoted.as_str()).collect();
    let values: Vec<String> = (0..rel.columns.len())
        .map(|i| input(i + 1, rel, i))
        .collect();
    format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}",
        rel.qualified,
        cols.join(", "),
        values.join(", "),
        rows_in(rel, rel.columns.len(), &sort)
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
        "UPDATE {}{} AS ferry_row SET {} FROM {} WHERE {}",
        rel.only,
        rel.qualified,
        assignments.join(", "),
        rows_in(rel, set.len() + key.len(), &by_key(key, set.len() + 1)),
        key_match(rel, key, set.len() + 1)
    )
}

/// Deletes the rows named by `key`. Binds `key`.
pub(crate) fn delete(rel: &Relation, key: &[usize]) -> String {
    format!(
        "DELETE FROM {}{} AS ferry_row USING {} WHERE {}",
        rel.only,
        rel.qualified,
        rows_in(rel, key.len(), &by_key(key, 1)),
        key_match(rel, key, 1)
    )
}
