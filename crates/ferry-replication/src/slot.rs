//! Replication commands about the system and slots.

use ferry_model::Lsn;

use crate::{ReplicationConnection, ReplicationError};

/// What `IDENTIFY_SYSTEM` reports.
#[derive(Debug, Clone)]
pub struct SystemIdentity {
    pub system_id: String,
    pub timeline: u32,
    pub xlogpos: Lsn,
}

/// A slot just created with an exported snapshot.
#[derive(Debug, Clone)]
pub struct CreatedSlot {
    pub slot_name: String,
    /// Where decoding of the slot starts: every transaction committed after this point is in
    /// the stream, every one before it is in the snapshot.
    pub consistent_point: Lsn,
    /// The snapshot to import with `SET TRANSACTION SNAPSHOT`; valid while this connection
    /// stays open and runs no other command.
    pub snapshot_name: String,
}

impl ReplicationConnection {
    pub async fn identify_system(&mut self) -> Result<SystemIdentity, ReplicationError> {
        let rows = self
            .simple_query("IDENTIFY_SYSTEM", "IDENTIFY_SYSTEM")
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| ReplicationError::Protocol("IDENTIFY_SYSTEM returned no row".into()))?;
        let field = |name: &str| {
            row.get(name).map(str::to_owned).ok_or_else(|| {
                ReplicationError::Protocol(format!("IDENTIFY_SYSTEM returned no {name}"))
            })
        };
        Ok(SystemIdentity {
            system_id: field("systemid")?,
            timeline: field("timeline")?
                .parse()
                .map_err(|_| ReplicationError::Protocol("bad timeline".into()))?,
            xlogpos: field("xlogpos")?
                .parse()
                .map_err(|e| ReplicationError::Protocol(format!("{e}")))?,
        })
    }

    /// `CREATE_REPLICATION_SLOT … LOGICAL pgoutput EXPORT_SNAPSHOT` (the syntax every server
    /// from 10 to 18 accepts). The caller must keep this connection open and idle for as long
    /// as the snapshot is needed.
    pub async fn create_logical_slot_exporting_snapshot(
        &mut self,
        slot: &str,
    ) -> Result<CreatedSlot, ReplicationError> {
        check_slot_name(slot)?;
        let sql = format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput EXPORT_SNAPSHOT");
        let rows = self
            .simple_query("creating the replication slot", &sql)
            .await?;
        let row = rows.first().ok_or_else(|| {
            ReplicationError::Protocol("CREATE_REPLICATION_SLOT returned no row".into())
        })?;
        let get = |name: &str| {
            row.get(name).map(str::to_owned).ok_or_else(|| {
                ReplicationError::Protocol(format!("CREATE_REPLICATION_SLOT returned no {name}"))
            })
        };
        Ok(CreatedSlot {
            slot_name: get("slot_name")?,
            consistent_point: get("consistent_point")?
                .parse()
                .map_err(|e| ReplicationError::Protocol(format!("{e}")))?,
            snapshot_name: get("snapshot_name")?,
        })
    }
}

/// Slot names are [a-z0-9_] by PostgreSQL's own rule; Ferry builds them from the spec's
/// validated name, and the check here keeps the command text safe regardless.
pub(crate) fn check_slot_name(slot: &str) -> Result<(), ReplicationError> {
    if slot.is_empty()
        || !slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ReplicationError::Protocol(format!(
            "invalid slot name {slot:?}"
        )));
    }
    Ok(())
}
