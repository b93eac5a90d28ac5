//! `ferry sync`: change capture in the foreground, after `ferry copy`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ferry_cdc::{
    origin_name, BatchLimits, ConfirmedAhead, Recorded, RetryPolicy, SyncEvent, SyncOptions,
    SyncProgress,
};
use ferry_store::StateStore;
use tokio_util::sync::CancellationToken;

use crate::cli::SpecArgs;
use crate::session::Session;

/// Where the last confirmation ahead of the target's origin is kept (see
/// `SyncEvent::ConfirmedAhead`).
pub(crate) const CONFIRMED_AHEAD: &str = "confirmed_ahead";

/// The store's event kind for an online validation mismatch.
pub(crate) const ONLINE_MISMATCH: &str = "online_mismatch";

pub struct Flags {
    pub until_caught_up: bool,
    /// Online validation: the share of applied rows read back after commit (0: none).
    pub verify_sample: f64,
    /// How long transient faults are retried.
    pub retry_for: Duration,
}

pub async fn run(args: &SpecArgs, flags: Flags) -> Result<ExitCode> {
    let session = Session::open(args, true)?;
    let id = session.log_command()?;
    let result = sync(&session, &flags).await;
    session.finish_command(
        id,
        &result
            .as_ref()
            .map_or_else(|e| format!("failed: {e}"), |_| "ok".into()),
    );
    result
}

async fn sync(session: &Session, flags: &Flags) -> Result<ExitCode> {
    let until_caught_up = flags.until_caught_up;
    let store = &session.store;
    let mut options = options(session, flags.verify_sample, flags.retry_for)?;
    options.until_caught_up = until_caught_up;
    let stop = CancellationToken::new();
    stop_on_signal(
        stop.clone(),
        "stopping: committing what is applied; `ferry sync` resumes from there",
    );
    store.set_value("phase", "sync")?;
    let started = Instant::now();
    let mut recorder = Recorder::new(store, flags.retry_for, Duration::from_secs(2))?;
    let summary = ferry_cdc::sync(
        &session.source()?,
        &session.target()?,
        &options,
        stop,
        &mut |e| {
            recorder.handle(e);
        },
    )
    .await?;
    let retries = match summary.retries {
        0 => String::new(),
        n => format!(" ({n} retries after faults)"),
    };
    println!(
        "applied {} transactions ({} changes) from {} through {} in {:.1}s{retries}; \
         online validation read back {} rows, {} mismatched",
        summary.transactions,
        summary.changes,
        summary.started_at,
        summary.applied,
        started.elapsed().as_secs_f64(),
        summary.verified,
        summary.mismatches
    );
    Ok(ExitCode::SUCCESS)
}

/// Change capture's options for this migration, from what the copy recorded.
pub(crate) fn options(
    session: &Session,
    verify_sample: f64,
    retry_for: Duration,
) -> Result<SyncOptions> {
    let store = &session.store;
    let Some(inv) = store.invariants()? else {
        bail!("no copy has run for this migration: run `ferry copy SPEC` first; change capture starts where its snapshot ends");
    };
    if store.section("copy")?.is_none_or(|s| s.done_at.is_none()) {
        bail!("the copy has not finished: run `ferry copy SPEC` to finish it first; change capture starts where its snapshot ends");
    }
    let confirmed_ahead = match store.value(CONFIRMED_AHEAD)? {
        Some(text) => match text.parse::<ConfirmedAhead>() {
            Ok(ahead) => Some(ahead),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring an unreadable confirmation in the store");
                None
            }
        },
        None => None,
    };
    Ok(SyncOptions {
        slot: inv.slot.clone(),
        publications: inv.publications.clone(),
        origin: origin_name(&session.plan.name),
        limits: BatchLimits {
            verify_every: verify_every(verify_sample),
            ..BatchLimits::default()
        },
        until_caught_up: false,
        recorded: Recorded {
            source_system_id: inv.source_system_id.clone(),
            target_system_id: inv.target_system_id.clone(),
            consistent_lsn: inv.consistent_lsn,
            confirmed_ahead,
            spooled: store
                .value(ferry_copy::SPOOL_CONFIRMED)?
                .and_then(|v| v.parse().ok()),
        },
        retry: RetryPolicy {
            give_up_after: retry_for,
            ..RetryPolicy::default()
        },
        spool_dir: Some(ferry_copy::spool_dir(&session.plan.state_dir)),
        control: None,
    })
}

