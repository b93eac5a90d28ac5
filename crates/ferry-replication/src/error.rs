/// What can go wrong on a replication connection.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("cannot open a replication connection to the {side} ({endpoint}): {reason}")]
    Connect {
        side: &'static str,
        endpoint: String,
        reason: String,
        /// The server's SQLSTATE when it answered and refused; `None` when it could not be
        /// reached (or the client could not try).
        code: Option<String>,
    },

    /// The server answered a command with an error.
    #[error("{what}: {message} (SQLSTATE {code})")]
    Server {
        what: String,
        message: String,
        code: String,
    },

    /// `START_REPLICATION` was refused or the stream it opened ended in an error.
    #[error("replication from slot \"{slot}\": {problem}")]
    Stream {
        slot: String,
        problem: crate::logical::StreamProblem,
        /// The SQLSTATE when the server reported the error.
        code: Option<String>,
    },

    /// The server sent something this client does not expect.
    #[error("replication protocol: {0}")]
    Protocol(String),

    /// A CopyBoth payload or a pgoutput message is malformed: which message, the byte offset
    /// inside it, and what was wrong. Never retried: the same bytes decode the same way.
    #[error("cannot decode {message} message at byte {at}: {problem}")]
    Decode {
        message: &'static str,
        at: usize,
        problem: DecodeProblem,
    },

    #[error("the replication connection was lost: {0}")]
    Io(#[from] std::io::Error),

    /// Reading or writing the local spool failed (disk full, permissions, …). Only what the
    /// spool holds durably is ever confirmed to the source, so nothing is lost: fix the disk
    /// and run the command again.
    #[error("{what} ({path}): {source}")]
    SpoolIo {
        path: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The spool on disk is not what Ferry wrote: a segment missing, or damaged where no
    /// crash can tear it.
    #[error("the spool is damaged at {path}: {detail}")]
    SpoolCorrupt { path: String, detail: String },

    #[error(transparent)]
    Pg(#[from] ferry_pg::PgError),
}

impl ReplicationError {
    /// The SQLSTATE when the server reported the error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ReplicationError::Server { code, .. } => Some(code),
            ReplicationError::Stream { code, .. } | ReplicationError::Connect { code, .. } => {
                code.as_deref()
            }
            _ => None,
        }
    }
}

/// What was wrong with a message that could not be decoded (the detail of
/// [`ReplicationError::Decode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeProblem {
    /// The message ended early: `needed` more bytes, `available` left.
    Truncated { needed: usize, available: usize },
    /// The message is longer than its fields.
    TrailingBytes(usize),
    /// An empty message (no type byte).
    Empty,
    /// A message type byte this decoder does not know.
    UnknownType(u8),
    /// A tuple column kind other than `n`, `u`, `t`, `b`.
    UnknownColumnKind(u8),
    /// A tuple marker other than the ones allowed here (`N`, `K`, `O`).
    UnexpectedTupleMarker(u8),
    /// A string without its terminating NUL byte.
    UnterminatedString,
    /// A string that is not UTF-8.
    InvalidUtf8,
    /// A negative count or length.
    NegativeLength(i64),
    /// A message that the negotiated protocol version cannot carry.
    NotInProtocol(u32),
}

impl std::fmt::Display for DecodeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeProblem::Truncated { needed, available } => {
                write!(f, "truncated: {needed} bytes needed, {available} left")
            }
            DecodeProblem::TrailingBytes(n) => write!(f, "{n} unexpected bytes at the end"),
            DecodeProblem::Empty => write!(f, "empty message"),
            DecodeProblem::UnknownType(b) => write!(f, "unknown message type {}", show(*b)),
            DecodeProblem::UnknownColumnKind(b) => {
                write!(f, "unknown tuple column kind {}", show(*b))
            }
            DecodeProblem::UnexpectedTupleMarker(b) => {
                write!(f, "unexpected tuple marker {}", show(*b))
            }
            DecodeProblem::UnterminatedString => write!(f, "string without its NUL terminator"),
            DecodeProblem::InvalidUtf8 => write!(f, "string is not UTF-8"),
            DecodeProblem::NegativeLength(n) => write!(f, "negative length {n}"),
            DecodeProblem::NotInProtocol(v) => {
                write!(f, "not valid in pgoutput protocol version {v}")
            }
        }
    }
}

/// A type byte as PostgreSQL's docs name it (`'B'`), or its value when not printable.
fn show(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", char::from(b))
    } else {
        format!("0x{b:02x}")
    }
}
