/// Everything that can go wrong talking to PostgreSQL or running its binaries. Each message
/// says what failed and what to do; none carries a password or a full connection string.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A server binary or client tool could not be found or run.
    #[error("{what}: {fix}")]
    Binary { what: String, fix: String },

    /// Starting, stopping or preparing a local throwaway cluster failed.
    #[error("local cluster: {what}: {detail}")]
    Cluster { what: String, detail: String },

    /// Could not open a session with a server. `endpoint` is an identity without secrets.
    #[error("cannot connect to the {side} ({endpoint}): {reason}")]
    Connect {
        side: &'static str,
        endpoint: String,
        reason: String,
        /// The server's SQLSTATE when it answered and refused (authentication, a missing
        /// database, "starting up"); `None` when no server answered (refused, timed out,
        /// reset) or the client could not even try.
        code: Option<String>,
    },

    /// A statement failed. `detail` is the server's message and SQLSTATE, never the SQL text
    /// with values in it. `code` is the server's SQLSTATE; a connection lost before the
    /// server could answer is reported as `08006` (connection_failure), as other PostgreSQL
    /// drivers do, so callers can tell it from a statement the server rejected.
    #[error("{what}: {detail}")]
    Sql {
        what: String,
        detail: String,
        code: Option<String>,
    },

    /// TLS could not be set up as the connection's sslmode asks.
    #[error("TLS for the {side}: {reason}")]
    Tls { side: &'static str, reason: String },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}
