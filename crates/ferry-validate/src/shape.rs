//! What is compared in one table: its key (from the source), the columns both sides have, and
//! how each column is read so that equal values compare equal and stored differences do not.

use ferry_model::TableName;
use ferry_pg::{quote, sql_error};
use tokio_postgres::Client;

use crate::ValidateError;

/// One column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    /// `format_type` of the column: what values given as text are cast to.
    pub sql_type: String,
    pub type_name: String,
    /// Text-like columns: the collation that orders them.
    pub collation: Option<String>,
}

impl Column {
    /// How the column enters a row's hash and the row comparison. Floats go by their binary
    /// value: their text output changed between majors (PostgreSQL 12), while `-0` and `0`
    /// must still differ. Everything else by its text under the pinned session settings.
    pub fn compared(&self) -> String {
        let c = quote::ident(&self.name);
        match self.type_name.as_str() {
            "float4" => format!("float4send({c})"),
            "float8" => format!("float8send({c})"),
            _ => c,
        }
    }

    /// Whether [`Column::compared`] reads something other than the text shown to users.
    pub fn compared_apart(&self) -> bool {
        matches!(self.type_name.as_str(), "float4" | "float8")
    }
}

/// One table to validate.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    pub table: TableName,
    /// `schema.table`, quoted, with `ONLY` (an inheritance parent's rows are its own).
    pub from: String,
    /// Indexes into `columns` of the key, in key order; empty when the table has none.
    pub key: Vec<usize>,
    /// The columns both sides have, in the source's order.
    pub columns: Vec<Column>,
    /// Key columns whose collation differs between the sides: ordered with `COLLATE "C"`.
    pub collate_c: Vec<bool>,
    /// Columns only one side has (`(name, side)`).
    pub one_sided: Vec<(String, &'static str)>,
    pub est_rows: u64,
    pub pages: u64,
}

impl Shape {
    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.key.iter().map(|&i| &self.columns[i])
    }

    pub fn key_names(&self) -> Vec<String> {
        self.key_columns().map(|c| c.name.clone()).collect()
    }
}

pub(crate) async fn columns(
    client: &Client,
    table: &TableName,
) -> Result<Option<Vec<Column>>, ValidateError> {
    let what = format!("reading the columns of {table}");
    let exists: bool = client
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&quote::table(table)],
        )
        .await
        .map_err(sql_error(what.clone()))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query(include_str!("../sql/columns.sql"), &[&quote::table(table)])
        .await
        .map_err(sql_error(what.clone()))?;
    rows.iter()
        .map(|r| {
            Ok(Column {
                name: r.try_get(0).map_err(sql_error(what.clone()))?,
                sql_type: r.try_get(1).map_err(sql_error(what.clone()))?,
                type_name: r.try_get(2).map_err(sql_error(what.clone()))?,
                collation: r.try_get(3).map_err(sql_error(what.clone()))?,
            })
        })
        .collect::<Result<Vec<_>, ValidateError>>()
        .map(Some)
}

pub(crate) async fn key(
    client: &Client,
    table: &TableName,
    version_num: u32,
) -> Result<Vec<String>, ValidateError> {
    let mut sql = include_str!("../sql/key.sql").to_owned();
    if version_num < 110_000 {
        sql = sql.replace("indnkeyatts", "indnatts");
    }
    let row = client
        .query_opt(&sql, &[&quote::table(table)])
        .await
        .map_err(sql_error(format!("reading the key of {table}")))?;
    Ok(match row {
        Some(r) => r
            .try_get(0)
            .map_err(sql_error(format!("reading the key of {table}")))?,
        None => Vec::new(),
    })
}

/// The shape of `table` from both sides' columns (`None` for the target: not there).
pub(crate) fn shape(
    table: TableName,
    source: Vec<Column>,
    target: &[Column],
    key: &[String],
    (est_rows, pages): (u64, u64),
) -> Shape {
    let mut one_sided = Vec::new();
    let mut columns = Vec::new();
    let mut collate_c = Vec::new();
    for c in source {
        match target.iter().find(|t| t.name == c.name) {
            Some(t) => {
                collate_c.push(t.collation != c.collation);
                columns.push(c);
            }
            None => one_sided.push((c.name, "source")),
        }
    }
    for t in target {
        if !columns.iter().any(|c| c.name == t.name) {
            one_sided.push((t.name.clone(), "target"));
        }
    }
    // The key is usable only when the target has every key column.
    let key_idx: Option<Vec<usize>> = key
        .iter()
        .map(|k| columns.iter().position(|c| &c.name == k))
        .collect();
    let key = key_idx.unwrap_or_default();
    let collate_c = key.iter().map(|&i| collate_c[i]).collect();
    let from = format!("ONLY {}", quote::table(&table));
    Shape {
        table,
        from,
        key,
        columns,
        collate_c,
        one_sided,
        est_rows,
        pages,
    }
}
