//! The pgoutput logical replication protocol, versions 1 to 4, decoded from the bytes of one
//! XLogData payload. Message and field names follow the PostgreSQL docs, "Logical Replication
//! Message Formats". Malformed input is a [`ReplicationError::Decode`], never a panic.

mod change;
mod message;
mod options;
mod relation;
mod streaming;
mod transaction;
mod tuple;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use ferry_model::Lsn;

use crate::error::DecodeProblem;
use crate::wire::Reader;
use crate::ReplicationError;

pub use options::{protocol_version_for, StartReplicationOptions, Streaming};
pub use relation::RelationColumn;
pub use tuple::{ColumnValue, TupleData};

/// One pgoutput message. Timestamps are microseconds since 2000-01-01 00:00 UTC (PostgreSQL's
/// epoch). `xid` fields on data messages are `Some` only inside a streamed block (protocol 2+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogicalMessage {
    /// `B`: a transaction starts; its changes follow, then `Commit`.
    Begin {
        final_lsn: Lsn,
        commit_time_us: i64,
        xid: u32,
    },
    /// `C`: the transaction is committed. `end_lsn` is the position to acknowledge.
    Commit {
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time_us: i64,
    },
    /// `O`: the transaction was replicated from another node.
    Origin { commit_lsn: Lsn, name: String },
    /// `R`: the shape of a table, sent before its first change in the session and after it
    /// changes.
    Relation {
        xid: Option<u32>,
        rel_id: u32,
        namespace: String,
        name: String,
        /// `d` default, `n` nothing, `f` full, `i` index.
        replica_identity: u8,
        columns: Vec<RelationColumn>,
    },
    /// `Y`: a non-built-in type used by a following Relation.
    Type {
        xid: Option<u32>,
        type_oid: u32,
        namespace: String,
        name: String,
    },
    /// `I`
    Insert {
        xid: Option<u32>,
        rel_id: u32,
        new: TupleData,
    },
    /// `U`: `key` (`K`) when the replica identity columns changed, `old` (`O`) with
    /// REPLICA IDENTITY FULL; neither otherwise.
    Update {
        xid: Option<u32>,
        rel_id: u32,
        key: Option<TupleData>,
        old: Option<TupleData>,
        new: TupleData,
    },
    /// `D`: exactly one of `key` (`K`) or `old` (`O`, REPLICA IDENTITY FULL) is set.
    Delete {
        xid: Option<u32>,
        rel_id: u32,
        key: Option<TupleData>,
        old: Option<TupleData>,
    },
    /// `T`: `options` bit 1 is CASCADE, bit 2 RESTART IDENTITY.
    Truncate {
        xid: Option<u32>,
        options: u8,
        rel_ids: Vec<u32>,
    },
    /// `M`: `pg_logical_emit_message` (sent when the `messages` option is on).
    Message {
        xid: Option<u32>,
        transactional: bool,
        lsn: Lsn,
        prefix: String,
        content: Bytes,
    },
    /// `S` (protocol 2+): the changes up to `StreamStop` belong to `xid`, still in progress.
    StreamStart { xid: u32, first_segment: bool },
    /// `E` (protocol 2+)
    StreamStop,
    /// `c` (protocol 2+): the streamed transaction `xid` is committed.
    StreamCommit {
        xid: u32,
        flags: u8,
        commit_lsn: Lsn,
        end_lsn: Lsn,
        commit_time_us: i64,
    },
    /// `A` (protocol 2+): `subxid` (or the whole transaction when equal to `xid`) rolled back.
    /// The LSN and time are sent by protocol 4 with `streaming 'parallel'` only.
    StreamAbort {
        xid: u32,
        subxid: u32,
        abort_lsn: Option<Lsn>,
        abort_time_us: Option<i64>,
    },
}

/// What the decoder must know beyond the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeContext {
    /// The negotiated `proto_version`, 1 to 4.
    pub protocol_version: u32,
    /// Between `StreamStart` and `StreamStop`: data messages then carry a leading xid.
    pub in_stream: bool,
}

/// Decodes one pgoutput message, copying column values out of `data`.
pub fn decode(data: &[u8], ctx: DecodeContext) -> Result<LogicalMessage, ReplicationError> {
    decode_from(Reader::new(data, "pgoutput"), ctx)
}

/// Decodes one pgoutput message whose column values share `data`'s buffer (no copy).
pub fn decode_bytes(data: &Bytes, ctx: DecodeContext) -> Result<LogicalMessage, ReplicationError> {
    decode_from(Reader::shared(data, "pgoutput"), ctx)
}

fn decode_from(mut r: Reader<'_>, ctx: DecodeContext) -> Result<LogicalMessage, ReplicationError> {
    if r.remaining() == 0 {
        return Err(r.error(DecodeProblem::Empty));
    }
    let tag = r.u8()?;
    let streaming_msg = matches!(tag, b'S' | b'E' | b'c' | b'A');
    if (streaming_msg || ctx.in_stream) && ctx.protocol_version < 2 {
        return Err(r.error(DecodeProblem::NotInProtocol(ctx.protocol_version)));
    }
    let msg = match tag {
        b'B' => transaction::begin(&mut r)?,
        b'C' => transaction::commit(&mut r)?,
        b'O' => transaction::origin(&mut r)?,
        b'R' => relation::relation(&mut r, ctx)?,
        b'Y' => relation::type_(&mut r, ctx)?,
        b'I' => change::insert(&mut r, ctx)?,
        b'U' => change::update(&mut r, ctx)?,
        b'D' => change::delete(&mut r, ctx)?,
        b'T' => change::truncate(&mut r, ctx)?,
        b'M' => message::message(&mut r, ctx)?,
        b'S' => streaming::stream_start(&mut r)?,
        b'E' => {
            r.set_message("StreamStop");
            LogicalMessage::StreamStop
        }
        b'c' => streaming::stream_commit(&mut r)?,
        b'A' => streaming::stream_abort(&mut r, ctx)?,
        other => return Err(r.error(DecodeProblem::UnknownType(other))),
    };
    r.finish()?;
    Ok(msg)
}

/// The leading xid of a data message inside a streamed block.
fn stream_xid(r: &mut Reader<'_>, ctx: DecodeContext) -> Result<Option<u32>, ReplicationError> {
    if ctx.in_stream {
        r.u32().map(Some)
    } else {
        Ok(None)
    }
}

/// Decodes a session's messages in order, knowing from `StreamStart`/`StreamStop` whether data
/// messages carry an xid, so callers just feed it every payload.
#[derive(Debug, Clone)]
pub struct StreamState {
    ctx: DecodeContext,
}

impl StreamState {
    pub fn new(protocol_version: u32) -> StreamState {
        StreamState {
            ctx: DecodeContext {
                protocol_version,
                in_stream: false,
            },
        }
    }

    /// True between a `StreamStart` and its `StreamStop`.
    pub fn in_stream(&self) -> bool {
        self.ctx.in_stream
    }

    pub fn decode(&mut self, data: &[u8]) -> Result<LogicalMessage, ReplicationError> {
        let msg = decode(data, self.ctx)?;
        self.observe(&msg);
        Ok(msg)
    }

    pub fn decode_bytes(&mut self, data: &Bytes) -> Result<LogicalMessage, ReplicationError> {
        let msg = decode_bytes(data, self.ctx)?;
        self.observe(&msg);
        Ok(msg)
    }

    fn observe(&mut self, msg: &LogicalMessage) {
        match msg {
            LogicalMessage::StreamStart { .. } => self.ctx.in_stream = true,
            LogicalMessage::StreamStop => self.ctx.in_stream = false,
            _ => {}
        }
    }
}
