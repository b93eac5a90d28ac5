//! Stream Start, Stop, Commit and Abort (protocol 2+): a large transaction sent in segments
//! while still in progress.

use ferry_model::Lsn;

use super::{DecodeContext, LogicalMessage};
use crate::wire::Reader;
use crate::ReplicationError;

pub(super) fn stream_start(r: &mut Reader<'_>) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("StreamStart");
    Ok(LogicalMessage::StreamStart {
        xid: r.u32()?,
        first_segment: r.u8()? == 1,
    })
}

pub(super) fn stream_commit(r: &mut Reader<'_>) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("StreamCommit");
    Ok(LogicalMessage::StreamCommit {
        xid: r.u32()?,
        flags: r.u8()?,
        commit_lsn: Lsn(r.u64()?),
        end_lsn: Lsn(r.u64()?),
        commit_time_us: r.i64()?,
    })
}

/// The abort LSN and time follow only with protocol 4 and `streaming 'parallel'`, which the
/// decoder cannot see: they are read when present (and only from protocol 4).
pub(super) fn stream_abort(
    r: &mut Reader<'_>,
    ctx: DecodeContext,
) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("StreamAbort");
    let xid = r.u32()?;
    let subxid = r.u32()?;
    let (abort_lsn, abort_time_us) = if ctx.protocol_version >= 4 && r.remaining() > 0 {
        (Some(Lsn(r.u64()?)), Some(r.i64()?))
    } else {
        (None, None)
    };
    Ok(LogicalMessage::StreamAbort {
        xid,
        subxid,
        abort_lsn,
        abort_time_us,
    })
}
