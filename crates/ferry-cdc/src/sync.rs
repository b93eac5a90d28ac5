//! The change-capture loop: stream from Ferry's slot where the target's origin says apply
//! stopped, decode, apply in groups, and confirm to the source only positions whose target
//! commit is durable, so the source recycles WAL safely and a restart resumes exactly.
//!
//! One [`session`](crate::session) is one pair of connections. When a transient fault
//! ([`CdcError::is_transient`]) breaks it after streaming once worked, the next session starts
//! after a backoff ([`RetryPolicy`]) from the origin's position, read again from the target:
//! whatever the broken session had not committed is sent again, whatever it had is skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_model::Lsn;
use ferry_pg::Connector;
use tokio_util::sync::CancellationToken;

use crate::applier::Mismatch;
use crate::retry::Backoff;
use crate::session::{self, Run};
use crate::{BatchLimits, CdcError, ConfirmedAhead, Recorded, RetryPolicy, SyncControl};

/// What one `sync` run needs besides the two endpoints.
pub struct SyncOptions {
    pub slot: String,
    pub publications: Vec<String>,
    /// The target's replication origin (`origin_name(migration)`).
    pub origin: String,
    pub limits: BatchLimits,
    /// Stop once everything committed on the source before the start has been applied.
    pub until_caught_up: bool,
    /// What the copy recorded, checked before every session streams.
    pub recorded: Recorded,
    pub retry: RetryPolicy,
    /// Where `ferry copy` spooled the change stream (docs/adr/0010-spool-during-copy.md):
    /// applied first, then removed.
    pub spool_dir: Option<PathBuf>,
    /// Shared with a caller that steers the run (the cutover): see [`SyncControl`].
    pub control: Option<Arc<SyncControl>>,
}

/// Where apply stands, reported after each committed group and every second.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncProgress {
    pub applied: Lsn,
    pub transactions: u64,
    /// The source's current WAL position minus what the target reflects (`applied`, or a
    /// later position confirmed while the stream was idle).
    pub lag_bytes: u64,
    /// Age of the last applied commit while changes are pending; 0 when caught up.
    pub lag_seconds: f64,
    /// Online validation so far: rows read back after commit, and those that differed.
    pub verified: u64,
    pub mismatches: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncSummary {
    pub started_at: Lsn,
    pub applied: Lsn,
    pub transactions: u64,
    pub changes: u64,
    /// Source commit time of the last applied transaction (µs since 2000-01-01).
    pub last_commit_time_us: Option<i64>,
    /// Sessions started again after a transient fault.
    pub retries: u32,
    /// Online validation: applied rows read back after commit, and those that differed.
    pub verified: u64,
    pub mismatches: u64,
}

/// What `sync` reports while it runs.
#[derive(Debug)]
pub enum SyncEvent<'a> {
    /// After each committed group and every second.
    Progress(&'a SyncProgress),
    /// A transient fault broke the session; the next one starts after `delay`.
    Retrying {
        /// 1 for the first retry of this episode of faults.
        attempt: u32,
        delay: Duration,
        reason: &'a CdcError,
    },
    /// Streaming works again, from `from` (the target's origin).
    Resumed { from: Lsn },
    /// About to confirm a position past the target's origin, with nothing between the two to
    /// apply (an idle stream, or a group that wrote nothing). Store it before returning: the
    /// next run's position check needs it (see [`Recorded::confirmed_ahead`]). If it cannot
    /// be stored, that check refuses to resume when the slot was left there — safe, never
    /// silent.
    ConfirmedAhead(ConfirmedAhead),
    /// Online validation: a row read back after its group committed is not what was applied.
    Mismatch(&'a Mismatch),
}

/// Runs until `stop` is cancelled or (with `until_caught_up`) the source's changes up to the
/// start are applied, retrying transient faults within `options.retry`. Faults before
/// streaming first worked are reported at once: nothing has worked with this configuration
/// yet, so a mistake is likelier than a passing fault.
pub async fn sync(
    source: &Connector,
    target: &Connector,
    options: &SyncOptions,
    stop: CancellationToken,
    on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<SyncSummary, CdcError> {
    let mut run = Run::new(options);
    // The current episode of faults: when it began, and its waits.
    let mut episode: Option<(Instant, Backoff)> = None;
    loop {
        let applied_before = run.summary.applied;
        let error = match session::run(source, target, options, &stop, &mut run, on_event).await {
            Ok(()) => return Ok(run.summary),
            Err(e) => e,
        };
        if stop.is_cancelled() || !run.streamed_once || !error.is_transient() {
            return Err(error);
        }
        // A session that streamed and applied something, or streamed for a while, ends the
        // episode: the next fault starts a new one with the whole budget.
        let worked = run.session_streamed.is_some_and(|t| {
            run.summary.applied > applied_before || t.elapsed() >= options.retry.max_delay
        });
        if worked {
            episode = None;
        }
        let (since, backoff) =
            episode.get_or_insert_with(|| (Instant::now(), Backoff::new(options.retry)));
        let Some(delay) = backoff.next_delay(since.elapsed()) else {
            if backoff.attempts() == 0 {
                return Err(error);
            }
            return Err(CdcError::GaveUp {
                attempts: backoff.attempts(),
                seconds: since.elapsed().as_secs(),
                last: Box::new(error),
            });
        };
        run.summary.retries += 1;
        on_event(SyncEvent::Retrying {
            attempt: backoff.attempts(),
            delay,
            reason: &error,
        });
        tokio::select! {
            () = stop.cancelled() => return Ok(run.summary),
            () = tokio::time::sleep(delay) => {}
        }
    }
}
