//! Which tables a migration moves, and how each is published.

use ferry_model::{TableName, WithoutIdentity};
use ferry_pg::catalog::{Identity, TableInfo};
use ferry_spec::TableSettings;

use crate::Finding;

/// The tables of one migration after the spec's filters and identity policy.
#[derive(Debug, Clone, Default)]
pub struct TableSelection {
    /// Tables whose rows are copied (partitions and plain tables; not partitioned parents).
    pub copied: Vec<TableInfo>,
    /// Tables published for every change (INSERT, UPDATE, DELETE, TRUNCATE).
    pub published: Vec<TableName>,
    /// Tables without identity published for INSERT and TRUNCATE only (`append_only`).
    pub append_only: Vec<TableName>,
    /// Tables left out by `[tables] exclude` or `without_identity = "exclude"`.
    pub excluded: Vec<TableName>,
}

impl TableSelection {
    /// Every table whose schema the migration moves, sorted (the store's invariant).
    pub fn table_names(&self) -> Vec<TableName> {
        let mut names: Vec<TableName> = self.copied.iter().map(|t| t.name.clone()).collect();
        names.sort();
        names
    }
}

/// Applies the spec's filters and identity policy. Returns the selection and the findings
/// (an error finding for identity-less tables under `refuse`).
pub fn select_tables(
    tables: Vec<TableInfo>,
    settings: &TableSettings,
) -> (TableSelection, Vec<Finding>) {
    let mut sel = TableSelection::default();
    let mut without_identity = Vec::new();
    let mut unlogged = Vec::new();
    for t in tables {
        // Excluding a parent excludes its partitions and inheritance children too: pg_dump
        // would otherwise restore children whose parent is missing.
        let excluded = std::iter::once(&t.name)
            .chain(&t.ancestors)
            .any(|name| settings.exclude.iter().any(|p| p.matches(name)));
        if excluded {
            sel.excluded.push(t.name);
            continue;
        }
        if !t.holds_rows() {
            continue;
        }
        if t.unlogged {
            // Unlogged tables cannot be in a publication: copied once, never streamed.
            unlogged.push(t.name.to_string());
            sel.copied.push(t);
            continue;
        }
        if t.identity == Identity::None {
            match settings.without_identity {
                WithoutIdentity::Exclude => {
                    sel.excluded.push(t.name);
                    continue;
                }
                WithoutIdentity::AppendOnly => sel.append_only.push(t.name.clone()),
                WithoutIdentity::Refuse => without_identity.push(t.name.clone()),
            }
        } else {
            sel.published.push(t.name.clone());
        }
        sel.copied.push(t);
    }
    let mut findings = Vec::new();
    if !without_identity.is_empty() {
        let evidence = without_identity
            .iter()
            .map(|t| {
                let q = ferry_pg::quote::table(t);
                format!("{t}: ALTER TABLE {q} REPLICA IDENTITY FULL;  (or add a primary key)")
            })
            .collect();
        findings.push(
            Finding::error(
                "tables.without_identity",
                format!(
                    "{} table(s) have no primary key and no usable replica identity. Publishing \
                     their updates would make the source's own UPDATE and DELETE on them fail, \
                     so Ferry will not",
                    without_identity.len()
                ),
                "give each a primary key or REPLICA IDENTITY FULL (statements above), or set \
                 [tables] without_identity = \"exclude\" (leave them out) or \"append_only\" \
                 (stream inserts only; cutover re-copies any that saw an UPDATE or DELETE)",
            )
            .with_evidence(evidence),
        );
    }
    if !unlogged.is_empty() {
        findings.push(
            Finding::warning(
                "tables.unlogged",
                "unlogged tables are copied once; PostgreSQL cannot stream their later changes",
                "make them logged (ALTER TABLE … SET LOGGED) if their changes must survive \
                 cutover, or exclude them",
            )
            .with_evidence(unlogged),
        );
    }
    (sel, findings)
}
