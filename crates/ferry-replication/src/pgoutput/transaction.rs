//! Begin, Commit and Origin: the transaction envelope.

use ferry_model::Lsn;

use super::LogicalMessage;
use crate::wire::Reader;
use crate::ReplicationError;

pub(super) fn begin(r: &mut Reader<'_>) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("Begin");
    Ok(LogicalMessage::Begin {
        final_lsn: Lsn(r.u64()?),
        commit_time_us: r.i64()?,
        xid: r.u32()?,
    })
}

pub(super) fn commit(r: &mut Reader<'_>) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("Commit");
    Ok(LogicalMessage::Commit {
        flags: r.u8()?,
        commit_lsn: Lsn(r.u64()?),
        end_lsn: Lsn(r.u64()?),
        commit_time_us: r.i64()?,
    })
}

pub(super) fn origin(r: &mut Reader<'_>) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("Origin");
    Ok(LogicalMessage::Origin {
        commit_lsn: Lsn(r.u64()?),
        name: r.cstr()?,
    })
}
