//! The phases that run while change capture streams: sync (until the lag is low), validate,
//! ready (the gate, the WAL guard, requests from `ferry cutover` and `ferry rollback`), and
//! the cutover itself. Change capture and the driver run side by side in one task; the
//! driver alone stops change capture, so a signal never cuts a cutover in half.

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ferry_cdc::SyncControl;
use ferry_flow::source::{self, SlotWal};
use ferry_flow::{CutoverDecision, Gates, LagSample, Phase, Readiness, ValidationFact, WalVerdict};
use ferry_store::{SqliteStore, StateStore};
use tokio_util::sync::CancellationToken;

use super::journal::{failpoint, keys, now_ms, Journal};
use super::{cutover, report, rollback, Flags};
use crate::commands::sync::{self, Recorder};
use crate::commands::validate;
use crate::session::Session;

/// How often the driver looks at the gate, the requests and the signals.
const TICK: Duration = Duration::from_millis(100);
/// How long change capture may take to stop once asked.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How often the WAL Ferry's slot retains on the source is measured.
const WAL_EVERY: Duration = Duration::from_secs(5);

pub(super) async fn run(
    session: &Session,
    journal: &Journal<'_>,
    phase: Phase,
    flags: &Flags,
) -> Result<ExitCode> {
    let control = Arc::new(SyncControl::default());
    let mut options = sync::options(session, flags.verify_sample, flags.retry_for)?;
    options.control = Some(control.clone());
    let interrupt = CancellationToken::new();
    sync::stop_on_signal(
        interrupt.clone(),
        "stopping: what is applied is committed; `ferry migrate SPEC` resumes from here",
    );
    let stop = CancellationToken::new();
    let ended = CancellationToken::new();
    let lag = Arc::new(Mutex::new(Vec::<LagSample>::new()));
    let keep_ms = i64::try_from(session.plan.sync.sustained.as_millis())
        .unwrap_or(i64::MAX / 2)
        .saturating_add(60_000);
    // Change capture runs on a thread (and runtime) of its own, so a busy stream never
    // starves the driver or the validation beside it.
    let job = Capture {
        source: session.source()?,
        target: session.target()?,
        options,
        store: SqliteStore::open(&session.plan.state_dir)?,
        retry_for: flags.retry_for,
        keep_ms,
    };
    let (tokens, samples) = ((stop.clone(), ended.clone()), Arc::clone(&lag));
    let sync_task = tokio::task::spawn_blocking(move || {
        let (stop, ended) = tokens;
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(capture(job, stop, ended, samples)),
            Err(e) => {
                ended.cancel();
                Err(anyhow::anyhow!(
                    "cannot start change capture's runtime: {e}"
                ))
            }
        }
    });
    let mut driver = Driver {
        session,
        journal,
        control: &control,
        stop: &stop,
        ended: &ended,
        interrupt: &interrupt,
        lag: &lag,
        wal: None,
        last_wal_warning: None,
    };
    let drive = async {
        let result = driver.drive(phase).await;
        stop.cancel();
        result
    };
    let driven = drive.await;
    let synced = match sync_task.await {
        Ok(r) => r,
        Err(e) => Err(anyhow::anyhow!("change capture ended abnormally: {e}")),
    };
    match (synced, driven) {
        (_, Ok(code)) => Ok(code),
        (Err(e), Err(driven)) if driven.downcast_ref::<SyncStopped>().is_some() => {
            let fix = "fix the cause, then run `ferry migrate SPEC` again: it resumes from here";
            journal.error(journal.phase()?, &e.to_string(), fix);
            Err(e)
        }
        (_, Err(e)) => Err(e),
    }
}

/// What the change-capture task owns.
struct Capture {
    source: ferry_pg::Connector,
    target: ferry_pg::Connector,
    options: ferry_cdc::SyncOptions,
    store: SqliteStore,
    retry_for: Duration,
    keep_ms: i64,
}

