//! How writes are stopped on the source for a cutover, and how they are let back: the
//! `[cutover] quiesce` strategies. `"source"` fences the database itself ([`SourceFence`]); a
//! proxy that holds and redirects connections implements the same trait later.

use std::time::Duration;

use ferry_pg::Connector;

use crate::fence::{self, Drained, FenceRecord};
use crate::FlowError;

/// A way to stop the source's writers and to let them back. Every change it makes is
/// described by its plan first; the caller stores that plan before [`TrafficControl::quiesce`]
/// runs, so a crash at any instant leaves a record of what to undo.
#[allow(async_fn_in_trait)] // used as a concrete type, never across threads
pub trait TrafficControl {
    /// What quiescing would change, as text for the state store. Changes nothing.
    async fn plan(&self) -> Result<String, FlowError>;
    /// Stops new writers and ends the current ones (`drain_timeout` for open transactions).
    async fn quiesce(&self, plan: &str) -> Result<Drained, FlowError>;
    /// Undoes exactly what `plan` says: the source takes writes again.
    async fn restore(&self, plan: &str) -> Result<(), FlowError>;
}

/// `quiesce = "source"`: CONNECT on the source database revoked from everyone but Ferry's
/// role, then the other sessions drained ([`fence`]).
pub struct SourceFence<'a> {
    pub source: &'a Connector,
    /// Ferry's role on the source: it keeps connecting.
    pub keep: String,
    pub drain_timeout: Duration,
}

impl TrafficControl for SourceFence<'_> {
    async fn plan(&self) -> Result<String, FlowError> {
        let client = self.source.connect().await?;
        let record = fence::plan(&client, &self.keep).await?;
        serde_json::to_string(&record).map_err(|e| FlowError::Record {
            what: "fence record",
            detail: e.to_string(),
        })
    }

    async fn quiesce(&self, plan: &str) -> Result<Drained, FlowError> {
        let record = read(plan)?;
        let client = self.source.connect().await?;
        fence::apply(&client, &record).await?;
        Ok(fence::drain(&client, &self.keep, self.drain_timeout).await?)
    }

    async fn restore(&self, plan: &str) -> Result<(), FlowError> {
        let record = read(plan)?;
        let client = self.source.connect().await?;
        Ok(fence::undo(&client, &record).await?)
    }
}

fn read(plan: &str) -> Result<FenceRecord, FlowError> {
    serde_json::from_str(plan).map_err(|e| FlowError::Record {
        what: "fence record",
        detail: e.to_string(),
    })
}
