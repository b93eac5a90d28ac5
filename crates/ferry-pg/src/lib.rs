//! Everything Ferry needs to talk to PostgreSQL that is not replication: connecting (TLS,
//! passwords from the environment or `~/.pgpass`), quoting, catalog SQL, the client binaries
//! (`pg_dump`, `pg_restore`) and the local throwaway clusters used by `ferry demo` and the tests.

pub mod binaries;
pub mod catalog;
mod connect;
mod error;
pub mod local_cluster;
mod password;
pub mod quote;
mod tls;

pub use connect::{sql_error, Connector};
pub use error::PgError;
pub use password::Secret;
pub use tls::TlsPolicy;
