/// What can go wrong on a replication connection.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("cannot open a replication connection to the {side} ({endpoint}): {reason}")]
    Connect {
        side: &'static str,
        endpoint: String,
        reason: String,
    },

    /// The server answered a command with an error.
    #[error("{what}: {message} (SQLSTATE {code})")]
    Server {
        what: String,
        message: String,
        code: String,
    },

    /// The server sent something this client does not expect.
    #[error("replication protocol: {0}")]
    Protocol(String),

    #[error("the replication connection was lost: {0}")]
    Io(#[from] std::io::Error),

    #[error(transparent)]
    Pg(#[from] ferry_pg::PgError),
}

impl ReplicationError {
    /// The SQLSTATE when the server reported the error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ReplicationError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}
