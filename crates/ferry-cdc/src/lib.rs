//! The apply engine: decoded pgoutput changes applied to the target in the source's commit
//! order, many source transactions per target transaction, the applied position committed
//! in the same target transaction through a replication origin, so a crash at any instant
//! neither skips nor repeats a change (docs/adr/0008-apply-engine.md).

mod applier;
mod bulk;
mod checks;
mod control;
mod error;
mod fold;
mod origin;
mod relations;
mod replay;
mod retry;
mod session;
mod statement;
mod sync;

pub use applier::{Applier, BatchLimits, Committed, Mismatch};
pub use checks::{ConfirmedAhead, Recorded};
pub use control::SyncControl;
pub use error::CdcError;
pub use origin::{origin_name, Origin};
pub use retry::RetryPolicy;
pub use sync::{sync, SyncEvent, SyncOptions, SyncProgress, SyncSummary};
