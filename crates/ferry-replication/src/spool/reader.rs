//! Reading the spool back: which segments there are, how far they reach, their records in
//! order; removing what is no longer needed.

use std::path::{Path, PathBuf};

use ferry_model::Lsn;

use super::format::{RecordKind, SpoolRecord, HEADER_LEN};
use super::segment::{self, io_error, Next, RecordReader};
use crate::ReplicationError;

/// One segment as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub seq: u32,
    pub path: PathBuf,
    pub proto_version: u32,
    pub start: Lsn,
    /// The segment holds every change from `start` up to here.
    pub end: Lsn,
    pub bytes: u64,
    /// Where its records end (before a seal, or before an unfinished or torn tail).
    data_len: u64,
}

/// The spool of one migration, checked: consecutive segments, each starting where the one
/// before ends, all but the last sealed. Opening it changes nothing on disk.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    segments: Vec<SegmentInfo>,
}

impl Spool {
    /// The spool in `dir`; `None` when there is none (no directory, or no segment in it).
    /// A damaged header, a gap, or damage anywhere but at the end of the last segment is an
    /// error ([`ReplicationError::SpoolCorrupt`]); a torn tail of the last segment is where
    /// the spool ends.
    pub async fn open(dir: &Path) -> Result<Option<Spool>, ReplicationError> {
        let found = segment::list(dir).await?;
        let count = found.len();
        let mut segments: Vec<SegmentInfo> = Vec::with_capacity(count);
        for (i, (seq, path)) in found.into_iter().enumerate() {
            let last = i + 1 == count;
            let scan = segment::scan(&path, false).await?;
            let corrupt = |detail: String| ReplicationError::SpoolCorrupt {
                path: path.display().to_string(),
                detail,
            };
            let Some(header) = scan.header else {
                if last && scan.file_len < HEADER_LEN {
                    // Being created when the writer stopped: nothing in it yet.
                    break;
                }
                return Err(corrupt("its header is damaged".into()));
            };
            if !last && !scan.sealed {
                return Err(corrupt(scan.damage.unwrap_or_else(|| {
                    "it was never finished, yet a later segment exists".into()
                })));
            }
            if let Some(prev) = segments.last() {
                if seq != prev.seq + 1 {
                    return Err(corrupt(format!("segment {} is missing", prev.seq + 1)));
                }
                if header.start != prev.end {
                    return Err(corrupt(format!(
                        "it starts at {} but the segment before ends at {}",
                        header.start, prev.end
                    )));
                }
            }
            segments.push(SegmentInfo {
                seq,
                path,
                proto_version: header.proto_version,
                start: header.start,
                end: scan.end,
                bytes: scan.file_len,
                data_len: scan.data_len(),
            });
        }
        if segments.is_empty() {
            return Ok(None);
        }
        Ok(Some(Spool {
            dir: dir.to_owned(),
            segments,
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the spool's content starts (its first remaining segment's start).
    pub fn start(&self) -> Lsn {
        self.segments.first().map_or(Lsn(0), |s| s.start)
    }

    /// The spool holds every change from [`Self::start`] up to here.
    pub fn end(&self) -> Lsn {
        self.segments.last().map_or(Lsn(0), |s| s.end)
    }

    /// Bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    /// Every record of every segment, in order, up to [`Self::end`].
    pub fn records(&self) -> SpoolRecords {
        SpoolRecords {
            segments: self.segments.clone(),
            next: 0,
            current: None,
        }
    }

    /// Removes the segments (all but the last) that end at or before `through`: everything
    /// in them is applied. Returns how many were removed.
    pub async fn remove_through(&mut self, through: Lsn) -> Result<usize, ReplicationError> {
        let mut removed = 0;
        while self.segments.len() > 1 && self.segments[0].end <= through {
            let s = self.segments.remove(0);
            match tokio::fs::remove_file(&s.path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(&s.path, "removing an applied spool segment", e))
                }
                _ => {}
            }
            removed += 1;
        }
        if removed > 0 {
            segment::sync_dir(&self.dir).await?;
        }
        Ok(removed)
    }
}

/// Removes a spool directory and everything in it (nothing when there is none).
pub async fn remove(dir: &Path) -> Result<(), ReplicationError> {
    match tokio::fs::remove_dir_all(dir).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io_error(dir, "removing the spool", e))
        }
        _ => Ok(()),
    }
}

/// Bytes the spool in `dir` takes on disk (0 when there is none).
pub fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

/// The records of a spool, in order ([`Spool::records`]).
pub struct SpoolRecords {
    segments: Vec<SegmentInfo>,
    next: usize,
    current: Option<(RecordReader, usize)>,
}

impl SpoolRecords {
    /// The next record, `None` after the last; a record that does not match its checksum is
    /// [`ReplicationError::SpoolCorrupt`].
    pub async fn next(&mut self) -> Result<Option<SpoolRecord>, ReplicationError> {
        loop {
            let (reader, i) = match &mut self.current {
                Some(c) => c,
                None => {
                    let Some(s) = self.segments.get(self.next) else {
                        return Ok(None);
                    };
                    let reader = RecordReader::open(&s.path, HEADER_LEN).await?;
                    self.next += 1;
                    self.current.insert((reader, self.next - 1))
                }
            };
            let s = &self.segments[*i];
            if reader.offset >= s.data_len {
                self.current = None;
                continue;
            }
            match reader.next().await? {
                Next::Record(h, payload) => {
                    if h.kind == RecordKind::Seal {
                        self.current = None;
                        continue;
                    }
                    return Ok(Some(SpoolRecord {
                        kind: h.kind,
                        start: h.start,
                        end: h.end,
                        proto_version: s.proto_version,
                        payload,
                    }));
                }
                Next::End => {
                    return Err(ReplicationError::SpoolCorrupt {
                        path: s.path.display().to_string(),
                        detail: format!(
                            "it is shorter than when it was opened ({} bytes)",
                            s.data_len
                        ),
                    })
                }
                Next::Damaged(detail) => {
                    return Err(ReplicationError::SpoolCorrupt {
                        path: s.path.display().to_string(),
                        detail,
                    })
                }
            }
        }
    }
}
