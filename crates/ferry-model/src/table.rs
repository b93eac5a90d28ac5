use std::fmt;

use serde::{Deserialize, Serialize};

/// A table's schema-qualified name, unquoted. Quote it through `ferry_pg::quote` before it
/// reaches SQL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

/// Human-readable form (`schema.table`), for messages only: never SQL.
impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// What to do with a table that has neither a primary key nor a usable replica identity.
/// Publishing UPDATE/DELETE for such a table makes the source's own UPDATE and DELETE fail,
/// so Ferry never does that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithoutIdentity {
    /// Stop before creating anything, listing the tables and the fixes.
    #[default]
    Refuse,
    /// Leave such tables out of the migration entirely.
    Exclude,
    /// Publish such tables for INSERT and TRUNCATE only; cutover re-copies any that saw an
    /// UPDATE or DELETE since the snapshot.
    AppendOnly,
}

impl fmt::Display for WithoutIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WithoutIdentity::Refuse => "refuse",
            WithoutIdentity::Exclude => "exclude",
            WithoutIdentity::AppendOnly => "append_only",
        })
    }
}
