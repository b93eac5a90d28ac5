//! The spool: the change stream kept on local disk while `ferry copy` runs, so the source can
//! recycle its WAL instead of holding it for the whole copy (docs/adr/0010-spool-during-copy.md).
//!
//! A spool is a directory of append-only segment files (`00000001.seg`, …), each a header
//! (pgoutput protocol version, start position) and records in stream order: one pgoutput
//! message each, with its positions and a CRC-32C ([`format`]). A segment is sealed when it
//! is full or the writer stops cleanly; the next starts where it ended and repeats the
//! session's Relation messages, so segments whose changes are applied can be removed.
//!
//! Durability: [`SpoolWriter::sync`] fsyncs and reports the end of the last whole transaction
//! (or idle mark) written; [`capture`] confirms to the source only such a position. A crash
//! mid-write leaves a torn or unfinished tail, which [`SpoolWriter::open`] cuts off and
//! [`Spool::open`] reads past: the spool ends at its last whole transaction.

mod capture;
mod format;
mod reader;
mod segment;
mod writer;

pub use capture::{capture, CaptureEnd, CaptureOptions, SpoolFull};
pub use format::{RecordKind, SpoolRecord};
pub use reader::{disk_bytes, remove, SegmentInfo, Spool, SpoolRecords};
pub use writer::{SpoolWriter, SEGMENT_BYTES};

#[cfg(test)]
mod tests;
