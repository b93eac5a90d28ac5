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

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}
