//! The workflow of one migration (issue 6): its phases, and the decisions that move it on —
//! is the target ready, may it cut over now, must the source be protected — as pure
//! functions of facts the loops record. Nothing here touches a database or the clock: the
//! callers pass what they measured, so every decision is unit-tested and replayable from the
//! store. The one side effect here is the source fence of a cutover ([`fence`]).

pub mod fence;
mod gates;
mod phase;
mod wal;

pub use gates::{
    cutover, ready, Approval, CutoverDecision, Gates, LagSample, Readiness, ValidationFact,
};
pub use phase::{Phase, PhaseError};
pub use wal::{wal_guard, WalFacts, WalVerdict};
