//! While a copy runs: tell the snapshot holder a copy process is alive (heartbeat), and watch
//! what Ferry's slot costs the source — the WAL it holds back — warning as it grows and
//! stopping the copy if PostgreSQL invalidates the slot (`max_slot_wal_keep_size`).

use std::path::PathBuf;
use std::time::Duration;

use ferry_pg::Connector;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::holder;

const HEARTBEAT: Duration = Duration::from_secs(2);
const SLOT_CHECK_EVERY: u32 = 5; // heartbeats, i.e. every 10 s

pub(crate) struct Watch {
    task: JoinHandle<()>,
    lost: watch::Receiver<Option<String>>,
}

impl Watch {
    pub fn start(state_dir: PathBuf, source: Connector, slot: String) -> Watch {
        let (tx, lost) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut warned = 0u8;
            let mut session: Option<Client> = None;
            for beat in 0u32.. {
                if let Err(e) = holder::heartbeat(&state_dir) {
                    tracing::warn!(error = %e, "cannot write the heartbeat");
                }
                if beat % SLOT_CHECK_EVERY == 0 {
                    match check_slot(&source, &mut session, &slot, &mut warned).await {
                        Ok(Some(reason)) => {
                            let _ = tx.send(Some(reason));
                            return;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot check Ferry's slot on the source")
                        }
                    }
                }
                tokio::time::sleep(HEARTBEAT).await;
            }
        });
        Watch { task, lost }
    }

    /// Resolves with the reason once the slot is gone or invalidated; never otherwise.
    pub async fn lost(&mut self) -> String {
        loop {
            if let Some(reason) = self.lost.borrow().clone() {
                return reason;
            }
            if self.lost.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Checks the slot once: `Some(reason)` when it can no longer serve change capture.
async fn check_slot(
    source: &Connector,
    session: &mut Option<Client>,
    slot: &str,
    warned: &mut u8,
) -> Result<Option<String>, ferry_pg::PgError> {
    let client = match session {
        Some(c) if !c.is_closed() => c,
        _ => session.insert(source.connect().await?),
    };
    let row = client
        .query_opt(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8, \
                    to_jsonb(s) ->> 'wal_status', \
                    pg_size_bytes(nullif(current_setting('max_slot_wal_keep_size', true), '-1')) \
               FROM pg_replication_slots s WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(ferry_pg::sql_error("checking Ferry's slot"))?;
    let Some(row) = row else {
        return Ok(Some(format!(
            "replication slot {slot} no longer exists on the source"
        )));
    };
    let retained: Option<i64> = row.try_get(0).unwrap_or(None);
    let status: Option<String> = row.try_get(1).unwrap_or(None);
    let limit: Option<i64> = row.try_get(2).unwrap_or(None);
    if status.as_deref() == Some("lost") {
        return Ok(Some(format!(
            "PostgreSQL invalidated replication slot {slot} (wal_status = lost)"
        )));
    }
    if let (Some(retained), Some(limit)) = (retained, limit) {
        let share = retained as f64 / limit.max(1) as f64;
        let level = if share >= 0.8 {
            2
        } else {
            u8::from(share >= 0.5)
        };
        if level > *warned {
            *warned = level;
            tracing::warn!(
                slot,
                retained_mb = retained / (1024 * 1024),
                limit_mb = limit / (1024 * 1024),
                "Ferry's slot holds {:.0}% of max_slot_wal_keep_size on the source; past 100% PostgreSQL invalidates it",
                share * 100.0
            );
        }
    }
    Ok(None)
}