/// Change capture until `stop` (plus a grace), recording progress and lag samples.
/// `Ok(None)`: abandoned after the grace.
async fn capture(
    c: Capture,
    stop: CancellationToken,
    ended: CancellationToken,
    lag: Arc<Mutex<Vec<LagSample>>>,
) -> Result<Option<ferry_cdc::SyncSummary>> {
    let result = async {
        let mut recorder = Recorder::new(&c.store, c.retry_for, Duration::from_secs(10))?;
        let mut on_event = |e: ferry_cdc::SyncEvent<'_>| {
            if let Some(p) = recorder.handle(e) {
                let now = now_ms();
                let mut lag = lag.lock().unwrap_or_else(PoisonError::into_inner);
                lag.push(LagSample {
                    at_ms: now,
                    lag_seconds: p.lag_seconds,
                });
                lag.retain(|s| now - s.at_ms <= c.keep_ms);
            }
        };
        let sync = ferry_cdc::sync(
            &c.source,
            &c.target,
            &c.options,
            stop.clone(),
            &mut on_event,
        );
        // Asked to stop, change capture commits what it applied; a target that blocks that
        // (a lock held there) must not keep Ferry from stopping: past the grace, the open
        // target transaction is dropped (rolled back; the origin says where to resume).
        let grace = async {
            stop.cancelled().await;
            tokio::time::sleep(STOP_GRACE).await;
        };
        let result = tokio::select! {
            r = sync => Some(r),
            () = grace => None,
        };
        if result.is_none() {
            Journal::new(&c.store).event(
                "sync",
                &format!(
                    "change capture did not stop within {} s (is the target blocked?): its \
                     open transaction was abandoned and rolls back; a resume starts from what \
                     the target committed",
                    STOP_GRACE.as_secs()
                ),
            );
        }
        Ok::<_, anyhow::Error>(result.transpose()?)
    }
    .await;
    ended.cancel();
    result
}

/// Why the driver stopped before the migration ended.
#[derive(Debug, Clone, Copy)]
pub(super) enum Halt {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// Rolled back on request.
    RolledBack,
}

pub(super) struct Driver<'a> {
    pub session: &'a Session,
    pub journal: &'a Journal<'a>,
    pub control: &'a SyncControl,
    pub stop: &'a CancellationToken,
    pub ended: &'a CancellationToken,
    interrupt: &'a CancellationToken,
    lag: &'a Mutex<Vec<LagSample>>,
    wal: Option<(Instant, SlotWal)>,
    last_wal_warning: Option<Instant>,
}

