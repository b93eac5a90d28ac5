//! Applying what `ferry copy` spooled (docs/adr/0010-spool-during-copy.md): the spool's
//! records go through the applier exactly as the stream's would, from the start of the spool
//! (transactions the target's origin already holds are skipped by the applier, Relation
//! messages are taken either way), and segments are removed once the origin has passed them.
//! When the spool is applied, the target reflects the source through the spool's end: that
//! is recorded as a confirmation ahead if the origin stops short of it, the spool is removed,
//! and the slot streams from there.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_model::Lsn;
use ferry_replication::pgoutput::StreamState;
use ferry_replication::spool::{self, RecordKind, Spool};
use ferry_replication::ReplicationError;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::checks::{self, SpoolCover};
use crate::session::{self, Observer, Run};
use crate::{Applier, CdcError, ConfirmedAhead, SyncEvent, SyncOptions};

/// The spool found for a session (or none).
pub(crate) struct Found {
    dir: Option<PathBuf>,
    spool: Option<Spool>,
}

/// Opens the spool, if the migration has one. A spool that cannot be read is an error only
/// when it is needed (the slot was confirmed past what the target holds); otherwise the slot
/// has every change and the spool is left aside with a warning.
pub(crate) async fn open(
    options: &SyncOptions,
    confirmed: Lsn,
    applied: Lsn,
    ahead: Option<ConfirmedAhead>,
) -> Result<Found, CdcError> {
    let Some(dir) = options.spool_dir.clone() else {
        return Ok(Found {
            dir: None,
            spool: None,
        });
    };
    let spool = match Spool::open(&dir).await {
        Ok(spool) => spool,
        Err(e) if checks::slot_has_the_rest(confirmed, applied, &options.recorded, ahead) => {
            tracing::warn!(error = %e, "ignoring the spool: the slot still has every change it held");
            None
        }
        Err(e) => return Err(damaged(e)),
    };
    // A spool that starts after what the target holds cannot be replayed from there; the
    // position check says whether the slot can do without it.
    let holds = checks::target_holds(applied, &options.recorded);
    if let Some(s) = spool.as_ref().filter(|s| s.start() > holds) {
        tracing::warn!(start = %s.start(), holds = %holds, "the spool starts after the target's position; not replaying it");
    }
    Ok(Found {
        dir: Some(dir),
        spool,
    })
}

impl Found {
    pub(crate) fn cover(&self) -> Option<SpoolCover> {
        self.spool.as_ref().map(|s| SpoolCover {
            start: s.start(),
            end: s.end(),
        })
    }

    pub(crate) fn dir(&self) -> String {
        self.dir
            .as_ref()
            .map_or_else(String::new, |d| d.display().to_string())
    }

    pub(crate) fn is_some(&self) -> bool {
        self.spool.is_some()
    }

    /// Applies the spool past `holds` (what the target holds) and removes it. Returns where
    /// the slot's stream starts: the spool's end (or `holds` without a usable spool); `None`
    /// when `stop` came first (what was applied is committed).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn replay(
        self,
        holds: Lsn,
        applier: &mut Applier,
        run: &mut Run,
        observer: &Observer,
        admin: &Client,
        stop: &CancellationToken,
        on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
    ) -> Result<Option<Lsn>, CdcError> {
        let Some(mut spool) = self.spool.filter(|s| s.start() <= holds) else {
            return Ok(Some(holds));
        };
        let end = spool.end();
        if end > run.position() {
            tracing::info!(from = %holds, to = %end, bytes = spool.bytes(), "applying the changes spooled during the copy");
            if !apply(&mut spool, applier, run, observer, admin, stop, on_event).await? {
                return Ok(None);
            }
        }
        // Every change up to the spool's end is on the target now (the origin may stop
        // short of it: a mark, or transactions on tables outside the publications).
        if run.position() < end {
            run.confirm_ahead(end, None, on_event);
        }
        spool::remove(spool.dir()).await?;
        Ok(Some(end))
    }
}

/// Feeds every record to the applier; false when stopped first.
async fn apply(
    spool: &mut Spool,
    applier: &mut Applier,
    run: &mut Run,
    observer: &Observer,
    admin: &Client,
    stop: &CancellationToken,
    on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<bool, CdcError> {
    let mut records = spool.records();
    let mut decoder: Option<(u32, StreamState)> = None;
    let mut last_report = Instant::now();
    let mut stopped = false;
    while let Some(record) = records.next().await.map_err(damaged)? {
        if !matches!(record.kind, RecordKind::Data | RecordKind::Commit) {
            continue;
        }
        let state = match &mut decoder {
            Some((v, state)) if *v == record.proto_version => state,
            slot => {
                &mut slot
                    .insert((record.proto_version, StreamState::new(record.proto_version)))
                    .1
            }
        };
        let message = state.decode_bytes(&record.payload)?;
        if let Some(c) = applier
            .apply(message)
            .await
            .map_err(CdcError::explain_target)?
        {
            session::record(&c, run, None, observer, on_event).await?;
            spool.remove_through(run.durable).await?;
            if stop.is_cancelled() {
                stopped = true;
                break;
            }
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            let progress = session::measure(admin, run, true).await?;
            on_event(SyncEvent::Progress(&progress));
        }
    }
    if let Some(c) = applier.flush().await.map_err(CdcError::explain_target)? {
        session::record(&c, run, None, observer, on_event).await?;
        spool.remove_through(run.durable).await?;
    }
    Ok(!stopped)
}

fn damaged(e: ReplicationError) -> CdcError {
    match e {
        ReplicationError::SpoolCorrupt { .. } => CdcError::SpoolDamaged {
            detail: e.to_string(),
        },
        e => e.into(),
    }
}
