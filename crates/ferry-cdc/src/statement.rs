//! The SQL for one change, from the relation and which columns the change carries. Values
//! travel as text parameters cast to the target column's type, so user types and every
//! built-in type work without knowing their binary forms.

use crate::relations::Relation;

/// Which kind of row change a statement makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Insert,
    Update,
    Delete,
}

/// What a statement binds, in parameter order: indexes into the new tuple, then into the
/// tuple that identifies the row (key or old).
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub sql: String,
    /// Columns of the new tuple bound first (INSERT values or UPDATE SET).
    pub set: Vec<usize>,
    /// Columns of the identifying tuple bound after them (WHERE).
    pub identify: Vec<usize>,
}

fn cast(n: usize, ty: &str) -> String {
    format!("CAST(${n} AS {ty})")
}

/// `INSERT … OVERRIDING SYSTEM VALUE` (identity ALWAYS columns take the source's values).
pub(crate) fn insert(rel: &Relation) -> Shape {
    let cols: Vec<&str> = rel.columns.iter().map(|c| c.quoted.as_str()).collect();
    let values: Vec<String> = rel
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| cast(i + 1, &c.target_type))
        .collect();
    let sql = if cols.is_empty() {
        format!("INSERT INTO {} DEFAULT VALUES", rel.qualified)
    } else {
        format!(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES ({})",
            rel.qualified,
            cols.join(", "),
            values.join(", ")
        )
    };
    Shape {
        sql,
        set: (0..rel.columns.len()).collect(),
        identify: vec![],
    }
}

/// `UPDATE … SET` the columns the change carries (`present`; unchanged TOAST values are left
/// alone, never overwritten), for the row named by `identify_present`.
pub(crate) fn update(rel: &Relation, present: &[bool], identify_present: &[bool]) -> Shape {
    let set: Vec<usize> = (0..rel.columns.len()).filter(|i| present[*i]).collect();
    let assignments: Vec<String> = set
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            format!(
                "{} = {}",
                rel.columns[i].quoted,
                cast(n + 1, &rel.columns[i].target_type)
            )
        })
        .collect();
    let (condition, identify) = row_condition(rel, identify_present, set.len());
    let sql = if assignments.is_empty() {
        // Only unchanged TOAST columns: nothing to write, but the row must exist.
        format!(
            "UPDATE {}{} SET {} = {} WHERE {condition}",
            rel.only,
            rel.qualified,
            first_col(rel),
            first_col(rel)
        )
    } else {
        format!(
            "UPDATE {}{} SET {} WHERE {condition}",
            rel.only,
            rel.qualified,
            assignments.join(", ")
        )
    };
    Shape { sql, set, identify }
}

pub(crate) fn delete(rel: &Relation, identify_present: &[bool]) -> Shape {
    let (condition, identify) = row_condition(rel, identify_present, 0);
    Shape {
        sql: format!(
            "DELETE FROM {}{} WHERE {condition}",
            rel.only, rel.qualified
        ),
        set: vec![],
        identify,
    }
}

fn first_col(rel: &Relation) -> &str {
    rel.columns.first().map_or("ctid", |c| c.quoted.as_str())
}

/// The WHERE clause naming exactly one row. With a key: key columns equal. With
/// `REPLICA IDENTITY FULL`: one row (`ctid … LIMIT 1`, so duplicates change one at a time)
/// whose every carried column matches, compared as the target renders both sides, which also
/// works for types without an equality operator (json, point).
fn row_condition(rel: &Relation, present: &[bool], offset: usize) -> (String, Vec<usize>) {
    if rel.full_identity {
        let identify: Vec<usize> = (0..rel.columns.len()).filter(|i| present[*i]).collect();
        let tests: Vec<String> = identify
            .iter()
            .enumerate()
            .map(|(n, &i)| {
                let c = &rel.columns[i];
                format!(
                    "{}::text IS NOT DISTINCT FROM ({})::text",
                    c.quoted,
                    cast(offset + n + 1, &c.target_type)
                )
            })
            .collect();
        let tests = if tests.is_empty() {
            "true".to_owned()
        } else {
            tests.join(" AND ")
        };
        (
            format!(
                "ctid = (SELECT ctid FROM {}{} WHERE {tests} LIMIT 1)",
                rel.only, rel.qualified
            ),
            identify,
        )
    } else {
        let identify: Vec<usize> = (0..rel.columns.len())
            .filter(|i| rel.columns[*i].key)
            .collect();
        let tests: Vec<String> = identify
            .iter()
            .enumerate()
            .map(|(n, &i)| {
                format!(
                    "{} = {}",
                    rel.columns[i].quoted,
                    cast(offset + n + 1, &rel.columns[i].target_type)
                )
            })
            .collect();
        (tests.join(" AND "), identify)
    }
}
