//! The bytes of a spool segment: a 32-byte header, then records, each a 25-byte header and
//! its payload. Integers are big-endian; every header carries a CRC-32C so a torn or damaged
//! write is recognised, never decoded.
//!
//! ```text
//! segment header  "FERRYSP1" | proto_version u32 | 0 u32 | start LSN u64 | crc u32 | 0 u32
//! record          kind u8 | start LSN u64 | end LSN u64 | len u32 | crc u32 | payload (len)
//! ```
//! The record's CRC covers its first 21 header bytes and the payload.

use bytes::Bytes;
use ferry_model::Lsn;

pub(super) const MAGIC: &[u8; 8] = b"FERRYSP1";
pub(super) const HEADER_LEN: u64 = 32;
pub(super) const RECORD_HEADER_LEN: usize = 25;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// One pgoutput message that is not a Commit (`start`/`end`: its XLogData positions).
    /// Also the Relation messages repeated at the head of a new segment (`start` = `end` =
    /// the segment's start), so a segment replays without the ones before it.
    Data,
    /// A Commit message; `end` is its end LSN: everything up to it is in the spool.
    Commit,
    /// No payload: the source had nothing more to send up to `end` (an idle stream's
    /// keepalive position), so the spool holds everything up to it.
    Mark,
    /// No payload, the last record of a finished segment: `end` is the segment's end, where
    /// the next one starts.
    Seal,
}

impl RecordKind {
    fn byte(self) -> u8 {
        match self {
            RecordKind::Data => 1,
            RecordKind::Commit => 2,
            RecordKind::Mark => 3,
            RecordKind::Seal => 4,
        }
    }

    fn from_byte(b: u8) -> Option<RecordKind> {
        Some(match b {
            1 => RecordKind::Data,
            2 => RecordKind::Commit,
            3 => RecordKind::Mark,
            4 => RecordKind::Seal,
            _ => return None,
        })
    }

    /// Whether the spool holds every change up to this record's `end` once it is durable.
    pub fn is_boundary(self) -> bool {
        !matches!(self, RecordKind::Data)
    }
}

/// One record read back from the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    pub kind: RecordKind,
    pub start: Lsn,
    pub end: Lsn,
    /// The pgoutput protocol version the payload was received in (from its segment).
    pub proto_version: u32,
    /// One pgoutput message (empty for marks and seals).
    pub payload: Bytes,
}

/// A segment's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegmentHeader {
    pub proto_version: u32,
    /// Where the segment's content starts: the previous segment's end, or where spooling began.
    pub start: Lsn,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN as usize] {
        let mut out = [0u8; HEADER_LEN as usize];
        out[..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&self.proto_version.to_be_bytes());
        out[16..24].copy_from_slice(&self.start.0.to_be_bytes());
        let crc = crc32c(0, &out[..24]);
        out[24..28].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// `None` when the bytes are not a whole, intact header.
    pub fn decode(bytes: &[u8]) -> Option<SegmentHeader> {
        if bytes.len() < HEADER_LEN as usize || &bytes[..8] != MAGIC {
            return None;
        }
        if crc32c(0, &bytes[..24]) != be_u32(&bytes[24..28]) {
            return None;
        }
        Some(SegmentHeader {
            proto_version: be_u32(&bytes[8..12]),
            start: Lsn(be_u64(&bytes[16..24])),
        })
    }
}

/// A record's header, parsed but not yet checked against its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecordHeader {
    pub kind: RecordKind,
    pub start: Lsn,
    pub end: Lsn,
    pub len: u32,
    crc: u32,
}

impl RecordHeader {
    pub fn encode(
        kind: RecordKind,
        start: Lsn,
        end: Lsn,
        payload: &[u8],
    ) -> Option<[u8; RECORD_HEADER_LEN]> {
        let len = u32::try_from(payload.len()).ok()?;
        let mut out = [0u8; RECORD_HEADER_LEN];
        out[0] = kind.byte();
        out[1..9].copy_from_slice(&start.0.to_be_bytes());
        out[9..17].copy_from_slice(&end.0.to_be_bytes());
        out[17..21].copy_from_slice(&len.to_be_bytes());
        let crc = crc32c(crc32c(0, &out[..21]), payload);
        out[21..25].copy_from_slice(&crc.to_be_bytes());
        Some(out)
    }

    /// `None` for an unknown kind (a damaged header).
    pub fn decode(bytes: &[u8; RECORD_HEADER_LEN]) -> Option<RecordHeader> {
        Some(RecordHeader {
            kind: RecordKind::from_byte(bytes[0])?,
            start: Lsn(be_u64(&bytes[1..9])),
            end: Lsn(be_u64(&bytes[9..17])),
            len: be_u32(&bytes[17..21]),
            crc: be_u32(&bytes[21..25]),
        })
    }

    /// Whether `payload` is the one this header was written with.
    pub fn matches(&self, bytes: &[u8; RECORD_HEADER_LEN], payload: &[u8]) -> bool {
        crc32c(crc32c(0, &bytes[..21]), payload) == self.crc
    }
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// CRC-32C (Castagnoli), reflected, as iSCSI and PostgreSQL's WAL use it.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Continues the CRC-32C `crc` (0 to start) over `data`.
pub(super) fn crc32c(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(0, b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(crc32c(0, b"1234"), b"56789"), 0xE306_9283);
    }

    #[test]
    fn headers_round_trip_and_damage_is_seen() {
        let h = SegmentHeader {
            proto_version: 4,
            start: Lsn(0x1_0000_0028),
        };
        let mut bytes = h.encode();
        assert_eq!(SegmentHeader::decode(&bytes), Some(h));
        bytes[20] ^= 1;
        assert_eq!(SegmentHeader::decode(&bytes), None);

        let payload = b"C\0payload";
        let rec = RecordHeader::encode(RecordKind::Commit, Lsn(10), Lsn(20), payload)
            .expect("small payload");
        let parsed = RecordHeader::decode(&rec).expect("known kind");
        assert_eq!(
            (parsed.kind, parsed.start, parsed.end, parsed.len),
            (RecordKind::Commit, Lsn(10), Lsn(20), 9)
        );
        assert!(parsed.matches(&rec, payload));
        assert!(!parsed.matches(&rec, b"C\0paylOad"));
    }
}
