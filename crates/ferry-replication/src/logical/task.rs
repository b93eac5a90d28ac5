//! The task that owns the socket of a [`super::LogicalStream`].

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::MissedTickBehavior;

use super::{problem, Item, Keepalive, Positions, StreamSettings, XLogData};
use crate::stream::{standby_status_update, ReplicationMessage};
use crate::transport::BoxStream;
use crate::ReplicationError;

/// Seconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_OFFSET_S: u64 = 946_684_800;

enum Event {
    Close,
    Tick,
    Sent,
    ConsumerGone,
    Read(std::io::Result<usize>),
}

/// How the task talks to its [`super::LogicalStream`].
pub(super) struct Channels {
    /// Messages for `next`.
    pub(super) tx: mpsc::Sender<Item>,
    /// What the consumer confirmed.
    pub(super) positions: watch::Receiver<Positions>,
    /// The latest keepalive, for `idle_end`.
    pub(super) keepalive: watch::Sender<Keepalive>,
}

pub(super) struct Task {
    stream: BoxStream,
    buf: BytesMut,
    tx: mpsc::Sender<Item>,
    positions: watch::Receiver<Positions>,
    keepalive: watch::Sender<Keepalive>,
    /// XLogData handed on so far (into the channel or the local queue, in stream order).
    delivered: u64,
    settings: StreamSettings,
    slot: String,
    /// Received, not yet in the channel (the channel was full).
    pending: VecDeque<Item>,
    pending_bytes: usize,
    /// The stream ended (CopyDone or an error); its last item is in `pending`.
    ended: bool,
}

impl Task {
    pub(super) fn new(
        stream: BoxStream,
        buf: BytesMut,
        channels: Channels,
        settings: StreamSettings,
        slot: &str,
    ) -> Task {
        Task {
            stream,
            buf,
            tx: channels.tx,
            positions: channels.positions,
            keepalive: channels.keepalive,
            delivered: 0,
            settings,
            slot: slot.to_owned(),
            pending: VecDeque::new(),
            pending_bytes: 0,
            ended: false,
        }
    }

    pub(super) async fn run(mut self, mut close: oneshot::Receiver<()>) {
        let period = self.settings.status_interval.max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Messages already read with the CopyBothResponse.
        if let Err(e) = self.drain().await {
            self.end(Err(e));
        }
        loop {
            if self.ended && self.pending.is_empty() {
                return; // the last item was delivered
            }
            let reading = !self.ended
                && (self.pending.is_empty() || self.pending_bytes < self.settings.buffer_bytes);
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 << 10);
            }
            // Every branch is cancel safe: `read_buf` reads nothing when another branch wins,
            // `reserve` takes no slot.
            let event = tokio::select! {
                biased;
                _ = &mut close => Event::Close,
                _ = ticker.tick(), if !self.ended => Event::Tick,
                permit = self.tx.reserve(), if !self.pending.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(item) = self.pending.pop_front() {
                            if let Ok(Some(x)) = &item {
                                self.pending_bytes -= x.data.len();
                            }
                            permit.send(item);
                        }
                        Event::Sent
                    }
                    Err(_) => Event::ConsumerGone,
                },
                read = self.stream.read_buf(&mut self.buf), if reading => Event::Read(read),
            };
            let result = match event {
                Event::Close => return self.shutdown().await,
                Event::ConsumerGone => return,
                Event::Sent => Ok(()),
                Event::Tick => self.status().await,
                Event::Read(Ok(0)) => Err(problem::closed(&self.slot)),
                Event::Read(Ok(_)) => self.drain().await,
                Event::Read(Err(e)) => Err(e.into()),
            };
            if let Err(e) = result {
                self.end(Err(e));
            }
        }
    }

    /// Handles every complete message in the read buffer.
    async fn drain(&mut self) -> Result<(), ReplicationError> {
        while !self.ended {
            let Some(msg) = Message::parse(&mut self.buf)? else {
                return Ok(());
            };
            match msg {
                Message::CopyData(body) => {
                    match ReplicationMessage::parse_bytes(&body.into_bytes())? {
                        ReplicationMessage::XLogData {
                            wal_start,
                            wal_end,
                            send_time_us,
                            data,
                        } => self.push(XLogData {
                            wal_start,
                            wal_end,
                            send_time_us,
                            data,
                        }),
                        ReplicationMessage::PrimaryKeepalive {
                            wal_end,
                            reply_requested,
                            ..
                        } => {
                            let after = self.delivered;
                            self.keepalive.send_if_modified(|k| {
                                let forward = wal_end > k.wal_end;
                                if forward {
                                    *k = Keepalive { wal_end, after };
                                }
                                forward
                            });
                            if reply_requested {
                                self.status().await?;
                            }
                        }
                    }
                }
                Message::CopyDone => {
                    // The server ends the stream: end ours too, then leave.
                    let mut out = BytesMut::new();
                    frontend::copy_done(&mut out);
                    frontend::terminate(&mut out);
                    let _ = self.send(&out).await;
                    self.end(Ok(None));
                }
                Message::CommandComplete(_) => {
                    // A walsender whose server shuts down ends the COPY with CommandComplete
                    // and no CopyDone, then exits: the stream is over.
                    self.end(Ok(None));
                }
                Message::ErrorResponse(body) => {
                    return Err(problem::from_server(&self.slot, &body))
                }
                Message::NoticeResponse(body) => {
                    if let Some(e) = problem::from_notice(&self.slot, &body) {
                        return Err(e);
                    }
                }
                Message::ParameterStatus(_) => {}
                _ => {
                    return Err(ReplicationError::Protocol(
                        "unexpected message in the replication stream".into(),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Into the channel when it has room, else into the local queue (order is kept).
    fn push(&mut self, x: XLogData) {
        self.delivered += 1;
        if self.pending.is_empty() {
            match self.tx.try_send(Ok(Some(x))) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(Ok(Some(x)))) => self.queue(x),
                Err(_) => self.ended = true, // the consumer is gone
            }
        } else {
            self.queue(x);
        }
    }

    fn queue(&mut self, x: XLogData) {
        self.pending_bytes += x.data.len();
        self.pending.push_back(Ok(Some(x)));
    }

    /// Stops reading; `last` is delivered after everything received before it.
    fn end(&mut self, last: Item) {
        self.ended = true;
        self.pending.push_back(last);
    }

    /// A standby status update with the consumer's latest positions.
    async fn status(&mut self) -> Result<(), ReplicationError> {
        let p = *self.positions.borrow();
        let payload = standby_status_update(p.written, p.flushed, p.flushed, now_us(), false);
        let mut out = BytesMut::new();
        frontend::CopyData::new(payload)?.write(&mut out);
        self.send(&out).await
    }

    async fn send(&mut self, out: &[u8]) -> Result<(), ReplicationError> {
        self.stream.write_all(out).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// A last status update, CopyDone and Terminate, then the server's remaining output is
    /// read (briefly) until it closes the connection.
    async fn shutdown(&mut self) {
        if !self.ended {
            let _ = self.status().await;
        }
        let mut out = BytesMut::new();
        frontend::copy_done(&mut out);
        frontend::terminate(&mut out);
        if self.send(&out).await.is_err() {
            return;
        }
        let drain = async {
            let mut sink = vec![0u8; 64 << 10];
            while matches!(self.stream.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        let _ = self.stream.shutdown().await;
    }
}

/// Microseconds since 2000-01-01 00:00 UTC.
fn now_us() -> i64 {
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let us = since_unix.as_micros() as i64;
    us - (PG_EPOCH_OFFSET_S as i64) * 1_000_000
}
