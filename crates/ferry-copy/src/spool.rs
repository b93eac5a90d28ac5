//! Spooling while the copy runs (docs/adr/0010-spool-during-copy.md): the change stream of
//! Ferry's slot goes to `<state dir>/spool/`, each whole transaction fsynced before its end
//! is recorded in the store (`spool_confirmed`) and then confirmed to the source, so the
//! source recycles its WAL during the copy instead of holding all of it until `ferry sync`.
//!
//! Faults of the stream are retried (the slot keeps what the spool lacks, so nothing is lost
//! meanwhile). Only one thing stops the copy: the slot confirmed past what the spool holds
//! (the spool was removed or damaged), because then the changes in between exist nowhere.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_model::Lsn;
use ferry_pg::{sql_error, Connector};
use ferry_replication::pgoutput::{protocol_version_for, StartReplicationOptions};
use ferry_replication::spool::{self, CaptureEnd, CaptureOptions, SpoolWriter};
use ferry_replication::{ReplicationConnection, ReplicationError};
use ferry_store::StateStore;
use tokio_util::sync::CancellationToken;

use crate::CopyError;

/// The store key holding the last position confirmed to the source by the spooler.
pub const SPOOL_CONFIRMED: &str = "spool_confirmed";

/// The store key holding why spooling stopped before the copy ended (a limit reached).
pub const SPOOL_FULL: &str = "spool_full";

/// The free space spooling leaves on the spool's filesystem.
const KEEP_FREE: u64 = 2 << 30;

/// How often the spool is synced and its position confirmed while changes come.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// Segments of this many bytes instead of the default 64 MiB (tests: many small segments).
const SEGMENT_BYTES_ENV: &str = "FERRY_SPOOL_SEGMENT_BYTES";

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The spool directory of a migration.
pub fn spool_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("spool")
}

/// Bytes the migration's spool takes on disk.
pub fn spool_bytes(state_dir: &Path) -> u64 {
    spool::disk_bytes(&spool_dir(state_dir))
}

/// What the spooler needs.
pub(crate) struct Spooler<'a> {
    pub source: &'a Connector,
    pub slot: String,
    pub publications: Vec<String>,
    pub source_version_num: u32,
    pub state_dir: PathBuf,
    /// Where the copy's snapshot ends: a new spool starts there.
    pub consistent_lsn: Lsn,
    pub store: &'a dyn StateStore,
    /// `[copy] max_spool`.
    pub max_bytes: u64,
}

impl Spooler<'_> {
    /// Spools until `stop` is cancelled (then syncs, confirms and ends the stream: `Ok`), or
    /// until the spool is found to lack what the source was told it holds (`Err`). A spool
    /// that reaches `[copy] max_spool` or the disk's reserve stops growing: the slot on the
    /// source keeps the rest of the stream for `ferry sync` (the copy's slot watch guards the
    /// source meanwhile).
    pub async fn run(&self, stop: CancellationToken) -> Result<(), CopyError> {
        let mut delay = FIRST_RETRY;
        loop {
            let error = match self.session(&stop).await {
                Ok(CaptureEnd::Stopped) => return Ok(()),
                Ok(CaptureEnd::Full(limit)) => {
                    tracing::warn!(
                        "spooling stopped: {limit}; the slot on the source keeps the rest of \
                         the change stream until `ferry sync` (the source retains that WAL)"
                    );
                    if let Err(e) = self.store.set_value(SPOOL_FULL, &limit.to_string()) {
                        tracing::warn!(error = %e, "cannot record that the spool is full");
                    }
                    stop.cancelled().await;
                    return Ok(());
                }
                Err(e @ CopyError::SpoolLost { .. }) => return Err(e),
                Err(e) => e,
            };
            if stop.is_cancelled() {
                tracing::warn!(error = %error, "spooling ended with an error; `ferry sync` reads the rest from the slot");
                return Ok(());
            }
            tracing::warn!(
                error = %error,
                retry_in_s = delay.as_secs(),
                "spooling the change stream failed; the slot keeps the changes meanwhile"
            );
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_RETRY);
        }
    }

    async fn session(&self, stop: &CancellationToken) -> Result<CaptureEnd, CopyError> {
        let dir = spool_dir(&self.state_dir);
        let proto = protocol_version_for(self.source_version_num);
        let mut writer = SpoolWriter::open(&dir, proto, self.consistent_lsn)
            .await
            .map_err(lost_if_damaged)?;
        if let Some(bytes) = std::env::var(SEGMENT_BYTES_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
        {
            writer.set_segment_bytes(bytes);
        }
        let admin = self.source.connect().await?;
        let confirmed = slot_confirmed(&admin, &self.slot).await?;
        drop(admin);
        if confirmed > writer.end() {
            return Err(CopyError::SpoolLost {
                detail: format!(
                    "slot {} was confirmed through {confirmed}, but the spool in {} holds \
                     changes only through {}",
                    self.slot,
                    dir.display(),
                    writer.end()
                ),
            });
        }
        let conn = ReplicationConnection::connect(self.source).await?;
        let options = CaptureOptions {
            slot: self.slot.clone(),
            start: StartReplicationOptions {
                proto_version: proto,
                publication_names: self.publications.clone(),
                messages: false,
                streaming: None,
            },
            sync_every: SYNC_EVERY,
            max_bytes: self.max_bytes,
            keep_free: KEEP_FREE,
        };
        let store = self.store;
        let mut record = |lsn: Lsn| match store.set_value(SPOOL_CONFIRMED, &lsn.to_string()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record the spool's position; not confirming it");
                false
            }
        };
        let captured = spool::capture(conn, &mut writer, &options, stop.cancelled(), &mut record)
            .await
            .map_err(lost_if_damaged);
        let closed = writer.close().await.map_err(lost_if_damaged);
        let end = captured?;
        closed?;
        Ok(end)
    }
}

/// Removes the spool (abort, restart, a fresh run).
pub(crate) async fn remove(state_dir: &Path) -> Result<(), CopyError> {
    Ok(spool::remove(&spool_dir(state_dir)).await?)
}

async fn slot_confirmed(admin: &tokio_postgres::Client, slot: &str) -> Result<Lsn, CopyError> {
    let row = admin
        .query_opt(include_str!("../sql/slot_confirmed.sql"), &[&slot])
        .await
        .map_err(sql_error("reading Ferry's slot on the source"))?;
    let text: Option<String> = match row {
        Some(r) => r
            .try_get(0)
            .map_err(sql_error("reading Ferry's slot on the source"))?,
        None => None,
    };
    Ok(text.and_then(|t| t.parse().ok()).unwrap_or_default())
}

fn lost_if_damaged(e: ReplicationError) -> CopyError {
    match e {
        ReplicationError::SpoolCorrupt { .. } => CopyError::SpoolLost {
            detail: e.to_string(),
        },
        e => CopyError::Replication(e),
    }
}
