//! One session of the change-capture loop: connect to both sides, check that resuming is
//! safe ([`crate::checks`]), stream from the target's origin position, apply, confirm. Any
//! error ends the session; [`crate::sync`] decides whether another one starts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_model::Lsn;
use ferry_pg::{catalog, sql_error, Connector};
use ferry_replication::pgoutput::{
    protocol_version_for, LogicalMessage, StartReplicationOptions, StreamState,
};
use ferry_replication::{LogicalStream, ReplicationConnection};
use tokio_util::sync::CancellationToken;

use crate::{
    checks, replay, Applier, CdcError, Committed, ConfirmedAhead, Origin, SyncControl, SyncEvent,
};
use crate::{SyncOptions, SyncProgress, SyncSummary};

/// The prefix of the logical message whose position is the goal in `until_caught_up` mode.
const MARKER_PREFIX: &str = "ferry.caught_up";

/// A replication connection left idle longer than this (while the spool is applied) is
/// replaced before streaming: servers and proxies may close idle sessions.
const REPLICATION_IDLE_LIMIT: Duration = Duration::from_secs(10);

/// An idle stream's position is confirmed at most this often (each confirmation is stored
/// by the caller first).
const IDLE_CONFIRM_EVERY: Duration = Duration::from_secs(1);

/// What lasts across the sessions of one run.
pub(crate) struct Run {
    pub(crate) summary: SyncSummary,
    /// Some session started streaming: from then on transient faults are retried.
    pub(crate) streamed_once: bool,
    /// When the current session started streaming.
    pub(crate) session_streamed: Option<Instant>,
    /// What the target's origin holds, as last read.
    pub(crate) durable: Lsn,
    /// The latest confirmation ahead of the origin, stored by the caller or recorded.
    ahead: Option<ConfirmedAhead>,
    last_idle_confirm: Option<Instant>,
    /// Rows online validation read back in the sessions before this one.
    verified_before: u64,
    control: Option<Arc<SyncControl>>,
    /// The transaction being received commits past the control's fence.
    late: Option<Lsn>,
}

impl Run {
    pub(crate) fn new(options: &SyncOptions) -> Run {
        Run {
            summary: SyncSummary::default(),
            streamed_once: false,
            session_streamed: None,
            durable: Lsn(0),
            ahead: options.recorded.confirmed_ahead,
            last_idle_confirm: None,
            verified_before: 0,
            control: options.control.clone(),
            late: None,
        }
    }

    /// Tells the controller, if any, how far the target reflects the source.
    fn publish(&self) {
        if let Some(c) = &self.control {
            c.publish(self.position());
        }
    }

    /// Watches the stream for changes committed past the control's fence.
    fn watch(&mut self, message: &LogicalMessage) {
        let Some(control) = &self.control else {
            return;
        };
        match message {
            LogicalMessage::Begin { final_lsn, .. } => {
                self.late = control.past_fence(*final_lsn).then_some(*final_lsn);
            }
            LogicalMessage::Insert { .. }
            | LogicalMessage::Update { .. }
            | LogicalMessage::Delete { .. }
            | LogicalMessage::Truncate { .. } => {
                if let Some(commit) = self.late {
                    control.leak(commit);
                }
            }
            _ => {}
        }
    }

    /// Idle confirmations are throttled unless the controller waits for a position.
    fn idle_confirm_due(&self) -> bool {
        self.control.as_ref().is_some_and(|c| c.in_a_hurry())
            || self
                .last_idle_confirm
                .is_none_or(|t| t.elapsed() >= IDLE_CONFIRM_EVERY)
    }

    /// How far the target reflects the source: the last applied commit, or a later position
    /// confirmed while the stream was idle.
    pub(crate) fn position(&self) -> Lsn {
        self.ahead.map_or(self.summary.applied, |a| {
            a.confirmed.max(self.summary.applied)
        })
    }