/// Cancels `stop` on Ctrl-C or SIGTERM, saying `why`.
pub(crate) fn stop_on_signal(stop: CancellationToken, why: &'static str) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminated => {}
        }
        eprintln!("{why}");
        stop.cancel();
    });
}

/// Records what change capture reports in the store (positions, lag, online validation,
/// confirmations ahead) and prints a progress line at most every `line_every`.
pub(crate) struct Recorder<'a> {
    store: &'a dyn StateStore,
    retry_for: Duration,
    line_every: Duration,
    started: Instant,
    checked_before: u64,
    last_line: Option<Instant>,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(
        store: &'a dyn StateStore,
        retry_for: Duration,
        line_every: Duration,
    ) -> Result<Recorder<'a>> {
        Ok(Recorder {
            store,
            retry_for,
            line_every,
            started: Instant::now(),
            checked_before: store
                .value("online_checked")?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            last_line: None,
        })
    }

    /// Handles one event; hands back the progress, if that is what it was.
    pub(crate) fn handle(&mut self, event: SyncEvent<'_>) -> Option<SyncProgress> {
        let store = self.store;
        match event {
            SyncEvent::Progress(p) => {
                self.progress(p);
                return Some(*p);
            }
            SyncEvent::Retrying {
                attempt,
                delay,
                reason,
            } => {
                // The reason names endpoints by user@host:port/dbname only: never a password.
                eprintln!(
                    "sync: {reason}\nsync: retrying in {:.1} s (attempt {attempt}; gives up after \
                     {} s of faults, see --retry-for)",
                    delay.as_secs_f64(),
                    self.retry_for.as_secs()
                );
            }
            SyncEvent::Resumed { from } => {
                eprintln!("sync: streaming again from {from} (the target's applied position)");
            }
            SyncEvent::Mismatch(m) => {
                eprintln!("sync: online validation: {m}");
                if let Err(e) = store.record_event(ONLINE_MISMATCH, &m.to_string()) {
                    tracing::warn!(error = %e, "cannot record an online validation mismatch");
                }
            }
            SyncEvent::ConfirmedAhead(ahead) => {
                if let Err(e) = store.set_value(CONFIRMED_AHEAD, &ahead.to_string()) {
                    tracing::warn!(error = %e, "cannot record a confirmation ahead of the origin");
                }
            }
        }
        None
    }

    fn progress(&mut self, p: &SyncProgress) {
        for (key, value) in [
            ("applied_lsn", p.applied.to_string()),
            ("lag_bytes", p.lag_bytes.to_string()),
            ("lag_seconds", format!("{:.3}", p.lag_seconds)),
            (
                "online_checked",
                (self.checked_before + p.verified).to_string(),
            ),
            ("sync_transactions", p.transactions.to_string()),
        ] {
            if let Err(e) = self.store.set_value(key, &value) {
                tracing::warn!(error = %e, "cannot record the apply progress");
            }
        }
        if self
            .last_line
            .is_none_or(|t| t.elapsed() >= self.line_every)
        {
            self.last_line = Some(Instant::now());
            let rate = p.transactions as f64 / self.started.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "sync: applied through {} | lag {} bytes, {:.1} s | {} transactions, {rate:.0}/s",
                p.applied, p.lag_bytes, p.lag_seconds, p.transactions
            );
        }
    }
}

/// One row in `1 / sample` is read back (none for 0).
fn verify_every(sample: f64) -> u64 {
    if sample > 0.0 {
        (1.0 / sample.min(1.0)).round() as u64
    } else {
        0
    }
}
