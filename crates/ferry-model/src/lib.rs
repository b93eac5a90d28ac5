//! The domain vocabulary of Ferry: names every other crate agrees on. No I/O here.

mod lsn;
mod table;
mod unit;

pub use lsn::{Lsn, LsnParseError};
pub use table::{TableName, WithoutIdentity};
pub use unit::{CopyUnit, RowRange, UnitState};