    /// The session streams (or replays the spool) from `applied`: from here on, transient
    /// faults are retried.
    fn streaming(
        &mut self,
        applied: Lsn,
        started_at: Lsn,
        on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
    ) {
        if self.streamed_once {
            on_event(SyncEvent::Resumed { from: applied });
        } else {
            self.summary.started_at = started_at;
        }
        self.summary.applied = applied;
        self.streamed_once = true;
        self.session_streamed = Some(Instant::now());
        self.publish();
    }

    /// Confirms `to` to the source although the origin holds only `self.durable`: reported
    /// (for the caller to store) before the source hears of it.
    /// Without a stream (the spool's replay), only recorded: the source hears of it when
    /// the stream starts there.
    pub(crate) fn confirm_ahead(
        &mut self,
        to: Lsn,
        stream: Option<&LogicalStream>,
        on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
    ) {
        let ahead = ConfirmedAhead {
            applied: self.durable,
            confirmed: to,
        };
        on_event(SyncEvent::ConfirmedAhead(ahead));
        self.ahead = Some(ahead);
        if let Some(stream) = stream {
            stream.confirm(to, to);
        }
        self.publish();
    }
}

/// A second session on the target, beside the applier's: checks the target's identity and
/// reads the origin back after each commit.
pub(crate) struct Observer {
    client: tokio_postgres::Client,
    origin: Origin,
}

