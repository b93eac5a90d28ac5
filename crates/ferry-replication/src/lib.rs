//! The replication connection (`replication=database`): a thin client on
//! `postgres-protocol`, because tokio-postgres from crates.io cannot open one
//! (see docs/adr/0002-replication-connection.md). Today it runs replication commands in the
//! simple query protocol (IDENTIFY_SYSTEM, CREATE_REPLICATION_SLOT with an exported
//! snapshot); the CopyBoth stream and pgoutput decoding arrive with change capture.

mod connection;
mod error;
mod slot;
mod transport;

pub use connection::{ReplicationConnection, SimpleRow};
pub use error::ReplicationError;
pub use slot::{CreatedSlot, SystemIdentity};
