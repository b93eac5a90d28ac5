//! Appending to the spool. Records go through a buffer; [`SpoolWriter::sync`] writes and
//! fsyncs them and says how far the spool is durable: to the last Commit or mark written
//! before it, never into a transaction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_model::Lsn;
use tokio::io::{AsyncWriteExt, BufWriter};

use super::format::{RecordHeader, RecordKind, SegmentHeader, HEADER_LEN};
use super::segment::{self, io_error};
use crate::ReplicationError;

/// A segment is finished at the first Commit after it reaches this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// Appends to a spool directory (one writer at a time: `ferry copy` holds the state
/// directory's lock).
pub struct SpoolWriter {
    dir: PathBuf,
    proto_version: u32,
    seq: u32,
    path: PathBuf,
    file: BufWriter<tokio::fs::File>,
    /// The current segment's start.
    start: Lsn,
    /// Bytes in the current segment, buffered ones included.
    len: u64,
    /// Bytes written by this writer, buffered ones included.
    written: u64,
    /// The offset just past the last boundary record: what a clean end keeps.
    whole_len: u64,
    /// The end of the last boundary record written (buffered or not).
    end: Lsn,
    /// The end of the last boundary record fsynced.
    durable: Lsn,
    /// Relation messages of this session, repeated at the head of each new segment.
    relations: BTreeMap<u32, Bytes>,
    segment_bytes: u64,
}