/// Confirms a committed group to the source and counts it. The origin is read back first: a
/// group that wrote nothing (only the caught-up marker, or changes that cancelled out) commits
/// without a commit record, so the origin stays where it was, and its position can only be
/// confirmed as a confirmation ahead.
pub(crate) async fn record(
    c: &Committed,
    run: &mut Run,
    stream: Option<&LogicalStream>,
    observer: &Observer,
    on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<(), CdcError> {
    run.durable = observer.origin.progress(&observer.client).await?;
    if run.durable < c.lsn {
        run.confirm_ahead(c.lsn, stream, on_event);
    } else if let Some(stream) = stream {
        stream.confirm(c.lsn, c.lsn);
    }
    run.summary.applied = c.lsn;
    run.summary.transactions += c.transactions as u64;
    run.summary.changes += c.changes as u64;
    run.summary.last_commit_time_us = Some(c.commit_time_us);
    run.publish();
    Ok(())
}

/// One session, until `stop`, caught up (`Ok`), or the first error.
pub(crate) async fn run(
    source: &Connector,
    target: &Connector,
    options: &SyncOptions,
    stop: &CancellationToken,
    run: &mut Run,
    on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<(), CdcError> {
    run.session_streamed = None;
    run.verified_before = run.summary.verified;
    // The target first: nothing is written to a cluster that is not the copy's.
    let observer = target.connect().await?;
    checks::target_identity(&observer, &options.recorded.target_system_id).await?;
    let (mut applier, applied) =
        Applier::start(target.connect().await?, &options.origin, options.limits).await?;
    let observer = Observer {
        origin: Origin::ensure(&observer, &options.origin).await?,
        client: observer,
    };
    run.durable = applied;
    let admin = source.connect().await?;
    let mut conn = ReplicationConnection::connect(source).await?;
    checks::source_identity(&mut conn, &options.recorded.source_system_id).await?;
    let confirmed = checks::slot(&admin, &options.slot).await?;
    checks::publications(&admin, &options.publications).await?;
    let spool = replay::open(options, confirmed, applied, run.ahead).await?;
    checks::resume_position(
        &options.slot,
        &options.origin,
        confirmed,
        applied,
        &options.recorded,
        run.ahead,
        (spool.cover(), &spool.dir()),
    )?;
    let holds = checks::target_holds(applied, &options.recorded);
    // What `ferry copy` spooled comes first; the slot then streams from the spool's end.
    let replaying = spool.is_some();
    if replaying {
        run.streaming(applied, holds, on_event);
    }
    let replay_started = Instant::now();
    let Some(from) = spool
        .replay(holds, &mut applier, run, &observer, &admin, stop, on_event)
        .await?
    else {
        return Ok(()); // stopped while replaying; what was applied is committed
    };
    if replay_started.elapsed() > REPLICATION_IDLE_LIMIT {
        // The replication connection sat idle while the spool was applied: take a fresh one.
        conn = ReplicationConnection::connect(source).await?;
        checks::source_identity(&mut conn, &options.recorded.source_system_id).await?;
    }
    let proto = protocol_version_for(catalog::version_num(&admin).await?);
    let start_options = StartReplicationOptions {
        proto_version: proto,
        publication_names: options.publications.clone(),
        messages: false,
        streaming: None,
    };
    let mut stream = conn
        .start_logical(&options.slot, from.max(applied), &start_options)
        .await?;
    if !replaying {
        // A fresh origin reads 0/0: the stream really starts where the slot stands.
        run.streaming(applied, applied.max(confirmed), on_event);
    }
    let mut decoder = StreamState::new(proto);
    let goal = if options.until_caught_up {
        Some(caught_up_goal(&admin).await?)
    } else {
        None
    };
    let reached = |run: &Run| goal.is_some_and(|g| run.position() >= g);
    let mut last_report = tokio::time::Instant::now();
    let tick = Duration::from_millis(50);
    loop {
        // While messages are waiting, take them without arming a timer for each.
        let waiting = {
            let mut next = std::pin::pin!(stream.next());
            std::future::poll_fn(|cx| {
                std::task::Poll::Ready(std::future::Future::poll(next.as_mut(), cx))
            })
            .await
        };
        let next = if let std::task::Poll::Ready(next) = waiting {
            if stop.is_cancelled() {
                break;
            }
            next
        } else {
            tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(tick) => {
                if applier.due() {
                    if let Some(c) = applier.flush().await.map_err(CdcError::explain_target)? {
                        record(&c, run, Some(&stream), &observer, on_event).await?;
                    }
                }
                confirm_idle(run, &applier, &stream, on_event);
                if reached(run) {
                    break;
                }
                if last_report.elapsed() >= Duration::from_secs(1) {
                    last_report = tokio::time::Instant::now();
                    report(&admin, run, &mut applier, on_event).await?;
                }
                continue;
            }
            next = stream.next() => next,
            }
        };
        let data = match next {
            Ok(Some(data)) => data,
            Ok(None) => {
                let ended = CdcError::StreamEnded {
                    slot: options.slot.clone(),
                };
                return Err(salvage(applier, run, &stream, &observer, on_event, ended).await);
            }
            Err(e) => {
                return Err(salvage(applier, run, &stream, &observer, on_event, e.into()).await)
            }
        };
        let message = decoder.decode_bytes(&data.data)?;
        run.watch(&message);
        let goal_commit = match (&message, goal) {
            (LogicalMessage::Commit { end_lsn, .. }, Some(g)) => *end_lsn >= g,
            _ => false,
        };
        if let Some(c) = applier
            .apply(message)
            .await
            .map_err(CdcError::explain_target)?
        {
            record(&c, run, Some(&stream), &observer, on_event).await?;
        }
        if goal_commit {
            if let Some(c) = applier.flush().await.map_err(CdcError::explain_target)? {
                record(&c, run, Some(&stream), &observer, on_event).await?;
            }
            break;
        }
        confirm_idle(run, &applier, &stream, on_event);
        if reached(run) {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = tokio::time::Instant::now();
            report(&admin, run, &mut applier, on_event).await?;
        }
    }
    if let Some(c) = applier.flush().await.map_err(CdcError::explain_target)? {
        record(&c, run, Some(&stream), &observer, on_event).await?;
    }
    stream.close().await;
    report(&admin, run, &mut applier, on_event).await
}

/// Where "caught up" is, for this session: the position of a (non-transactional) logical
/// message written now. Every transaction committed before it ends before it in the WAL, so
/// once a commit past it is applied, or the stream's idle position passes it with nothing
/// pending, all of them are on the target. The stream does not ask for the message itself
/// (the `messages` option exists only from PostgreSQL 14): the record is there so that the
/// walsender's position moves past the goal even on an idle source. Every session writes its
/// own, so a goal lost in a source crash is written again.
async fn caught_up_goal(admin: &tokio_postgres::Client) -> Result<Lsn, CdcError> {
    let row = admin
        .query_one(
            "SELECT pg_logical_emit_message(false, $1, '')::text",
            &[&MARKER_PREFIX],
        )
        .await
        .map_err(sql_error("writing the caught-up marker on the source"))?;
    let text: String = row
        .try_get(0)
        .map_err(sql_error("writing the caught-up marker on the source"))?;
    text.parse().map_err(|_| {
        CdcError::Pg(ferry_pg::PgError::Sql {
            what: "writing the caught-up marker on the source".into(),
            detail: format!("unexpected position {text:?}"),
            code: None,
        })
    })
}

/// The source side failed: commits the whole transactions already applied (so the next
/// session need not fetch them again), then hands back `error`. The target is dropped either
/// way, which rolls back any partial transaction.
async fn salvage(
    mut applier: Applier,
    run: &mut Run,
    stream: &LogicalStream,
    observer: &Observer,
    on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
    error: CdcError,
) -> CdcError {
    if let Ok(Some(c)) = applier.flush().await {
        // Counted when the origin can be read; confirmed or not, the next session starts
        // from the origin.
        let _ = record(&c, run, Some(stream), observer, on_event).await;
    }
    error
}

/// On an idle stream, confirms the source's keepalive position once everything received is
/// committed, so the slot does not hold back WAL that holds no change for the target.
fn confirm_idle(
    run: &mut Run,
    applier: &Applier,
    stream: &LogicalStream,
    on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) {
    if applier.pending() || !run.idle_confirm_due() {
        return;
    }
    let Some(end) = stream.idle_end() else {
        return;
    };
    if end <= run.position() {
        return;
    }
    run.last_idle_confirm = Some(Instant::now());
    run.confirm_ahead(end, Some(stream), on_event);
}

/// Reports what online validation found and where apply stands.
async fn report(
    admin: &tokio_postgres::Client,
    run: &mut Run,
    applier: &mut Applier,
    on_event: &mut (dyn FnMut(SyncEvent<'_>) + Send),
) -> Result<(), CdcError> {
    let (mismatches, verified) = applier.take_mismatches();
    run.summary.verified = run.verified_before + verified;
    for m in &mismatches {
        run.summary.mismatches += 1;
        on_event(SyncEvent::Mismatch(m));
    }
    let progress = measure(admin, run, applier.pending()).await?;
    on_event(SyncEvent::Progress(&progress));
    Ok(())
}

/// Lag both ways: WAL bytes behind the source's current position, and the age of the last
/// applied commit while changes are pending (0 when caught up).
pub(crate) async fn measure(
    admin: &tokio_postgres::Client,
    run: &Run,
    pending: bool,
) -> Result<SyncProgress, CdcError> {
    let summary = &run.summary;
    let row = admin
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::int8, \
                    ((extract(epoch FROM now()) - 946684800) * 1000000)::float8",
            &[&run.position().to_string()],
        )
        .await
        .map_err(sql_error("measuring the lag on the source"))?;
    let lag_bytes: i64 = row.try_get(0).map_err(sql_error("measuring the lag"))?;
    let now_us: f64 = row.try_get(1).map_err(sql_error("measuring the lag"))?;
    let lag_seconds = match (pending, summary.last_commit_time_us) {
        (true, Some(t)) => ((now_us - t as f64) / 1e6).max(0.0),
        _ => 0.0,
    };
    Ok(SyncProgress {
        applied: summary.applied,
        transactions: summary.transactions,
        lag_bytes: u64::try_from(lag_bytes).unwrap_or(0),
        lag_seconds,
        verified: summary.verified,
        mismatches: summary.mismatches,
    })
}
