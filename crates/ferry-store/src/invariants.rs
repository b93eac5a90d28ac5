//! What must not change between the runs of one migration.

use std::collections::BTreeSet;
use std::fmt::Display;

use ferry_model::{Lsn, TableName};
use serde::{Deserialize, Serialize};

/// How many table names a difference lists before it says "and N more".
const LISTED_TABLES: usize = 20;

/// The invariants of a run, recorded by the first run and compared by every later one
/// (pgcopydb's `setup` row). A resume against another source, target, snapshot or table set
/// would mix two runs, so it is refused. Holds no credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInvariants {
    /// The source's `ConnInfo::identity()`: `user@host:port/dbname`.
    pub source: String,
    /// The source cluster's `system_identifier` (pg_control_system()).
    pub source_system_id: String,
    /// The target's `ConnInfo::identity()`.
    pub target: String,
    /// The target cluster's `system_identifier`.
    pub target_system_id: String,
    /// The exported snapshot the copy reads.
    pub snapshot: String,
    /// The logical replication slot created with that snapshot.
    pub slot: String,
    pub publications: Vec<String>,
    /// The slot's consistent point: changes after it come from the stream.
    pub consistent_lsn: Lsn,
    /// The tables in the migration, after exclusions.
    pub tables: Vec<TableName>,
}

impl RunInvariants {
    /// One sentence per difference between the recorded run (`self`) and `other`; empty when
    /// they describe the same run. Lists compare as sets: order does not matter.
    pub fn differences(&self, other: &RunInvariants) -> Vec<String> {
        let mut out = Vec::new();
        let mut field = |what: &str, was: &dyn Display, now: &dyn Display| {
            let (was, now) = (was.to_string(), now.to_string());
            if was != now {
                out.push(format!("{what} was {was}, now {now}"));
            }
        };
        field("source", &self.source, &other.source);
        field(
            "source system identifier",
            &self.source_system_id,
            &other.source_system_id,
        );
        field("target", &self.target, &other.target);
        field(
            "target system identifier",
            &self.target_system_id,
            &other.target_system_id,
        );
        field("snapshot", &self.snapshot, &other.snapshot);
        field("replication slot", &self.slot, &other.slot);
        field(
            "consistent LSN",
            &self.consistent_lsn,
            &other.consistent_lsn,
        );
        let was: BTreeSet<&String> = self.publications.iter().collect();
        let now: BTreeSet<&String> = other.publications.iter().collect();
        if was != now {
            out.push(format!(
                "publications were {}, now {}",
                listed(&was),
                listed(&now)
            ));
        }
        let was: BTreeSet<&TableName> = self.tables.iter().collect();
        let now: BTreeSet<&TableName> = other.tables.iter().collect();
        let added: Vec<_> = now.difference(&was).collect();
        let removed: Vec<_> = was.difference(&now).collect();
        if !added.is_empty() {
            out.push(format!("tables added: {}", capped(&added)));
        }
        if !removed.is_empty() {
            out.push(format!("tables removed: {}", capped(&removed)));
        }
        out
    }
}

fn listed(items: &BTreeSet<&String>) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    let names: Vec<&str> = items.iter().map(|s| s.as_str()).collect();
    names.join(", ")
}

fn capped(tables: &[&&TableName]) -> String {
    let mut text: Vec<String> = tables
        .iter()
        .take(LISTED_TABLES)
        .map(|t| t.to_string())
        .collect();
    if tables.len() > LISTED_TABLES {
        text.push(format!("and {} more", tables.len() - LISTED_TABLES));
    }
    text.join(", ")
}
