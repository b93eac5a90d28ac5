//! What the stream says each relation looks like, joined with the target's catalog: the
//! target's column types (user types have other OIDs there) and quoted names.

use std::collections::HashMap;

use ferry_pg::{quote, sql_error};
use ferry_replication::pgoutput::RelationColumn;
use tokio_postgres::Client;

use crate::CdcError;

/// One column as the stream sends it, with the target's type.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub quoted: String,
    pub key: bool,
    /// `format_type` on the target, e.g. `numeric(30,10)` or `public.mood`.
    pub target_type: String,
}

/// One relation of the stream.
#[derive(Debug, Clone)]
pub(crate) struct Relation {
    /// `"schema"."name"`.
    pub qualified: String,
    /// `schema.name`, for messages.
    pub display: String,
    /// In the stream's order.
    pub columns: Vec<Column>,
    /// `REPLICA IDENTITY FULL`: rows are found by every column of the old row.
    pub full_identity: bool,
    /// `ONLY ` before the name where a change must not reach child tables (the stream names
    /// each table a change belongs to, inheritance children included); empty for a
    /// partitioned table, whose rows live in its partitions.
    pub only: &'static str,
}

impl Relation {
    /// The positions of the replica identity key columns (none with `FULL` or without one).
    pub fn key_columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.key && !self.full_identity)
            .map(|(i, _)| i)
    }
}

#[derive(Default)]
pub(crate) struct RelationCache {
    relations: HashMap<u32, Relation>,
}

impl RelationCache {
    /// Records (or replaces, when a table changed mid-stream) a relation.
    pub async fn define(
        &mut self,
        target: &Client,
        rel_id: u32,
        namespace: &str,
        name: &str,
        replica_identity: u8,
        columns: &[RelationColumn],
    ) -> Result<(), CdcError> {
        let qualified = format!("{}.{}", quote::ident(namespace), quote::ident(name));
        let display = format!("{namespace}.{name}");
        // One row per column, or one row of NULLs for a table without columns; none when
        // the table is missing.
        let rows = target
            .query(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), c.relkind::text \
                   FROM pg_class c \
                   LEFT JOIN pg_attribute a \
                     ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                  WHERE c.oid = to_regclass($1)",
                &[&qualified],
            )
            .await
            .map_err(sql_error(format!(
                "reading the target's columns of {display}"
            )))?;
        let Some(first) = rows.first() else {
            return Err(CdcError::TableMismatch {
                table: display,
                detail: "it does not exist on the target; create it or re-copy the table".into(),
            });
        };
        let relkind: String = first.get(2);
        let rows: Vec<_> = rows
            .iter()
            .filter(|r| r.get::<_, Option<String>>(0).is_some())
            .collect();
        let target_types: HashMap<String, String> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut resolved = Vec::with_capacity(columns.len());
        for c in columns {
            let Some(target_type) = target_types.get(&c.name) else {
                return Err(CdcError::TableMismatch {
                    table: display,
                    detail: format!(
                        "column {} exists on the source but not on the target: add it to the \
                         target table (or re-copy the table)",
                        c.name
                    ),
                });
            };
            resolved.push(Column {
                quoted: quote::ident(&c.name),
                key: c.is_key(),
                target_type: target_type.clone(),
            });
        }
        self.relations.insert(
            rel_id,
            Relation {
                qualified,
                display,
                columns: resolved,
                full_identity: replica_identity == b'f',
                // A partitioned table has no rows of its own: its changes reach its partitions.
                only: if relkind == "p" { "" } else { "ONLY " },
            },
        );
        Ok(())
    }

    pub fn get(&self, rel_id: u32) -> Result<&Relation, CdcError> {
        self.relations
            .get(&rel_id)
            .ok_or(CdcError::UnknownRelation { rel_id })
    }
}
