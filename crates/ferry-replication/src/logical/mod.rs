//! `START_REPLICATION SLOT … LOGICAL` and the CopyBoth stream it opens.
//!
//! One owned task (see [`task`]) owns the socket. It reads CopyData, forwards every XLogData
//! into a bounded channel that [`LogicalStream::next`] drains, answers keepalives that ask for
//! a reply at once, and sends a standby status update every `status_interval` with the latest
//! positions given to [`LogicalStream::confirm`].
//!
//! A slow consumer never gets the session killed: when the channel is full the task queues
//! messages locally up to `buffer_bytes`, then stops reading the socket (so memory stays
//! bounded and TCP pushes back on the walsender) but keeps sending its periodic status
//! updates. The walsender's `wal_sender_timeout` (60 s by default) counts from the last
//! message *received from us*, and the walsender keeps processing our replies even while its
//! own sends are blocked, so those updates keep the session alive without reading any
//! keepalive. `status_interval` must therefore stay well below the source's
//! `wal_sender_timeout`.
//!
//! Keepalives also carry how far the walsender has decoded. [`LogicalStream::idle_end`] hands
//! that position to the consumer once every message sent before the keepalive has been
//! returned by [`LogicalStream::next`], so a consumer with nothing pending can confirm it and
//! an idle slot stops holding WAL back.

mod problem;
mod task;

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use ferry_model::Lsn;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use problem::StreamProblem;

use crate::pgoutput::StartReplicationOptions;
use crate::transport::BoxStream;
use crate::{ReplicationConnection, ReplicationError};

/// One pgoutput message from the stream, with the positions the server sent it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XLogData {
    /// 0/0 for messages inside a transaction: never a position to acknowledge.
    pub wal_start: Lsn,
    pub wal_end: Lsn,
    /// Microseconds since 2000-01-01 00:00 UTC.
    pub send_time_us: i64,
    /// One pgoutput message (see [`crate::pgoutput::StreamState`]).
    pub data: Bytes,
}

/// How the stream task paces itself.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// A standby status update is sent at least this often (keep it well below the source's
    /// `wal_sender_timeout`).
    pub status_interval: Duration,
    /// Messages waiting for [`LogicalStream::next`] in the channel.
    pub channel_capacity: usize,
    /// Payload bytes the task queues beyond a full channel before it stops reading the socket.
    pub buffer_bytes: usize,
}

impl Default for StreamSettings {
    fn default() -> StreamSettings {
        StreamSettings {
            status_interval: Duration::from_secs(10),
            channel_capacity: 1024,
            buffer_bytes: 16 << 20,
        }
    }
}

/// What the consumer reported: `written` received (or spooled), `flushed` durable on the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Positions {
    pub(crate) written: Lsn,
    pub(crate) flushed: Lsn,
}

impl Positions {
    /// Moves forward only (`written` is at least `flushed`); true when something moved.
    fn advance(&mut self, written: Lsn, flushed: Lsn) -> bool {
        let before = *self;
        self.flushed = self.flushed.max(flushed);
        self.written = self.written.max(written).max(self.flushed);
        *self != before
    }
}

type Item = Result<Option<XLogData>, ReplicationError>;

/// The last keepalive that moved `wal_end` forward, and how many XLogData came before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Keepalive {
    pub(crate) wal_end: Lsn,
    pub(crate) after: u64,
}

/// A running logical replication stream. Dropping it aborts its task and closes the socket;
/// [`LogicalStream::close`] ends it politely.
pub struct LogicalStream {
    rx: mpsc::Receiver<Item>,
    positions: watch::Sender<Positions>,
    /// The latest keepalive's `wal_end`, with how many XLogData the task had delivered before it.
    keepalive: watch::Receiver<Keepalive>,
    /// XLogData returned by `next` so far.
    received: u64,
    close: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    slot: String,
    finished: bool,
}

impl ReplicationConnection {
    /// Starts streaming `slot` from `start` with the default [`StreamSettings`].
    pub async fn start_logical(
        self,
        slot: &str,
        start: Lsn,
        options: &StartReplicationOptions,
    ) -> Result<LogicalStream, ReplicationError> {
        self.start_logical_with(slot, start, options, StreamSettings::default())
            .await
    }