impl Driver<'_> {
    async fn drive(&mut self, phase: Phase) -> Result<ExitCode> {
        match self.phases(phase).await {
            Ok(code) => Ok(code),
            Err(e) => {
                if let Some(halt) = e.downcast_ref::<HaltError>() {
                    return Ok(match halt.0 {
                        Halt::Interrupted => ExitCode::from(130),
                        Halt::RolledBack => ExitCode::SUCCESS,
                    });
                }
                Err(e)
            }
        }
    }

    async fn phases(&mut self, phase: Phase) -> Result<ExitCode> {
        let journal = self.journal;
        if phase <= Phase::Sync && !journal.is_done(Phase::Sync)? {
            journal.enter(Phase::Sync)?;
            self.until_lag_is_low().await?;
            journal.finish(Phase::Sync)?;
            failpoint("sync");
        }
        if phase <= Phase::Validate && !journal.is_done(Phase::Validate)? {
            journal.enter(Phase::Validate)?;
            let differences = self.validate().await?;
            if differences > 0 {
                let message = format!(
                    "validation found {differences} difference(s) between source and target \
                     (listed above and by `ferry status SPEC`)"
                );
                journal.error(
                    Phase::Validate,
                    &message,
                    "find why they differ (another writer on the target?), fix it, then run \
                     `ferry migrate SPEC` again: it validates again; or `ferry rollback SPEC`",
                );
                bail!("{message}: the migration stays in phase validate");
            }
            journal.finish(Phase::Validate)?;
            failpoint("validate");
        }
        journal.enter(Phase::Ready)?;
        self.until_go().await?;
        journal.finish(Phase::Ready)?;
        failpoint("ready");
        match cutover::run(self).await {
            Ok(done) => {
                report::write_and_print(self.session, Some(&done))?;
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(e),
        }
    }

    /// The newest lag measured.
    pub(super) fn lag_now(&self) -> Option<f64> {
        self.lag
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .map(|s| s.lag_seconds)
    }

    async fn until_lag_is_low(&mut self) -> Result<()> {
        let max = self.session.plan.sync.max_lag.as_secs_f64();
        loop {
            self.tick(Phase::Sync).await?;
            if self.lag_now().is_some_and(|l| l < max) {
                return Ok(());
            }
            tokio::time::sleep(TICK).await;
        }
    }

    /// A full validation while change capture runs (its target reads fenced by what was
    /// applied). Returns the differences found.
    async fn validate(&mut self) -> Result<usize> {
        let source = self.session.source()?.connect().await?;
        let activity = source::table_activity(&source).await?;
        let flags = validate::Flags {
            tables: Vec::new(),
            json: false,
            jobs: 2,
            rows_per_second: None,
            // Rows that keep changing are re-checked inside the cutover pause: no long settling.
            settle_for: Duration::from_secs(3),
            recheck_after: Duration::from_millis(250),
            max_differences: 1000,
            wait_for_sync: Duration::from_secs(60),
        };
        let report = tokio::select! {
            r = validate::validate(self.session, &flags) => r?,
            () = self.ended.cancelled() => bail!("change capture stopped during validation (above)"),
            () = self.interrupt.cancelled() => return Err(HaltError(Halt::Interrupted).into()),
        };
        validate::print(&report);
        self.journal.set(
            keys::ACTIVITY_AT_VALIDATION,
            &serde_json::to_string(&activity)?,
        )?;
        self.journal.event(
            "validation",
            &format!(
                "validation: {}: {} table(s), {} difference(s), {} unsettled, {:.1} s",
                report.result,
                report.tables.len(),
                report.differences.len(),
                report.unsettled.len(),
                report.seconds
            ),
        );
        Ok(report.differences.len())
    }

    /// The `ready` gate: waits until the decision is to cut over.
    async fn until_go(&mut self) -> Result<()> {
        let plan = &self.session.plan;
        let gates = Gates {
            max_lag: plan.sync.max_lag,
            sustained: plan.sync.sustained,
        };
        let approval = match plan.cutover.approval {
            ferry_spec::Approval::Auto => ferry_flow::Approval::Auto,
            ferry_spec::Approval::Manual => ferry_flow::Approval::Manual,
        };
        let mut approved: Option<String> = None;
        let mut said: Option<(Vec<String>, Instant)> = None;
        loop {
            let request = self.tick(Phase::Ready).await?;
            let readiness = self.readiness(&gates)?;
            if request.is_some() {
                // Approved: it goes as soon as the gate is open.
                approved = request;
            }
            match ferry_flow::cutover(&readiness, approval, approved.is_some()) {
                CutoverDecision::Go => {
                    if let Some(id) = approved {
                        self.journal.set(keys::ANSWER, &format!("{id}:going"))?;
                    }
                    return Ok(());
                }
                CutoverDecision::Wait(why) => {
                    let repeat = said
                        .as_ref()
                        .is_some_and(|(w, at)| *w == why && at.elapsed() < Duration::from_secs(30));
                    if !repeat {
                        eprintln!("migrate: waiting: {}", why.join("; "));
                        if let Some(id) = &approved {
                            answer(self.journal, id, &format!("waiting: {}", why.join("; ")));
                        }
                        said = Some((why, Instant::now()));
                    }
                }
            }
            tokio::time::sleep(TICK).await;
        }
    }

    fn readiness(&self, gates: &Gates) -> Result<Readiness> {
        let validation = self
            .session
            .store
            .last_validation()?
            .map(|v| ValidationFact {
                finished_at_ms: v.finished_at,
                differences: v.differences,
                unsettled: v.unsettled,
            });
        let lag = self.lag.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(ferry_flow::ready(
            &lag,
            now_ms(),
            validation.as_ref(),
            gates,
        ))
    }

    /// What every waiting loop checks: change capture still runs, no signal, the source's
    /// WAL is safe, and requests. A rollback request is carried out here; a cutover request's
    /// id is handed back.
    async fn tick(&mut self, phase: Phase) -> Result<Option<String>> {
        if self.ended.is_cancelled() {
            return Err(SyncStopped.into());
        }
        if self.interrupt.is_cancelled() {
            return Err(HaltError(Halt::Interrupted).into());
        }
        self.guard_wal().await?;
        let Some(request) = self.journal.value(keys::REQUEST)? else {
            return Ok(None);
        };
        let Some((id, what)) = request.split_once(':') else {
            return Ok(None);
        };
        self.journal.store.set_value(keys::REQUEST, "")?;
        match what {
            "rollback" => {
                self.stop_sync().await;
                match rollback::roll_back(self.session, self.journal).await {
                    Ok(()) => {
                        answer(self.journal, id, "ok: rolled back");
                        Err(HaltError(Halt::RolledBack).into())
                    }
                    Err(e) => {
                        answer(self.journal, id, &format!("failed: {e:#}"));
                        Err(e)
                    }
                }
            }
            "cutover" if phase == Phase::Ready => Ok(Some(id.to_owned())),
            "cutover" => {
                answer(
                    self.journal,
                    id,
                    &format!(
                        "refused: the migration is in phase {phase}, not ready: it cuts over \
                         only from `ready` (`ferry status SPEC` shows why not yet)"
                    ),
                );
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Stops change capture and waits until it ended.
    pub(super) async fn stop_sync(&self) {
        self.stop.cancel();
        self.ended.cancelled().await;
    }

    /// The WAL guard (`ferry_flow::wal_guard`) every few seconds.
    async fn guard_wal(&mut self) -> Result<()> {
        if self
            .wal
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < WAL_EVERY)
        {
            return Ok(());
        }
        let Some(inv) = self.session.store.invariants()? else {
            return Ok(());
        };
        let client = self.session.source()?.connect().await?;
        let Some(now) = source::slot_wal(&client, &inv.slot).await? else {
            bail!(
                "Ferry's slot {} is gone from the source: the changes since cannot be \
                 recovered; `ferry abort SPEC` and start over",
                inv.slot
            );
        };
        let (wal_rate, confirm_rate) = match &self.wal {
            Some((at, before)) => {
                let s = at.elapsed().as_secs_f64().max(0.001);
                (
                    now.current.0.saturating_sub(before.current.0) as f64 / s,
                    now.confirmed.0.saturating_sub(before.confirmed.0) as f64 / s,
                )
            }
            None => (0.0, 0.0),
        };
        self.wal = Some((Instant::now(), now));
        let facts = ferry_flow::WalFacts {
            lost: now.lost,
            retained: now.retained,
            safe_wal_size: now.safe_wal_size,
            wal_rate,
            confirm_rate,
        };
        match ferry_flow::wal_guard(&facts, self.session.plan.sync.max_retained_wal) {
            WalVerdict::Fine => Ok(()),
            WalVerdict::Warn(w) => {
                if self
                    .last_wal_warning
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    self.last_wal_warning = Some(Instant::now());
                    self.journal.event("wal", &format!("warning: {w}"));
                }
                Ok(())
            }
            WalVerdict::Stop(why) => {
                self.journal.error(
                    self.journal.phase()?,
                    &why,
                    "find why apply falls behind (a blocked target, a slow network), then run \
                     `ferry migrate SPEC` again; or `ferry abort SPEC` to release the source",
                );
                bail!("stopped to protect the source: {why}");
            }
        }
    }
}

/// Change capture ended by itself: its own error says why.
#[derive(Debug)]
pub(super) struct SyncStopped;

impl std::fmt::Display for SyncStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("change capture stopped (above)")
    }
}

impl std::error::Error for SyncStopped {}

/// A stop that is not a failure.
#[derive(Debug)]
pub(super) struct HaltError(pub Halt);

impl std::fmt::Display for HaltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Halt::Interrupted => "interrupted",
            Halt::RolledBack => "rolled back",
        })
    }
}

impl std::error::Error for HaltError {}

/// Answers the request `id` of `ferry cutover` or `ferry rollback`.
pub(super) fn answer(journal: &Journal<'_>, id: &str, text: &str) {
    if let Err(e) = journal.set(keys::ANSWER, &format!("{id}:{text}")) {
        tracing::warn!(error = %e, "cannot answer a request");
    }
}
