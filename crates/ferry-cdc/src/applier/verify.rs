//! Online validation: a sample of the rows a group wrote is read back on the apply session
//! right after the group's COMMIT (before anything else is sent there, so nothing newer of
//! Ferry's can be in them) and compared with what was applied. A row that is not there, or
//! whose columns differ, is a mismatch: something else wrote the target, or apply is wrong.

use std::collections::HashMap;

use bytes::Bytes;
use ferry_replication::pgoutput::ColumnValue;
use futures_util::future::join_all;
use tokio_postgres::types::ToSql;

use super::Applier;
use crate::fold::RowKey;
use crate::relations::Relation;
use crate::CdcError;

/// At most this many rows of one group are read back.
const MAX_PER_GROUP: usize = 1_000;

/// A row as a group left it.
pub(super) struct Sample {
    rel: Relation,
    values: Vec<ColumnValue>,
}

/// A row read back after commit that is not what was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub table: String,
    /// `(col, …)=(value, …)`.
    pub key: String,
    /// The columns that differ; empty when the row is missing.
    pub columns: Vec<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.columns.is_empty() {
            write!(
                f,
                "{} {}: missing on the target after apply",
                self.table, self.key
            )
        } else {
            write!(
                f,
                "{} {}: column(s) {} differ on the target after apply",
                self.table,
                self.key,
                self.columns.join(", ")
            )
        }
    }
}

fn text(v: &ColumnValue) -> Option<String> {
    match v {
        ColumnValue::Text(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

impl Applier {
    /// Picks every `verify_every`-th row of a table's net changes. A row sampled earlier in
    /// the same group and changed again since (a group may fold a table more than once) has
    /// its sample replaced by the newest image, or dropped when it was deleted: the read-back
    /// after commit sees only the last.
    pub(super) fn pick_samples<'a>(
        &mut self,
        rel: &Relation,
        deleted: &[RowKey],
        rows: impl Iterator<Item = &'a Vec<ColumnValue>> + Clone,
    ) {
        let every = self.limits.verify_every;
        if every == 0 || rel.full_identity || rel.key_columns().next().is_none() {
            return;
        }
        self.refresh_samples(rel, deleted, rows.clone());
        for row in rows {
            self.sample_seen += 1;
            if self.sample_seen.is_multiple_of(every) && self.samples.len() < MAX_PER_GROUP {
                self.samples.push(Sample {
                    rel: rel.clone(),
                    values: row.clone(),
                });
            }
        }
    }

    fn refresh_samples<'a>(
        &mut self,
        rel: &Relation,
        deleted: &[RowKey],
        rows: impl Iterator<Item = &'a Vec<ColumnValue>>,
    ) {
        let mut sampled: HashMap<RowKey, usize> = self
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.rel.qualified == rel.qualified)
            .filter_map(|(i, s)| Some((row_key(rel, &s.values)?, i)))
            .collect();
        if sampled.is_empty() {
            return;
        }
        let mut gone = Vec::new();
        for key in deleted {
            if let Some(i) = sampled.remove(key) {
                gone.push(i);
            }
        }
        for row in rows {
            if let Some(i) = row_key(rel, row).and_then(|k| sampled.get(&k)) {
                self.samples[*i].values = row.clone();
                gone.retain(|g| g != i);
            }
        }
        gone.sort_unstable();
        for i in gone.into_iter().rev() {
            self.samples.remove(i);
        }
    }

    /// Reads the committed group's samples back (all at once, pipelined).
    pub(super) async fn verify_samples(&mut self) -> Result<(), CdcError> {
        let samples = std::mem::take(&mut self.samples);
        if samples.is_empty() {
            return Ok(());
        }
        let reads = samples.iter().map(|s| self.read_back(s));
        for (sample, found) in samples.iter().zip(join_all(reads).await) {
            self.verified += 1;
            let key = key_text(sample);
            let columns: Vec<String> = match found? {
                None => Vec::new(),
                Some(same) => {
                    let differing: Vec<String> = same
                        .iter()
                        .filter(|(_, eq)| !eq)
                        .map(|(name, _)| name.clone())
                        .collect();
                    if differing.is_empty() {
                        continue;
                    }
                    differing
                }
            };
            self.mismatches.push(Mismatch {
                table: sample.rel.display.clone(),
                key,
                columns,
            });
        }
        Ok(())
    }

    /// The sampled row on the target, column by column equal to what was applied or not
    /// (`None`: no such row). Values are compared as their text in this session after the
    /// applied text is cast to the column's type (json has no `=`).
    async fn read_back(&self, s: &Sample) -> Result<Option<Vec<(String, bool)>>, CdcError> {
        let mut params: Vec<Option<String>> = Vec::new();
        let mut compared = Vec::new();
        let mut names = Vec::new();
        for (c, v) in s.rel.columns.iter().zip(&s.values) {
            if matches!(v, ColumnValue::UnchangedToast | ColumnValue::Binary(_)) {
                continue;
            }
            params.push(text(v));
            compared.push(format!(
                "(t.{q})::text IS NOT DISTINCT FROM (${n}::text::{ty})::text",
                q = c.quoted,
                n = params.len(),
                ty = c.target_type
            ));
            names.push(c.quoted.trim_matches('"').to_owned());
        }
        let mut conditions = Vec::new();
        for i in s.rel.key_columns() {
            let c = &s.rel.columns[i];
            params.push(text(&s.values[i]));
            conditions.push(format!(
                "t.{q} = ${n}::text::{ty}",
                q = c.quoted,
                n = params.len(),
                ty = c.target_type
            ));
        }
        let sql = format!(
            "SELECT ARRAY[{}]::bool[] FROM {}{} t WHERE {}",
            if compared.is_empty() {
                "true".to_owned()
            } else {
                compared.join(", ")
            },
            s.rel.only,
            s.rel.qualified,
            conditions.join(" AND ")
        );
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let row = self
            .target
            .query_opt(&sql, &refs)
            .await
            .map_err(ferry_pg::sql_error(format!(
                "reading back an applied row of {}",
                s.rel.display
            )))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let same: Vec<bool> = row.try_get(0).map_err(ferry_pg::sql_error(format!(
            "reading back an applied row of {}",
            s.rel.display
        )))?;
        Ok(Some(names.into_iter().zip(same).collect()))
    }

    /// Mismatches found since the caller last asked, and how many rows were read back in all.
    pub fn take_mismatches(&mut self) -> (Vec<Mismatch>, u64) {
        (std::mem::take(&mut self.mismatches), self.verified)
    }
}

/// The key of a row as the fold keys it (`None` if a key column is not sent as a value).
fn row_key(rel: &Relation, values: &[ColumnValue]) -> Option<RowKey> {
    rel.key_columns()
        .map(|i| match values.get(i)? {
            ColumnValue::Text(b) | ColumnValue::Binary(b) => Some(b.clone()),
            _ => None,
        })
        .collect()
}

fn key_text(s: &Sample) -> String {
    let (names, values): (Vec<String>, Vec<String>) = s
        .rel
        .key_columns()
        .map(|i| {
            let name = s.rel.columns[i].quoted.clone();
            let value = match &s.values[i] {
                ColumnValue::Text(b) => String::from_utf8_lossy(b).into_owned(),
                ColumnValue::Binary(b) => format!("{:?}", Bytes::clone(b)),
                _ => "NULL".to_owned(),
            };
            (name, value)
        })
        .unzip();
    format!("({})=({})", names.join(", "), values.join(", "))
}
