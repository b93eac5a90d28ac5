//! Relation and Type: the shapes later changes refer to by OID.

use super::{stream_xid, DecodeContext, LogicalMessage};
use crate::wire::Reader;
use crate::ReplicationError;

/// One column of a Relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Bit 1 set when the column is part of the replica identity (the key).
    pub flags: u8,
    pub name: String,
    pub type_oid: u32,
    /// `atttypmod`, -1 when the type has none.
    pub type_modifier: i32,
}

impl RelationColumn {
    /// Whether the column is part of the replica identity.
    pub fn is_key(&self) -> bool {
        self.flags & 1 != 0
    }
}

pub(super) fn relation(
    r: &mut Reader<'_>,
    ctx: DecodeContext,
) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("Relation");
    let xid = stream_xid(r, ctx)?;
    let rel_id = r.u32()?;
    let namespace = r.cstr()?;
    let name = r.cstr()?;
    let replica_identity = r.u8()?;
    let n = r.len_i16()?;
    // Each column takes at least 10 bytes: never reserve more than the message can hold.
    let mut columns = Vec::with_capacity(n.min(r.remaining() / 10));
    for _ in 0..n {
        columns.push(RelationColumn {
            flags: r.u8()?,
            name: r.cstr()?,
            type_oid: r.u32()?,
            type_modifier: r.i32()?,
        });
    }
    Ok(LogicalMessage::Relation {
        xid,
        rel_id,
        namespace,
        name,
        replica_identity,
        columns,
    })
}

pub(super) fn type_(
    r: &mut Reader<'_>,
    ctx: DecodeContext,
) -> Result<LogicalMessage, ReplicationError> {
    r.set_message("Type");
    Ok(LogicalMessage::Type {
        xid: stream_xid(r, ctx)?,
        type_oid: r.u32()?,
        namespace: r.cstr()?,
        name: r.cstr()?,
    })
}
