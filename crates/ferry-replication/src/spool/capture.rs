//! Streaming Ferry's slot into the spool: every message written in order, the spool synced
//! at least every `sync_every`, and only then — once the caller has recorded it — the synced
//! position confirmed to the source. The position is always the end of a whole transaction
//! (or an idle stream's keepalive position between transactions), so the slot never moves
//! past anything the spool does not hold durably.

use std::future::Future;
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
}

/// Streams `options.slot` from the spool's end into `writer` until `stop` resolves, then
/// syncs a last time and ends the stream politely. Before a synced position is confirmed to
/// the source, `record(position)` is called; when it returns false the position is not
/// confirmed (the source keeps the WAL; nothing is lost).
pub async fn capture(
    conn: ReplicationConnection,
    writer: &mut SpoolWriter,
    options: &CaptureOptions,
    stop: impl Future<Output = ()>,
    record: &mut (dyn FnMut(Lsn) -> bool + Send),
) -> Result<(), ReplicationError> {
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
    }
    sync_and_confirm(writer, &stream, confirmed, record).await?;
    stream.close().await;
    Ok(())
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
