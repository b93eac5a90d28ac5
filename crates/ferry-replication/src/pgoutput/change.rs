//! Insert, Update, Delete and Truncate: the row changes.

use super::{stream_xid, DecodeContext, LogicalMessage, TupleData};
use crate::error::DecodeProblem;
use crate::wire::Reader;
use crate::ReplicationError;

/// Reads the marker byte and fails unless it is `expected`.
fn marker(r: &mut Reader<'_>, expected: &[u8]) -> Result<u8, ReplicationError> {
    let b = r.u8()?;
    if expected.contains(&b) {
        Ok(b)
    } else {
        Err(r.error(DecodeProblem::UnexpectedTupleMarker(b)))
    }
}

pub(super) fn insert(
    r: &mut Reader<'_>,
    ctx: DecodeContext,
) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("Insert");
    let xid = stream_xid(r, ctx)?;
    let rel_id = r.u32()?;
    marker(r, b"N")?;
    Ok(LogicalMessage::Insert {
        xid,
        rel_id,
        new: TupleData::read(r)?,
    })
}

pub(super) fn update(
    r: &mut Reader<'_>,
    ctx: DecodeContext,
) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("Update");
    let xid = stream_xid(r, ctx)?;
    let rel_id = r.u32()?;
    let (mut key, mut old) = (None, None);
    match marker(r, b"KON")? {
        b'K' => {
            key = Some(TupleData::read(r)?);
            marker(r, b"N")?;
        }
        b'O' => {
            old = Some(TupleData::read(r)?);
            marker(r, b"N")?;
        }
        _ => {}
    }
    Ok(LogicalMessage::Update {
        xid,
        rel_id,
        key,
        old,
        new: TupleData::read(r)?,
    })
}

pub(super) fn delete(
    r: &mut Reader<'_>,
    ctx: DecodeContext,
) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("Delete");
    let xid = stream_xid(r, ctx)?;
    let rel_id = r.u32()?;
    let kind = marker(r, b"KO")?;
    let tuple = TupleData::read(r)?;
    let (key, old) = if kind == b'K' {
        (Some(tuple), None)
    } else {
        (None, Some(tuple))
    };
    Ok(LogicalMessage::Delete {
        xid,
        rel_id,
        key,
        old,
    })
}

pub(super) fn truncate(
    r: &mut Reader<'_>,
    ctx: DecodeContext,
) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("Truncate");
    let xid = stream_xid(r, ctx)?;
    let n = r.len_i32()?;
    let options = r.u8()?;
    let mut rel_ids = Vec::with_capacity(n.min(r.remaining() / 4));
    for _ in 0..n {
        rel_ids.push(r.u32()?);
    }
    Ok(LogicalMessage::Truncate {
        xid,
        options,
        rel_ids,
    })
}
