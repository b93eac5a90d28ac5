//! Server errors of `START_REPLICATION` and of the stream, turned into what happened and what
//! to do about it.

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::{ErrorFields, ErrorResponseBody, NoticeResponseBody};

use crate::ReplicationError;

/// Why a logical replication stream could not start or stopped (the detail of
/// [`ReplicationError::Stream`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamProblem {
    /// The slot is not on the source: dropped, or the source is another cluster.
    SlotMissing,
    /// The slot was invalidated (`wal_status = lost`): its WAL is gone.
    SlotInvalidated { message: String },
    /// Another session streams from the slot.
    SlotInUse { message: String },
    /// A publication named in the options does not exist (reported once decoding begins).
    PublicationMissing { publication: String },
    /// Any other server error.
    Server { message: String },
    /// The server closed the connection mid-stream.
    Closed,
}

impl std::fmt::Display for StreamProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamProblem::SlotMissing => write!(
                f,
                "the replication slot does not exist on the source (dropped, or the source is \
                 another cluster): nothing can resume from it; copy again to create a new slot"
            ),
            StreamProblem::SlotInvalidated { message } => write!(
                f,
                "the slot can no longer get changes ({message}): the source removed WAL it \
                 still needed (see max_slot_wal_keep_size); the target must be copied again"
            ),
            StreamProblem::SlotInUse { message } => write!(
                f,
                "{message}: another process streams from this slot; stop it first"
            ),
            StreamProblem::PublicationMissing { publication } => write!(
                f,
                "publication \"{publication}\" does not exist on the source (dropped?): \
                 create it again for the same tables, then resume"
            ),
            StreamProblem::Server { message } => write!(f, "{message}"),
            StreamProblem::Closed => write!(
                f,
                "the source closed the connection mid-stream (server restart or walsender \
                 terminated): reconnect and resume from the last confirmed position"
            ),
        }
    }
}

/// Classifies an ErrorResponse received while starting or running the stream of `slot`.
pub(crate) fn from_server(slot: &str, body: &ErrorResponseBody) -> ReplicationError {
    let (message, code) = message_and_code(body.fields());
    classify(slot, message, code)
}

/// A notice that must stop the stream: from PostgreSQL 18 pgoutput skips a missing
/// publication with a WARNING ("skipped loading publication") instead of an error, and the
/// changes it would have published are silently not sent.
pub(crate) fn from_notice(slot: &str, body: &NoticeResponseBody) -> Option<ReplicationError> {
    let (message, code) = message_and_code(body.fields());
    if !message.starts_with("skipped loading publication \"") {
        return None;
    }
    Some(ReplicationError::Stream {
        slot: slot.to_owned(),
        problem: StreamProblem::PublicationMissing {
            publication: quoted(&message).unwrap_or_default().to_owned(),
        },
        code: Some(code),
    })
}

fn message_and_code(mut fields: ErrorFields<'_>) -> (String, String) {
    let mut message = String::new();
    let mut code = String::new();
    while let Ok(Some(f)) = fields.next() {
        match f.type_() {
            b'M' => message = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'C' => code = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            _ => {}
        }
    }
    (message, code)
}

pub(crate) fn classify(slot: &str, message: String, code: String) -> ReplicationError {
    let problem = if code == "42704" && message.starts_with("replication slot") {
        StreamProblem::SlotMissing
    } else if code == "42704" && message.starts_with("publication \"") {
        StreamProblem::PublicationMissing {
            publication: quoted(&message).unwrap_or_default().to_owned(),
        }
    } else if message.contains("can no longer get changes")
        || message.contains("can no longer access")
        || message.contains("invalidated")
    {
        StreamProblem::SlotInvalidated { message }
    } else if code == "55006" {
        StreamProblem::SlotInUse { message }
    } else {
        StreamProblem::Server {
            message: format!("{message} (SQLSTATE {code})"),
        }
    };
    ReplicationError::Stream {
        slot: slot.to_owned(),
        problem,
        code: Some(code),
    }
}

pub(crate) fn closed(slot: &str) -> ReplicationError {
    ReplicationError::Stream {
        slot: slot.to_owned(),
        problem: StreamProblem::Closed,
        code: None,
    }
}

/// The text between the first and the last double quote.
fn quoted(message: &str) -> Option<&str> {
    let start = message.find('"')? + 1;
    let end = message.rfind('"')?;
    message.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(message: &str, code: &str) -> StreamProblem {
        match classify("s", message.into(), code.into()) {
            ReplicationError::Stream { problem, .. } => problem,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_messages_are_classified() {
        assert_eq!(
            problem("replication slot \"s\" does not exist", "42704"),
            StreamProblem::SlotMissing
        );
        assert_eq!(
            problem("publication \"my \"\"p\" does not exist", "42704"),
            StreamProblem::PublicationMissing {
                publication: "my \"\"p".into()
            }
        );
        for m in [
            "can no longer get changes from replication slot \"s\"",
            "can no longer access replication slot \"s\"",
        ] {
            assert!(matches!(
                problem(m, "55000"),
                StreamProblem::SlotInvalidated { .. }
            ));
        }
        assert!(matches!(
            problem("replication slot \"s\" is active for PID 7", "55006"),
            StreamProblem::SlotInUse { .. }
        ));
        let err = classify("s", "boom".into(), "XX000".into());
        assert_eq!(err.code(), Some("XX000"));
        assert_eq!(
            err.to_string(),
            "replication from slot \"s\": boom (SQLSTATE XX000)"
        );
    }
}
