//! Streaming Ferry's slot into the spool: every message written in order, the spool synced
//! at least every `sync_every`, and only then — once the caller has recorded it — the synced
//! position confirmed to the source. The position is always the end of a whole transaction
//! (or an idle stream's keepalive position between transactions), so the slot never moves
//! past anything the spool does not hold durably.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use ferry_model::Lsn;

use super::SpoolWriter;
use crate::pgoutput::{self, DecodeContext, LogicalMessage, StartReplicationOptions};
use crate::{ReplicationConnection, ReplicationError};

/// How a capture runs.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    pub slot: String,
    /// `streaming` must be `None` (whole transactions only) and `messages` off.
    pub start: StartReplicationOptions,
    /// The spool is synced and the position confirmed at least this often while changes come.
    pub sync_every: Duration,
    /// The most the spool directory may take on disk.
    pub max_bytes: u64,
    /// The free space the spool's filesystem keeps: spooling stops before taking it.
    pub keep_free: u64,
}

/// How often the spool's filesystem's free space is looked at.
const DISK_CHECK_EVERY: Duration = Duration::from_millis(100);

/// Why a capture ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureEnd {
    /// `stop` resolved.
    Stopped,
    /// The spool reached a limit: everything up to its last whole transaction is synced and
    /// confirmed; the slot keeps the rest.
    Full(SpoolFull),
}

/// The limit the spool reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolFull {
    /// The spool takes `bytes`, at or past `max_bytes`.
    Size { bytes: u64, max_bytes: u64 },
    /// Its filesystem has `free` bytes left, below `keep_free`.
    Disk { free: u64, keep_free: u64 },
}

impl fmt::Display for SpoolFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolFull::Size { bytes, max_bytes } => write!(
                f,
                "the spool takes {bytes} bytes, at its limit of {max_bytes} ([copy] max_spool)"
            ),
            SpoolFull::Disk { free, keep_free } => write!(
                f,
                "its filesystem has {free} bytes free, below the {keep_free} bytes Ferry leaves free"
            ),
        }
    }
}

/// The size limit, reached when the spool takes `bytes`.
fn too_big(bytes: u64, options: &CaptureOptions) -> Option<SpoolFull> {
    (bytes >= options.max_bytes).then_some(SpoolFull::Size {
        bytes,
        max_bytes: options.max_bytes,
    })
}

/// The disk's reserve, reached when the filesystem of `dir` has less free space.
fn disk_full(dir: &Path, options: &CaptureOptions) -> Option<SpoolFull> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    (free < options.keep_free).then_some(SpoolFull::Disk {
        free,
        keep_free: options.keep_free,
    })
}

/// Streams `options.slot` from the spool's end into `writer` until `stop` resolves or the
/// spool reaches a limit, then syncs a last time and ends the stream politely. Before a synced
/// position is confirmed to the source, `record(position)` is called; when it returns false
/// the position is not confirmed (the source keeps the WAL; nothing is lost).
pub async fn capture(
    conn: ReplicationConnection,
    writer: &mut SpoolWriter,
    options: &CaptureOptions,
    stop: impl Future<Output = ()>,
    record: &mut (dyn FnMut(Lsn) -> bool + Send),
) -> Result<CaptureEnd, ReplicationError> {
    // The size is counted as the writer writes, the disk looked at every 100 ms.
    let base = super::disk_bytes(writer.dir());
    let full = |writer: &SpoolWriter| {
        too_big(base + writer.written(), options).or_else(|| disk_full(writer.dir(), options))
    };
    if let Some(limit) = full(writer) {
        return Ok(CaptureEnd::Full(limit));
    }
    if options.start.streaming.is_some() || options.start.messages {
        return Err(ReplicationError::Protocol(
            "the spool takes whole transactions only (no streaming, no messages)".into(),
        ));
    }
    let start = writer.end();
    let mut stream = conn
        .start_logical(&options.slot, start, &options.start)
        .await?;
    let ctx = DecodeContext {
        protocol_version: options.start.proto_version,
        in_stream: false,
    };
    let mut in_transaction = false;
    let mut confirmed = start;
    let mut last_sync = Instant::now();
    let mut last_limit_check = Instant::now();
    let mut end = CaptureEnd::Stopped;
    let tick = Duration::from_millis(100).min(options.sync_every);
    tokio::pin!(stop);
    loop {
        let next = tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(tick) => None,
            next = stream.next() => Some(next),
        };
        match next {
            Some(Ok(Some(x))) => match x.data.first() {
                Some(b'B') => {
                    in_transaction = true;
                    writer.data(x.wal_start, x.wal_end, &x.data).await?;
                }
                Some(b'C') => {
                    let LogicalMessage::Commit { end_lsn, .. } = pgoutput::decode(&x.data, ctx)?
                    else {
                        return Err(ReplicationError::Protocol(
                            "a Commit that is not one".into(),
                        ));
                    };
                    in_transaction = false;
                    writer.commit(x.wal_start, end_lsn, &x.data).await?;
                }
                Some(b'R') => {
                    let LogicalMessage::Relation { rel_id, .. } = pgoutput::decode(&x.data, ctx)?
                    else {
                        return Err(ReplicationError::Protocol(
                            "a Relation that is not one".into(),
                        ));
                    };
                    writer
                        .relation(rel_id, x.wal_start, x.wal_end, x.data.clone())
                        .await?;
                }
                Some(b'S' | b'E' | b'c' | b'A') => {
                    return Err(ReplicationError::Protocol(
                        "a streamed transaction, which the spool does not request".into(),
                    ))
                }
                _ => writer.data(x.wal_start, x.wal_end, &x.data).await?,
            },
            Some(Ok(None)) => {
                return Err(ReplicationError::Protocol(format!(
                    "the source ended the stream of slot \"{}\"",
                    options.slot
                )))
            }
            Some(Err(e)) => return Err(e),
            None => {}
        }
        if !in_transaction {
            if let Some(end) = stream.idle_end() {
                writer.mark(end).await?;
            }
        }
        if writer.unsynced() && last_sync.elapsed() >= options.sync_every {
            last_sync = Instant::now();
            confirmed = sync_and_confirm(writer, &stream, confirmed, record).await?;
        }
        let limit = too_big(base + writer.written(), options).or_else(|| {
            (last_limit_check.elapsed() >= DISK_CHECK_EVERY)
                .then(|| {
                    last_limit_check = Instant::now();
                    disk_full(writer.dir(), options)
                })
                .flatten()
        });
        if let Some(limit) = limit {
            // An unfinished transaction at the end is cut when the spool is next opened.
            end = CaptureEnd::Full(limit);
            break;
        }
    }
    sync_and_confirm(writer, &stream, confirmed, record).await?;
    stream.close().await;
    Ok(end)
}

/// Syncs the spool; confirms the durable position once `record` accepted it.
async fn sync_and_confirm(
    writer: &mut SpoolWriter,
    stream: &crate::LogicalStream,
    confirmed: Lsn,
    record: &mut (dyn FnMut(Lsn) -> bool + Send),
) -> Result<Lsn, ReplicationError> {
    let durable = writer.sync().await?;
    if durable > confirmed && record(durable) {
        stream.confirm(durable, durable);
        return Ok(durable);
    }
    Ok(confirmed)
}
