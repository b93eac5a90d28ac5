//! The replication connection (`replication=database`): a thin client on
//! `postgres-protocol`, because tokio-postgres from crates.io cannot open one
//! (see docs/adr/0002-replication-connection.md). Today it runs replication commands in the
//! simple query protocol (IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT with an exported
//! snapshot). [`stream`] parses the CopyBoth payloads of `START_REPLICATION` and [`pgoutput`]
//! decodes the logical replication messages they carry (docs/adr/0007-pgoutput-decoder.md).
//! [`ReplicationConnection::start_logical`] opens that stream as a [`LogicalStream`] served by
//! one owned task that keeps the server answered while the consumer is slow. [`spool`] keeps
//! that stream on local disk while the copy runs (docs/adr/0010-spool-during-copy.md).

mod connection;
mod error;
mod logical;
pub mod pgoutput;
mod slot;
pub mod spool;
pub mod stream;
mod transport;
mod wire;

pub use connection::{ReplicationConnection, SimpleRow};
pub use error::{DecodeProblem, ReplicationError};
pub use logical::{LogicalStream, StreamProblem, StreamSettings, XLogData};
pub use slot::{CreatedSlot, SystemIdentity};
