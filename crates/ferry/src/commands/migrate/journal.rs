//! The migration's durable record of where it stands: each phase entered is persisted (the
//! store's `phase` and a `phase:<name>` section) before its side effect starts and marked
//! done after it finished; every step is an event with a timestamp (the timeline of
//! `ferry status` and the report).

use anyhow::{bail, Result};
use ferry_flow::Phase;
use ferry_store::StateStore;

/// Store keys of the workflow.
pub(crate) mod keys {
    /// What the fence changed on the source (JSON), written before it is applied.
    pub const FENCE: &str = "fence";
    /// `applying`, `applied` or `lifted`.
    pub const FENCE_STATE: &str = "fence_state";
    /// A request to the running `ferry migrate`: `<id>:cutover` or `<id>:rollback`.
    pub const REQUEST: &str = "request";
    /// Its answer: `<id>:ok: …`, `<id>:refused: …` or `<id>:failed: …`.
    pub const ANSWER: &str = "request_answer";
    /// The source's tables' write counters before the snapshot (JSON).
    pub const ACTIVITY_AT_SNAPSHOT: &str = "activity_at_snapshot";
    /// The same when the last full validation finished (JSON).
    pub const ACTIVITY_AT_VALIDATION: &str = "activity_at_validation";
    /// The target's counters when it opened (JSON): what was written there since is what a
    /// rollback after cutover does not carry back.
    pub const TARGET_ACTIVITY_AT_OPEN: &str = "target_activity_at_open";
    /// The target's transaction id when it opened: rows with a younger `xmin` were written
    /// there after cutover.
    pub const TARGET_XID_AT_OPEN: &str = "target_xid_at_open";
    /// The write-unavailability window of the cutover, milliseconds.
    pub const PAUSE_MS: &str = "cutover_pause_ms";
    pub const FINAL_LSN: &str = "final_lsn";
    pub const LAG_AT_CUTOVER: &str = "lag_at_cutover";
    /// What to do about the last error.
    pub const LAST_FIX: &str = "last_fix";
}

pub(crate) struct Journal<'a> {
    pub store: &'a dyn StateStore,
}

impl<'a> Journal<'a> {
    pub(crate) fn new(store: &'a dyn StateStore) -> Journal<'a> {
        Journal { store }
    }

    /// The recorded phase (`check` before anything ran).
    pub(crate) fn phase(&self) -> Result<Phase> {
        Ok(phase_of(self.store.value("phase")?.as_deref()))
    }

    /// Persists that the migration is now in `to` (before any of its side effects).
    pub(crate) fn enter(&self, to: Phase) -> Result<()> {
        let from = self.phase()?;
        if from != to && !from.may_become(to) {
            bail!("the migration is in phase {from}; it cannot move to {to}");
        }
        let section = section(to);
        if self
            .store
            .section(&section)?
            .is_none_or(|s| s.done_at.is_none())
        {
            self.store.section_started(&section)?;
        }
        self.store.set_value("phase", to.as_str())?;
        if from != to {
            self.event("phase", &format!("{to} began"));
        }
        Ok(())
    }

    /// Marks `phase`'s work done.
    pub(crate) fn finish(&self, phase: Phase) -> Result<()> {
        self.store.section_done(&section(phase))?;
        self.event("phase", &format!("{phase} done"));
        Ok(())
    }

    /// Whether `phase`'s work is recorded as done.
    pub(crate) fn is_done(&self, phase: Phase) -> Result<bool> {
        Ok(self
            .store
            .section(&section(phase))?
            .is_some_and(|s| s.done_at.is_some()))
    }

    /// Records a step of the timeline and prints it.
    pub(crate) fn event(&self, kind: &str, message: &str) {
        eprintln!("migrate: {message}");
        if let Err(e) = self.store.record_event(kind, message) {
            tracing::warn!(error = %e, "cannot record an event");
        }
    }

    /// Records an error met in `phase` and what to do about it.
    pub(crate) fn error(&self, phase: Phase, message: &str, fix: &str) {
        let _ = self.store.record_error(phase.as_str(), message);
        let _ = self.store.set_value(keys::LAST_FIX, fix);
        let _ = self.store.record_event("error", message);
    }

    pub(crate) fn value(&self, key: &str) -> Result<Option<String>> {
        Ok(self.store.value(key)?)
    }

    pub(crate) fn set(&self, key: &str, value: &str) -> Result<()> {
        Ok(self.store.set_value(key, value)?)
    }
}

fn section(phase: Phase) -> String {
    format!("phase:{phase}")
}

/// The phase a store value names; the values earlier versions wrote are mapped.
pub(crate) fn phase_of(value: Option<&str>) -> Phase {
    match value {
        None | Some("not started") => Phase::Check,
        Some("copying") => Phase::Copy,
        Some("copied" | "syncing" | "synced" | "caught up") => Phase::Sync,
        Some(v) => v.parse().unwrap_or(Phase::Check),
    }
}

/// Test hook: `FERRY_FAILPOINT=<name>` stops the process abruptly (like kill -9) at the step
/// boundary `name`, to prove that a resume neither repeats nor skips a step.
pub(crate) fn failpoint(name: &str) {
    if std::env::var("FERRY_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: stopping abruptly");
        std::process::abort();
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
