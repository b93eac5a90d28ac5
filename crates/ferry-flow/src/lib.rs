//! The workflow of one migration (issue 6): its phases, and the decisions that move it on —
//! is the target ready, may it cut over now, must the source be protected — as pure
//! functions of facts the loops record (no database, no clock: every decision is
//! unit-tested and replayable from the store). Beside them, the cutover's side effects on
//! the source: the fence ([`fence`], [`TrafficControl`]) and what it reads there
//! ([`source`]).

mod error;
pub mod fence;
mod gates;
mod phase;
pub mod source;
mod traffic;
mod wal;

pub use error::FlowError;
pub use gates::{
    cutover, ready, Approval, CutoverDecision, Gates, LagSample, Readiness, ValidationFact,
};
pub use phase::{Phase, PhaseError};
pub use traffic::{SourceFence, TrafficControl};
pub use wal::{wal_guard, WalFacts, WalVerdict};
