//! TupleData: the column values of an Insert, Update or Delete.

use bytes::Bytes;

use crate::error::DecodeProblem;
use crate::wire::Reader;
use crate::ReplicationError;

/// The columns of one row, in the order of the Relation's columns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TupleData(pub Vec<ColumnValue>);

/// One column value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnValue {
    /// `n`
    Null,
    /// `u`: a TOASTed value the change did not touch; its content is not sent and the target's
    /// value must be kept, never overwritten.
    UnchangedToast,
    /// `t`: the value in the type's text format.
    Text(Bytes),
    /// `b`: the value in the type's binary format (the `binary` option).
    Binary(Bytes),
}

impl TupleData {
    pub(super) fn read(r: &mut Reader<'_>) -> Result<TupleData, ReplicationError> {
        let n = r.len_i16()?;
        // Each column takes at least one byte.
        let mut values = Vec::with_capacity(n.min(r.remaining()));
        for _ in 0..n {
            let value = match r.u8()? {
                b'n' => ColumnValue::Null,
                b'u' => ColumnValue::UnchangedToast,
                b't' => {
                    let len = r.len_i32()?;
                    ColumnValue::Text(r.bytes(len)?)
                }
                b'b' => {
                    let len = r.len_i32()?;
                    ColumnValue::Binary(r.bytes(len)?)
                }
                other => return Err(r.error(DecodeProblem::UnknownColumnKind(other))),
            };
            values.push(value);
        }
        Ok(TupleData(values))
    }
}
