//! How the copy reports progress. The CLI draws bars from these calls; tests and scripts
//! may ignore them.

use ferry_model::CopyUnit;

/// Receives progress as the copy runs. Calls come from many tasks at once and must be cheap.
pub trait Observer: Send + Sync {
    /// A step of the copy begins (`"pre-data"`, `"data"`, `"post-data"`, …).
    fn step(&self, _step: &str) {}
    /// The data to copy: every unit with its estimated bytes, and the bytes already copied
    /// by an earlier, interrupted run.
    fn planned(&self, _total_bytes: u64, _done_bytes: u64, _units: usize) {}
    fn unit_started(&self, _unit: &CopyUnit, _estimated_bytes: u64) {}
    /// `bytes` more were streamed and `rows` more rows completed.
    fn unit_progress(&self, _unit: &CopyUnit, _bytes: u64, _rows: u64) {}
    fn unit_finished(&self, _unit: &CopyUnit, _rows: u64, _bytes: u64) {}
    /// Free-form note for the log (`"indexes of public.t built"`).
    fn note(&self, _message: &str) {}
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {}
