//! Segment files: naming, listing, and scanning one for where its whole content ends.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use ferry_model::Lsn;
use tokio::io::{AsyncReadExt, AsyncSeekExt, BufReader};

use super::format::{RecordHeader, RecordKind, SegmentHeader, HEADER_LEN, RECORD_HEADER_LEN};
use crate::ReplicationError;

const SUFFIX: &str = ".seg";

/// `<dir>/00000001.seg`, …: numbered from 1, in the order they were written.
pub(super) fn path(dir: &Path, seq: u32) -> PathBuf {
    dir.join(format!("{seq:08}{SUFFIX}"))
}

/// The segments in `dir`, by number; empty when `dir` does not exist.
pub(super) async fn list(dir: &Path) -> Result<Vec<(u32, PathBuf)>, ReplicationError> {
    let mut out = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_error(dir, "listing the spool", e)),
    };
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| io_error(dir, "listing the spool", e))?
    {
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        out.push((seq, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// What a segment file holds.
#[derive(Debug, Clone)]
pub(super) struct Scan {
    /// `None`: the file is shorter than a header or its header is damaged (a crash while the
    /// segment was being created).
    pub header: Option<SegmentHeader>,
    pub file_len: u64,
    /// The offset just past the last boundary record (the header's end when there is none):
    /// what survives of the segment.
    pub whole_len: u64,
    /// Everything up to here is in the segment.
    pub end: Lsn,
    /// It ends with a seal record: nothing will be appended.
    pub sealed: bool,
    /// Why the bytes after `whole_len` are not whole records, if they are not (a torn
    /// write, or damage); records of an unfinished transaction are not a problem.
    pub damage: Option<String>,
}

impl Scan {
    /// Where the records to read end (a seal is not read back).
    pub fn data_len(&self) -> u64 {
        if self.sealed {
            self.whole_len - RECORD_HEADER_LEN as u64
        } else {
            self.whole_len
        }
    }
}

/// Reads records one at a time from a segment, checking each against its CRC.
pub(super) struct RecordReader {
    path: PathBuf,
    file: BufReader<tokio::fs::File>,
    pub offset: u64,
}

/// What the next bytes of a segment are.
pub(super) enum Next {
    Record(RecordHeader, Bytes),
    /// The file ends exactly here.
    End,
    /// Not a whole, intact record: why.
    Damaged(String),
}

impl RecordReader {
    pub async fn open(path: &Path, offset: u64) -> Result<RecordReader, ReplicationError> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| io_error(path, "opening a spool segment", e))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| io_error(path, "reading a spool segment", e))?;
        Ok(RecordReader {
            path: path.to_owned(),
            file: BufReader::with_capacity(256 << 10, file),
            offset,
        })
    }

    pub async fn next(&mut self) -> Result<Next, ReplicationError> {
        let mut head = [0u8; RECORD_HEADER_LEN];
        let got = self.read_up_to(&mut head).await?;
        if got == 0 {
            return Ok(Next::End);
        }
        if got < head.len() {
            return Ok(Next::Damaged(format!(
                "a record header cut short at byte {}",
                self.offset
            )));
        }
        let Some(header) = RecordHeader::decode(&head) else {
            return Ok(Next::Damaged(format!(
                "an unknown record kind at byte {}",
                self.offset
            )));
        };
        let mut payload = BytesMut::zeroed(header.len as usize);
        let got = self.read_up_to(&mut payload).await?;
        if got < payload.len() {
            return Ok(Next::Damaged(format!(
                "a record of {} bytes cut short at byte {}",
                header.len, self.offset
            )));
        }
        if !header.matches(&head, &payload) {
            return Ok(Next::Damaged(format!(
                "a record whose checksum does not match at byte {}",
                self.offset
            )));
        }
        self.offset += (RECORD_HEADER_LEN + payload.len()) as u64;
        Ok(Next::Record(header, payload.freeze()))
    }

    /// Fills `buf` as far as the file goes; returns how much it got.
    async fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, ReplicationError> {
        let mut got = 0;
        while got < buf.len() {
            let n = self
                .file
                .read(&mut buf[got..])
                .await
                .map_err(|e| io_error(&self.path, "reading a spool segment", e))?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok(got)
    }
}

/// Reads a segment through to find where its whole content ends. A sealed segment is
/// recognised by its last record alone unless `full`.
pub(super) async fn scan(path: &Path, full: bool) -> Result<Scan, ReplicationError> {
    let file_len = tokio::fs::metadata(path)
        .await
        .map_err(|e| io_error(path, "reading a spool segment", e))?
        .len();
    let mut head = vec![0u8; HEADER_LEN as usize];
    let got = {
        let mut r = RecordReader::open(path, 0).await?;
        r.read_up_to(&mut head).await?
    };
    let header = (got == head.len())
        .then(|| SegmentHeader::decode(&head))
        .flatten();
    let Some(header) = header else {
        return Ok(Scan {
            header: None,
            file_len,
            whole_len: 0,
            end: Lsn(0),
            sealed: false,
            damage: Some("no intact segment header".into()),
        });
    };
    if !full {
        if let Some(scan) = sealed_tail(path, header, file_len).await? {
            return Ok(scan);
        }
    }
    let mut reader = RecordReader::open(path, HEADER_LEN).await?;
    let mut scan = Scan {
        header: Some(header),
        file_len,
        whole_len: HEADER_LEN,
        end: header.start,
        sealed: false,
        damage: None,
    };
    loop {
        match reader.next().await? {
            Next::Record(h, _) => {
                if scan.sealed {
                    scan.damage = Some(format!(
                        "a record after the seal at byte {}",
                        scan.whole_len
                    ));
                    return Ok(scan);
                }
                if h.kind.is_boundary() {
                    if h.end < scan.end {
                        scan.damage = Some(format!(
                            "positions going backwards at byte {} ({} after {})",
                            reader.offset, h.end, scan.end
                        ));
                        return Ok(scan);
                    }
                    scan.whole_len = reader.offset;
                    scan.end = h.end;
                    scan.sealed = h.kind == RecordKind::Seal;
                }
            }
            Next::End => return Ok(scan),
            Next::Damaged(why) => {
                scan.damage = Some(why);
                return Ok(scan);
            }
        }
    }
}

/// The scan of a segment whose last record is an intact seal for it, or `None`.
async fn sealed_tail(
    path: &Path,
    header: SegmentHeader,
    file_len: u64,
) -> Result<Option<Scan>, ReplicationError> {
    let seal_at = file_len.saturating_sub(RECORD_HEADER_LEN as u64);
    if seal_at < HEADER_LEN {
        return Ok(None);
    }
    let mut reader = RecordReader::open(path, seal_at).await?;
    let Next::Record(h, payload) = reader.next().await? else {
        return Ok(None);
    };
    if h.kind != RecordKind::Seal || !payload.is_empty() || h.start != header.start {
        return Ok(None);
    }
    Ok(Some(Scan {
        header: Some(header),
        file_len,
        whole_len: file_len,
        end: h.end,
        sealed: true,
        damage: None,
    }))
}

pub(super) fn io_error(
    path: &Path,
    what: &'static str,
    source: std::io::Error,
) -> ReplicationError {
    ReplicationError::SpoolIo {
        path: path.display().to_string(),
        what,
        source,
    }
}

/// Makes a directory's entries (files created, renamed or removed in it) durable.
pub(super) async fn sync_dir(dir: &Path) -> Result<(), ReplicationError> {
    let d = tokio::fs::File::open(dir)
        .await
        .map_err(|e| io_error(dir, "opening the spool directory", e))?;
    d.sync_all()
        .await
        .map_err(|e| io_error(dir, "syncing the spool directory", e))
}
