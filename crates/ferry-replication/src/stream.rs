//! The CopyBoth payloads of `START_REPLICATION`: XLogData and Primary keepalive from the
//! server, Standby status update from us.

use bytes::{BufMut, Bytes, BytesMut};
use ferry_model::Lsn;

use crate::error::DecodeProblem;
use crate::wire::Reader;
use crate::ReplicationError;

/// One CopyData payload sent by the walsender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationMessage {
    /// `w`: `data` is one pgoutput message (see [`crate::pgoutput::decode`]).
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        /// Microseconds since 2000-01-01 00:00 UTC.
        send_time_us: i64,
        data: Bytes,
    },
    /// `k`: the server's position; answer at once when `reply_requested`, or the walsender
    /// ends the connection after `wal_sender_timeout`.
    PrimaryKeepalive {
        wal_end: Lsn,
        send_time_us: i64,
        reply_requested: bool,
    },
}

impl ReplicationMessage {
    /// Parses a payload, copying the XLogData out of `data`.
    pub fn parse(data: &[u8]) -> Result<ReplicationMessage, ReplicationError> {
        parse_from(Reader::new(data, "CopyBoth"))
    }

    /// Parses a payload whose XLogData shares `data`'s buffer (no copy).
    pub fn parse_bytes(data: &Bytes) -> Result<ReplicationMessage, ReplicationError> {
        parse_from(Reader::shared(data, "CopyBoth"))
    }
}

fn parse_from(mut r: Reader<'_>) -> Result<ReplicationMessage, ReplicationError> {
    if r.remaining() == 0 {
        return Err(r.error(DecodeProblem::Empty));
    }
    let msg = match r.u8()? {
        b'w' => {
            r.set_message("XLogData");
            ReplicationMessage::XLogData {
                wal_start: Lsn(r.u64()?),
                wal_end: Lsn(r.u64()?),
                send_time_us: r.i64()?,
                data: r.rest()?,
            }
        }
        b'k' => {
            r.set_message("PrimaryKeepalive");
            ReplicationMessage::PrimaryKeepalive {
                wal_end: Lsn(r.u64()?),
                send_time_us: r.i64()?,
                reply_requested: r.u8()? != 0,
            }
        }
        other => return Err(r.error(DecodeProblem::UnknownType(other))),
    };
    r.finish()?;
    Ok(msg)
}

/// The Standby status update (`r`) payload, to send in a CopyData.
///
/// `flush` tells the server it may recycle WAL up to there: acknowledge only the `end_lsn` of a
/// `Commit` (or `StreamCommit`) whose changes are durable on the target, never the position of
/// a message inside a transaction (a Relation in a transaction arrives with `wal_start` 0/0),
/// and never move it backwards. `now_us` is microseconds since 2000-01-01 00:00 UTC;
/// `reply` asks the server to answer at once with a keepalive.
pub fn standby_status_update(
    write: Lsn,
    flush: Lsn,
    apply: Lsn,
    now_us: i64,
    reply: bool,
) -> Bytes {
    let mut buf = BytesMut::with_capacity(34);
    buf.put_u8(b'r');
    buf.put_u64(write.0);
    buf.put_u64(flush.0);
    buf.put_u64(apply.0);
    buf.put_i64(now_us);
    buf.put_u8(u8::from(reply));
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_and_xlogdata_parse() {
        let mut k = vec![b'k'];
        k.extend_from_slice(&0x0000_0001_0000_0010u64.to_be_bytes());
        k.extend_from_slice(&42i64.to_be_bytes());
        k.push(1);
        assert_eq!(
            ReplicationMessage::parse(&k).expect("keepalive"),
            ReplicationMessage::PrimaryKeepalive {
                wal_end: Lsn(0x1_0000_0010),
                send_time_us: 42,
                reply_requested: true
            }
        );
        let mut w = vec![b'w'];
        w.extend_from_slice(&7u64.to_be_bytes());
        w.extend_from_slice(&9u64.to_be_bytes());
        w.extend_from_slice(&(-1i64).to_be_bytes());
        w.extend_from_slice(b"Exyz");
        let shared = Bytes::from(w.clone());
        for parsed in [
            ReplicationMessage::parse(&w),
            ReplicationMessage::parse_bytes(&shared),
        ] {
            assert_eq!(
                parsed.expect("xlogdata"),
                ReplicationMessage::XLogData {
                    wal_start: Lsn(7),
                    wal_end: Lsn(9),
                    send_time_us: -1,
                    data: Bytes::from_static(b"Exyz"),
                }
            );
        }
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let err = ReplicationMessage::parse(&[b'k', 0, 0]).expect_err("truncated");
        assert!(
            matches!(
                err,
                ReplicationError::Decode {
                    message: "PrimaryKeepalive",
                    at: 1,
                    problem: DecodeProblem::Truncated {
                        needed: 8,
                        available: 2
                    }
                }
            ),
            "{err:?}"
        );
        let err = ReplicationMessage::parse(b"?").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "cannot decode CopyBoth message at byte 1: unknown message type '?'"
        );
        assert!(ReplicationMessage::parse(&[]).is_err());
        let mut k = vec![b'k'];
        k.extend_from_slice(&[0; 17]);
        k.push(0);
        assert!(matches!(
            ReplicationMessage::parse(&k),
            Err(ReplicationError::Decode {
                problem: DecodeProblem::TrailingBytes(1),
                ..
            })
        ));
    }

    #[test]
    fn status_update_layout() {
        let b = standby_status_update(Lsn(1), Lsn(2), Lsn(3), 4, true);
        assert_eq!(b.len(), 34);
        assert_eq!(b.first(), Some(&b'r'));
        assert_eq!(b.get(9..17), Some(&2u64.to_be_bytes()[..]));
        assert_eq!(b.last(), Some(&1));
    }
}