    /// `START_REPLICATION SLOT <slot> LOGICAL <start> (<options>)`. The positions reported
    /// before the first [`LogicalStream::confirm`] are `start`: pass the slot's
    /// `confirmed_flush_lsn`, or a later position whose changes the target already holds.
    /// Must be spawned inside a tokio runtime.
    pub async fn start_logical_with(
        self,
        slot: &str,
        start: Lsn,
        options: &StartReplicationOptions,
        settings: StreamSettings,
    ) -> Result<LogicalStream, ReplicationError> {
        crate::slot::check_slot_name(slot)?;
        let (mut stream, mut buf) = self.into_parts();
        let sql = format!(
            "START_REPLICATION SLOT {slot} LOGICAL {start} {}",
            options.to_sql()
        );
        let mut out = BytesMut::new();
        frontend::query(&sql, &mut out)?;
        stream.write_all(&out).await?;
        stream.flush().await?;
        wait_for_copy_both(&mut stream, &mut buf, slot).await?;

        let initial = Positions {
            written: start,
            flushed: start,
        };
        let (positions, positions_rx) = watch::channel(initial);
        let (keepalive_tx, keepalive) = watch::channel(Keepalive::default());
        let (tx, rx) = mpsc::channel(settings.channel_capacity.max(1));
        let (close_tx, close_rx) = oneshot::channel();
        let channels = task::Channels {
            tx,
            positions: positions_rx,
            keepalive: keepalive_tx,
        };
        let task = task::Task::new(stream, buf, channels, settings, slot);
        Ok(LogicalStream {
            rx,
            positions,
            keepalive,
            received: 0,
            close: Some(close_tx),
            task: Some(tokio::spawn(task.run(close_rx))),
            slot: slot.to_owned(),
            finished: false,
        })
    }
}

/// Reads up to the CopyBothResponse (`W`, which postgres-protocol does not parse).
async fn wait_for_copy_both(
    stream: &mut BoxStream,
    buf: &mut BytesMut,
    slot: &str,
) -> Result<(), ReplicationError> {
    loop {
        if buf.len() >= 5 && buf.first() == Some(&b'W') {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() > len {
                buf.advance(len + 1);
                return Ok(());
            }
        } else if let Some(msg) = Message::parse(buf)? {
            match msg {
                Message::ErrorResponse(body) => return Err(problem::from_server(slot, &body)),
                Message::NoticeResponse(_) | Message::ParameterStatus(_) => {}
                _ => {
                    return Err(ReplicationError::Protocol(
                        "unexpected answer to START_REPLICATION (expected CopyBothResponse)".into(),
                    ))
                }
            }
            continue;
        }
        buf.reserve(8192);
        if stream.read_buf(buf).await? == 0 {
            return Err(problem::closed(slot));
        }
    }
}

impl LogicalStream {
    /// The next XLogData. `Ok(None)` when the server ended the stream (CopyDone); errors of
    /// the server or the connection come out here, after the messages received before them.
    pub async fn next(&mut self) -> Result<Option<XLogData>, ReplicationError> {
        if self.finished {
            return Ok(None);
        }
        match self.rx.recv().await {
            Some(Ok(Some(x))) => {
                self.received += 1;
                Ok(Some(x))
            }
            Some(other) => {
                self.finished = true;
                other
            }
            None => {
                self.finished = true;
                Err(ReplicationError::Protocol(format!(
                    "the stream task of slot \"{}\" stopped unexpectedly",
                    self.slot
                )))
            }
        }
    }

    /// Reports progress without waiting; the next status update carries it. `written`: the
    /// position received (or spooled); `flushed`: the end LSN of the last Commit whose changes
    /// are durable on the target (the source may recycle WAL before it). Both only move
    /// forward: smaller values than already reported are ignored.
    pub fn confirm(&self, written: Lsn, flushed: Lsn) {
        self.positions
            .send_if_modified(|p| p.advance(written, flushed));
    }

    /// The source's decoding position from its latest keepalive, once every message it sent
    /// before that keepalive has been returned by [`LogicalStream::next`] (`None` before).
    /// Every transaction that commits after it will still be sent, so a consumer that has
    /// applied and committed everything it received may confirm this position: an idle slot
    /// then stops holding back WAL the source could recycle.
    pub fn idle_end(&self) -> Option<Lsn> {
        let k = *self.keepalive.borrow();
        (k.after == self.received && k.wal_end > Lsn(0)).then_some(k.wal_end)
    }

    /// Sends a last status update, CopyDone and Terminate, and waits for the task to end.
    pub async fn close(mut self) {
        if let Some(close) = self.close.take() {
            let _ = close.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LogicalStream {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_only_move_forward() {
        let mut p = Positions {
            written: Lsn(10),
            flushed: Lsn(10),
        };
        assert!(!p.advance(Lsn(5), Lsn(5)));
        assert!(p.advance(Lsn(30), Lsn(20)));
        assert_eq!((p.written, p.flushed), (Lsn(30), Lsn(20)));
        assert!(!p.advance(Lsn(25), Lsn(15)));
        assert!(p.advance(Lsn(0), Lsn(40)));
        assert_eq!((p.written, p.flushed), (Lsn(40), Lsn(40)));
    }
}
