//! The state store: where a run records what it is about to do and what it has done, so a
//! killed `ferry` resumes where it stopped and never redoes or skips work.
//!
//! Patterned after pgcopydb's catalog:
//! - a setup row of [`RunInvariants`]: a resume against another source, target, snapshot or
//!   table set is refused;
//! - sections (phases) marked started and done, with timings;
//! - copy units (whole tables or ranges) moving `Started → Committing → Done`, never back
//!   from `Done`;
//! - an error log, small key/values (the current phase), and a command log that survives a
//!   reset.
//!
//! [`StateStore`] is backend-neutral and synchronous: every call is one short transaction and
//! holds no lock once it returns. [`SqliteStore`] is the default, one file in the state
//! directory; a PostgreSQL implementation for fleets comes later.
//! Nothing here holds a credential: endpoints are recorded by `ConnInfo::identity()`.

mod error;
mod invariants;
mod record;
mod sqlite;

use ferry_model::CopyUnit;

pub use error::StoreError;
pub use invariants::RunInvariants;
pub use record::{
    CommandRecord, ErrorRecord, EventRecord, SectionRecord, StoredDifference, UnitRecord,
    ValidationRecord, ValidationRun,
};
pub use sqlite::SqliteStore;

/// Persistent state of one migration run. Persist a transition before its side effect
/// starts and mark it done after the effect finished.
pub trait StateStore: Send + Sync {
    /// The recorded invariants, if a run has been set up.
    fn invariants(&self) -> Result<Option<RunInvariants>, StoreError>;

    /// First run: stores `inv`. Later runs: `Ok` if `inv` describes the same run (no
    /// [`RunInvariants::differences`]), else [`StoreError::InvariantsDiffer`], whose message
    /// lists the differences and points to `ferry abort` or `--restart`.
    fn set_invariants(&self, inv: &RunInvariants) -> Result<(), StoreError>;

    /// Forgets the run: invariants, sections, units, errors and key/values. Keeps the command
    /// log. Called by `ferry abort` and `--restart` after the source is cleaned up.
    fn reset(&self) -> Result<(), StoreError>;

    /// Set by the orchestrator before a section's first step. Re-starting a section that is
    /// not done (it was interrupted) moves its `started_at`; starting a done section is
    /// refused ([`StoreError::SectionRefused`]): its work must not run twice.
    fn section_started(&self, name: &str) -> Result<(), StoreError>;

    /// Set by the orchestrator after a section's last step finished. Refused for a section
    /// never started. Marking a done section done again is a no-op.
    fn section_done(&self, name: &str) -> Result<(), StoreError>;

    /// One section, if it was ever started.
    fn section(&self, name: &str) -> Result<Option<SectionRecord>, StoreError>;

    /// All sections, in the order they were first started.
    fn sections(&self) -> Result<Vec<SectionRecord>, StoreError>;

    /// → `Started`. Set by a copy worker before its COPY begins. Allowed for a new unit and
    /// for a unit found `Started` or `Committing` on resume (its transaction did not commit:
    /// it is redone; the recorded xid, rows and bytes are cleared). Refused for a `Done`
    /// unit: progress never moves backwards.
    fn unit_started(&self, unit: &CopyUnit) -> Result<(), StoreError>;

    /// `Started` → `Committing`. Set by a copy worker just before it commits the target
    /// transaction `target_xid` that holds the unit's `rows` and `bytes`. Refused from any
    /// other state.
    fn unit_committing(
        &self,
        unit: &CopyUnit,
        target_xid: i64,
        rows: u64,
        bytes: u64,
    ) -> Result<(), StoreError>;

    /// `Started` or `Committing` → `Done`. Set by a copy worker after the target transaction
    /// committed, or by a resume once `txid_status` says it did. Refused for an unknown or
    /// already `Done` unit.
    fn unit_done(&self, unit: &CopyUnit, rows: u64, bytes: u64) -> Result<(), StoreError>;

    /// All units, ordered by key.
    fn units(&self) -> Result<Vec<UnitRecord>, StoreError>;

    /// Records an invocation (argv must already be free of secrets); returns its id.
    fn command_started(&self, argv: &[String]) -> Result<i64, StoreError>;

    /// Records how the invocation `id` ended.
    fn command_finished(&self, id: i64, outcome: &str) -> Result<(), StoreError>;

    /// All invocations, oldest first.
    fn commands(&self) -> Result<Vec<CommandRecord>, StoreError>;

    /// Logs an error met during `section` (client-safe text: no credentials).
    fn record_error(&self, section: &str, message: &str) -> Result<(), StoreError>;

    /// All recorded errors, oldest first.
    fn errors(&self) -> Result<Vec<ErrorRecord>, StoreError>;

    /// Sets a small key/value (the current phase, a cutover decision, ...).
    fn set_value(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Reads a key/value.
    fn value(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Stores a finished validation and each of its differences; returns its id.
    fn record_validation(&self, run: &ValidationRun) -> Result<i64, StoreError>;

    /// The latest validation, if any ran.
    fn last_validation(&self) -> Result<Option<ValidationRecord>, StoreError>;

    /// The differences of validation `id`, in report order.
    fn validation_differences(&self, id: i64) -> Result<Vec<StoredDifference>, StoreError>;

    /// Logs an event of `kind` (client-safe text).
    fn record_event(&self, kind: &str, message: &str) -> Result<(), StoreError>;

    /// How many events of `kind` were logged.
    fn event_count(&self, kind: &str) -> Result<u64, StoreError>;

    /// All events, oldest first: the migration's timeline.
    fn events(&self) -> Result<Vec<EventRecord>, StoreError>;
}

#[cfg(test)]
mod tests;
