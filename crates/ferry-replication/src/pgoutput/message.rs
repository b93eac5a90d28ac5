//! Message: the content of `pg_logical_emit_message`.

use ferry_model::Lsn;

use super::{stream_xid, DecodeContext, LogicalMessage};
use crate::wire::Reader;
use crate::ReplicationError;

pub(super) fn message(
    r: &mut Reader<'_>,
    ctx: DecodeContext,
) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("Message");
    let xid = stream_xid(r, ctx)?;
    let flags = r.u8()?;
    let lsn = Lsn(r.u64()?);
    let prefix = r.cstr()?;
    let len = r.len_i32()?;
    Ok(LogicalMessage::Message {
        xid,
        transactional: flags & 1 != 0,
        lsn,
        prefix,
        content: r.bytes(len)?,
    })
}
