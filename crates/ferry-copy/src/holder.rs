//! The snapshot holder: a small process of its own that creates Ferry's slot with an
//! exported snapshot and keeps that replication connection open and idle, so the snapshot
//! outlives any one `ferry copy` process. A copy killed with `kill -9` resumes in the same
//! snapshot; the holder lets go when the copy is done, when `ferry abort` says so, or when
//! no copy process has shown a heartbeat for `snapshot_hold_timeout` (a snapshot held
//! forever would hold back vacuum on the source).
//!
//! The two processes talk through files in the state directory:
//! `snapshot.json` (written by the holder once the slot exists), `holder-error` (why it
//! could not), `heartbeat` (milliseconds, rewritten by the copy), `release-snapshot`
//! (asks the holder to stop).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_model::Lsn;
use ferry_pg::Connector;
use ferry_replication::ReplicationConnection;
use serde::{Deserialize, Serialize};

use crate::CopyError;

const INFO: &str = "snapshot.json";
const ERROR: &str = "holder-error";
const HEARTBEAT: &str = "heartbeat";
const RELEASE: &str = "release-snapshot";

/// The snapshot a holder keeps alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub pid: u32,
    pub slot: String,
    pub snapshot: String,
    pub consistent_lsn: Lsn,
}

/// The holder's main loop; runs in the holder process until released.
pub async fn hold(
    connector: &Connector,
    slot: &str,
    state_dir: &Path,
    timeout: Duration,
) -> Result<(), CopyError> {
    let _ = std::fs::remove_file(state_dir.join(RELEASE));
    let _ = std::fs::remove_file(state_dir.join(ERROR));
    heartbeat(state_dir)?;
    let result = create(connector, slot).await;
    let (mut conn, info) = match result {
        Ok(ok) => ok,
        Err(e) => {
            let _ = std::fs::write(state_dir.join(ERROR), e.to_string());
            return Err(e);
        }
    };
    write_atomically(
        &state_dir.join(INFO),
        &serde_json::to_vec(&info).unwrap_or_default(),
    )?;
    tracing::info!(slot, snapshot = %info.snapshot, lsn = %info.consistent_lsn, "holding the snapshot");
    let outcome = loop {
        tokio::select! {
            e = conn.closed() => break Err(CopyError::Replication(e)),
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                if state_dir.join(RELEASE).exists() {
                    break Ok(());
                }
                if heartbeat_age(state_dir) > timeout {
                    tracing::warn!(?timeout, "no copy process alive for the hold timeout: letting the snapshot go");
                    break Ok(());
                }
            }
        }
    };
    let _ = std::fs::remove_file(state_dir.join(INFO));
    let _ = std::fs::remove_file(state_dir.join(RELEASE));
    conn.terminate().await;
    outcome
}

async fn create(
    connector: &Connector,
    slot: &str,
) -> Result<(ReplicationConnection, SnapshotInfo), CopyError> {
    let mut conn = ReplicationConnection::connect(connector).await?;
    let created = conn.create_logical_slot_exporting_snapshot(slot).await?;
    let info = SnapshotInfo {
        pid: std::process::id(),
        slot: created.slot_name,
        snapshot: created.snapshot_name,
        consistent_lsn: created.consistent_point,
    };
    Ok((conn, info))
}

/// The snapshot a live holder keeps, if any.
pub fn current(state_dir: &Path) -> Option<SnapshotInfo> {
    let bytes = std::fs::read(state_dir.join(INFO)).ok()?;
    let info: SnapshotInfo = serde_json::from_slice(&bytes).ok()?;
    pid_alive(info.pid).then_some(info)
}

/// Waits until the holder started as `child` has its snapshot, or says why it has none.
pub async fn wait_for_snapshot(
    state_dir: &Path,
    child: &mut std::process::Child,
) -> Result<SnapshotInfo, CopyError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(info) = current(state_dir) {
            return Ok(info);
        }
        if let Ok(msg) = std::fs::read_to_string(state_dir.join(ERROR)) {
            return Err(CopyError::Tool {
                what: "creating the replication slot".into(),
                detail: msg,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(CopyError::Tool {
                what: "the snapshot holder".into(),
                detail: format!(
                    "it exited ({status}) before creating the slot; see {}",
                    log_path(state_dir).display()
                ),
            });
        }
        if tokio::time::Instant::now() > deadline {
            return Err(CopyError::Tool {
                what: "creating the replication slot".into(),
                detail: "no snapshot after 120 s: long-running transactions on the source delay a slot's \
                         consistent point; look at pg_stat_activity for old transactions"
                    .into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Where the holder writes its log.
pub fn log_path(state_dir: &Path) -> PathBuf {
    state_dir.join("snapshot-holder.log")
}

/// Tells the holder a copy process is alive.
pub fn heartbeat(state_dir: &Path) -> Result<(), CopyError> {
    write_atomically(
        &state_dir.join(HEARTBEAT),
        now_millis().to_string().as_bytes(),
    )
}

/// Asks the holder to let the snapshot go and waits (up to 10 s) until it has.
pub async fn release(state_dir: &Path) -> Result<(), CopyError> {
    let Some(info) = current(state_dir) else {
        return Ok(());
    };
    std::fs::write(state_dir.join(RELEASE), b"")
        .map_err(CopyError::io("asking the snapshot holder to stop"))?;
    for _ in 0..100 {
        if !pid_alive(info.pid) || !state_dir.join(INFO).exists() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(CopyError::Tool {
        what: "releasing the snapshot".into(),
        detail: format!(
            "the snapshot holder (pid {}) did not stop within 10 s; stop it with kill {}",
            info.pid, info.pid
        ),
    })
}

fn heartbeat_age(state_dir: &Path) -> Duration {
    let last = std::fs::read_to_string(state_dir.join(HEARTBEAT))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Duration::from_millis(now_millis().saturating_sub(last))
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// True while a process with this pid exists and is not a zombie.
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CopyError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(CopyError::io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(CopyError::io(format!("writing {}", path.display())))
}