impl SpoolWriter {
    /// Opens the spool in `dir` for appending, creating it (starting at `start_if_new`) when
    /// there is none. A torn tail (a crash mid-write) and an unfinished transaction at the
    /// end are cut off first: appending continues at the last Commit or mark, [`Self::end`].
    pub async fn open(
        dir: &Path,
        proto_version: u32,
        start_if_new: Lsn,
    ) -> Result<SpoolWriter, ReplicationError> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io_error(dir, "creating the spool directory", e))?;
        loop {
            let segments = segment::list(dir).await?;
            let Some((seq, path)) = segments.last().cloned() else {
                if let Some(parent) = dir.parent() {
                    segment::sync_dir(parent).await?;
                }
                return SpoolWriter::create(dir, 1, proto_version, start_if_new, BTreeMap::new())
                    .await;
            };
            let scan = segment::scan(&path, false).await?;
            let Some(header) = scan.header else {
                if scan.file_len >= HEADER_LEN {
                    return Err(ReplicationError::SpoolCorrupt {
                        path: path.display().to_string(),
                        detail: "its header is damaged".into(),
                    });
                }
                // Created but never written: the previous segment is sealed and durable.
                remove_file(&path).await?;
                segment::sync_dir(dir).await?;
                continue;
            };
            if scan.sealed || header.proto_version != proto_version {
                let mut writer = SpoolWriter::append(dir, seq, &path, &scan, header).await?;
                if !scan.sealed {
                    writer.seal().await?;
                }
                return SpoolWriter::create(dir, seq + 1, proto_version, scan.end, BTreeMap::new())
                    .await;
            }
            if scan.whole_len < scan.file_len {
                tracing::info!(
                    segment = %path.display(),
                    cut = scan.file_len - scan.whole_len,
                    reason = scan.damage.as_deref().unwrap_or("an unfinished transaction"),
                    "spool: cutting the tail after the last whole transaction"
                );
            }
            return SpoolWriter::append(dir, seq, &path, &scan, header).await;
        }
    }

    /// Continues segment `seq` after its last boundary record.
    async fn append(
        dir: &Path,
        seq: u32,
        path: &Path,
        scan: &segment::Scan,
        header: SegmentHeader,
    ) -> Result<SpoolWriter, ReplicationError> {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .await
            .map_err(|e| io_error(path, "opening a spool segment", e))?;
        if scan.whole_len < scan.file_len {
            file.set_len(scan.whole_len)
                .await
                .map_err(|e| io_error(path, "cutting a torn spool tail", e))?;
            file.sync_all()
                .await
                .map_err(|e| io_error(path, "cutting a torn spool tail", e))?;
        }
        let mut file = BufWriter::with_capacity(1 << 20, file);
        seek_end(&mut file, path).await?;
        Ok(SpoolWriter {
            dir: dir.to_owned(),
            proto_version: header.proto_version,
            seq,
            path: path.to_owned(),
            file,
            start: header.start,
            len: scan.whole_len,
            written: 0,
            whole_len: scan.whole_len,
            end: scan.end,
            durable: scan.end,
            relations: BTreeMap::new(),
            segment_bytes: SEGMENT_BYTES,
        })
    }

    /// Creates segment `seq` starting at `start`, with `relations` at its head, durably.
    async fn create(
        dir: &Path,
        seq: u32,
        proto_version: u32,
        start: Lsn,
        relations: BTreeMap<u32, Bytes>,
    ) -> Result<SpoolWriter, ReplicationError> {
        let path = segment::path(dir, seq);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| io_error(&path, "creating a spool segment", e))?;
        let mut writer = SpoolWriter {
            dir: dir.to_owned(),
            proto_version,
            seq,
            path: path.clone(),
            file: BufWriter::with_capacity(1 << 20, file),
            start,
            len: 0,
            written: 0,
            whole_len: 0,
            end: start,
            durable: start,
            relations: BTreeMap::new(),
            segment_bytes: SEGMENT_BYTES,
        };
        let header = SegmentHeader {
            proto_version,
            start,
        }
        .encode();
        writer.write_raw(&header).await?;
        writer.whole_len = writer.len;
        for (rel_id, payload) in relations {
            writer.relation(rel_id, start, start, payload).await?;
        }
        writer.whole_len = writer.len;
        writer.sync().await?;
        segment::sync_dir(dir).await?;
        Ok(writer)
    }

    /// The position the spool holds everything up to once synced (the last Commit or mark
    /// written).
    pub fn end(&self) -> Lsn {
        self.end
    }

    /// Bytes written since this writer was opened, buffered ones included.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The spool's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The position the spool holds everything up to on disk.
    pub fn durable(&self) -> Lsn {
        self.durable
    }

    /// Whether a Commit or mark was written since the last sync.
    pub fn unsynced(&self) -> bool {
        self.end > self.durable
    }

    /// Rolls to a new segment at this size (tests).
    pub fn set_segment_bytes(&mut self, bytes: u64) {
        self.segment_bytes = bytes.max(HEADER_LEN);
    }

    /// One message inside a transaction (or opening it).
    pub async fn data(
        &mut self,
        start: Lsn,
        end: Lsn,
        payload: &[u8],
    ) -> Result<(), ReplicationError> {
        self.record(RecordKind::Data, start, end, payload).await
    }

    /// A Relation message: written like any message, and kept to head the next segment.
    pub async fn relation(
        &mut self,
        rel_id: u32,
        start: Lsn,
        end: Lsn,
        payload: Bytes,
    ) -> Result<(), ReplicationError> {
        self.record(RecordKind::Data, start, end, &payload).await?;
        self.relations.insert(rel_id, payload);
        Ok(())
    }

    /// A Commit message whose end LSN is `end`. Finishes the segment when it is full.
    pub async fn commit(
        &mut self,
        start: Lsn,
        end: Lsn,
        payload: &[u8],
    ) -> Result<(), ReplicationError> {
        self.record(RecordKind::Commit, start, end, payload).await?;
        self.end = self.end.max(end);
        if self.len >= self.segment_bytes {
            self.roll().await?;
        }
        Ok(())
    }

    /// Between transactions: the source has nothing to send before `at`.
    pub async fn mark(&mut self, at: Lsn) -> Result<(), ReplicationError> {
        if at <= self.end {
            return Ok(());
        }
        self.record(RecordKind::Mark, at, at, &[]).await?;
        self.end = at;
        Ok(())
    }

    /// Writes and fsyncs everything buffered; returns the durable position.
    pub async fn sync(&mut self) -> Result<Lsn, ReplicationError> {
        self.file
            .flush()
            .await
            .map_err(|e| io_error(&self.path, "writing the spool", e))?;
        self.file
            .get_ref()
            .sync_data()
            .await
            .map_err(|e| io_error(&self.path, "syncing the spool", e))?;
        self.durable = self.end;
        Ok(self.durable)
    }

    /// Ends cleanly: an unfinished transaction at the end is cut off, the segment sealed.
    /// Returns the durable position.
    pub async fn close(mut self) -> Result<Lsn, ReplicationError> {
        self.sync().await?;
        self.seal().await?;
        Ok(self.durable)
    }

    /// Seals the current segment durably (after cutting what follows the last boundary).
    async fn seal(&mut self) -> Result<(), ReplicationError> {
        self.file
            .flush()
            .await
            .map_err(|e| io_error(&self.path, "writing the spool", e))?;
        if self.whole_len < self.len {
            self.file
                .get_ref()
                .set_len(self.whole_len)
                .await
                .map_err(|e| io_error(&self.path, "cutting an unfinished transaction", e))?;
            self.len = self.whole_len;
            seek_end(&mut self.file, &self.path).await?;
        }
        let (start, end) = (self.start, self.end);
        self.record(RecordKind::Seal, start, end, &[]).await?;
        self.sync().await?;
        Ok(())
    }

    /// Seals this segment and continues in the next, starting where this one ends.
    async fn roll(&mut self) -> Result<(), ReplicationError> {
        self.seal().await?;
        let relations = std::mem::take(&mut self.relations);
        let next = SpoolWriter::create(
            &self.dir,
            self.seq + 1,
            self.proto_version,
            self.end,
            relations.clone(),
        )
        .await?;
        let segment_bytes = self.segment_bytes;
        *self = next;
        self.segment_bytes = segment_bytes;
        self.relations = relations;
        Ok(())
    }

    async fn record(
        &mut self,
        kind: RecordKind,
        start: Lsn,
        end: Lsn,
        payload: &[u8],
    ) -> Result<(), ReplicationError> {
        let header = RecordHeader::encode(kind, start, end, payload).ok_or_else(|| {
            ReplicationError::Protocol(format!(
                "a message of {} bytes is too large to spool",
                payload.len()
            ))
        })?;
        self.write_raw(&header).await?;
        self.write_raw(payload).await?;
        if kind.is_boundary() {
            self.whole_len = self.len;
        }
        Ok(())
    }

    async fn write_raw(&mut self, bytes: &[u8]) -> Result<(), ReplicationError> {
        self.file
            .write_all(bytes)
            .await
            .map_err(|e| io_error(&self.path, "writing the spool", e))?;
        self.len += bytes.len() as u64;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

/// Positions the file at its end (a `BufWriter` flushes first).
async fn seek_end(
    file: &mut BufWriter<tokio::fs::File>,
    path: &Path,
) -> Result<(), ReplicationError> {
    use tokio::io::AsyncSeekExt;
    file.seek(std::io::SeekFrom::End(0))
        .await
        .map_err(|e| io_error(path, "opening a spool segment", e))?;
    Ok(())
}

async fn remove_file(path: &Path) -> Result<(), ReplicationError> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(io_error(path, "removing a spool segment", e))
        }
        _ => Ok(()),
    }
}
