//! The change-capture loop: stream from Ferry's slot where the target's origin says apply
//! stopped, decode, apply in groups, and confirm to the source only positions whose target
//! commit is durable, so the source recycles WAL safely and a restart resumes exactly.

use std::time::Duration;

use ferry_model::Lsn;
use ferry_pg::{catalog, sql_error, Connector};
use ferry_replication::pgoutput::{
    protocol_version_for, LogicalMessage, StartReplicationOptions, StreamState,
};
use ferry_replication::ReplicationConnection;
use tokio_util::sync::CancellationToken;

use crate::{Applier, BatchLimits, CdcError, Committed};

/// The prefix of the logical message that marks "caught up" in `until_caught_up` mode.
const MARKER_PREFIX: &str = "ferry.caught_up";

/// What one `sync` run needs besides the two endpoints.
pub struct SyncOptions {
    pub slot: String,
    pub publications: Vec<String>,
    /// The target's replication origin (`origin_name(migration)`).
    pub origin: String,
    pub limits: BatchLimits,
    /// Stop once everything committed on the source before the start has been applied.
    pub until_caught_up: bool,
}

/// Where apply stands, reported after each committed group and every second.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncProgress {
    pub applied: Lsn,
    pub transactions: u64,
    /// The source's current WAL position minus `applied`.
    pub lag_bytes: u64,
    /// Age of the last applied commit while changes are pending; 0 when caught up.
    pub lag_seconds: f64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncSummary {
    pub started_at: Lsn,
    pub applied: Lsn,
    pub transactions: u64,
    pub changes: u64,
    /// Source commit time of the last applied transaction (µs since 2000-01-01).
    pub last_commit_time_us: Option<i64>,
}

/// Confirms a committed group to the source and counts it.
fn record(c: &Committed, summary: &mut SyncSummary, stream: &ferry_replication::LogicalStream) {
    stream.confirm(c.lsn, c.lsn);
    summary.applied = c.lsn;
    summary.transactions += c.transactions as u64;
    summary.changes += c.changes as u64;
    summary.last_commit_time_us = Some(c.commit_time_us);
}

/// Runs until `stop` is cancelled, the server ends the stream, or (with `until_caught_up`)
/// the source's changes up to the start are applied. `on_commit` sees each committed group.
pub async fn sync(
    source: &Connector,
    target: &Connector,
    options: &SyncOptions,
    stop: CancellationToken,
    on_progress: &mut (dyn FnMut(&SyncProgress) + Send),
) -> Result<SyncSummary, CdcError> {
    let (mut applier, applied) =
        Applier::start(target.connect().await?, &options.origin, options.limits).await?;
    let admin = source.connect().await?;
    let proto = protocol_version_for(catalog::version_num(&admin).await?);
    let start_options = StartReplicationOptions {
        proto_version: proto,
        publication_names: options.publications.clone(),
        messages: options.until_caught_up,
        streaming: None,
    };
    let conn = ReplicationConnection::connect(source).await?;
    let mut stream = conn
        .start_logical(&options.slot, applied, &start_options)
        .await?;
    let mut decoder = StreamState::new(proto);
    let marker = if options.until_caught_up {
        // A transactional message commits after everything already committed on the source:
        // once its transaction is applied, so is all of that.
        let content = format!("{}-{}", std::process::id(), applied);
        admin
            .execute(
                "SELECT pg_logical_emit_message(true, $1, $2)",
                &[&MARKER_PREFIX, &content],
            )
            .await
            .map_err(sql_error("writing the caught-up marker on the source"))?;
        Some(content)
    } else {
        None
    };
    let mut summary = SyncSummary {
        started_at: applied,
        applied,
        ..SyncSummary::default()
    };
    let mut marker_seen = false;
    let mut last_report = tokio::time::Instant::now();
    let tick = Duration::from_millis(50);
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(tick) => {
                if applier.due() {
                    if let Some(c) = applier.flush().await? {
                        record(&c, &mut summary, &stream);
                    }
                }
                if last_report.elapsed() >= Duration::from_secs(1) {
                    last_report = tokio::time::Instant::now();
                    let progress = measure(&admin, &summary, applier.pending()).await?;
                    on_progress(&progress);
                }
                continue;
            }
            next = stream.next() => next?,
        };
        let Some(data) = next else { break };
        let message = decoder.decode_bytes(&data.data)?;
        let is_commit = matches!(message, LogicalMessage::Commit { .. });
        if let (
            Some(expected),
            LogicalMessage::Message {
                prefix, content, ..
            },
        ) = (&marker, &message)
        {
            marker_seen |= prefix == MARKER_PREFIX && content.as_ref() == expected.as_bytes();
        }
        if let Some(c) = applier.apply(message).await? {
            record(&c, &mut summary, &stream);
        }
        if is_commit && marker_seen {
            if let Some(c) = applier.flush().await? {
                record(&c, &mut summary, &stream);
            }
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = tokio::time::Instant::now();
            on_progress(&measure(&admin, &summary, applier.pending()).await?);
        }
    }
    if let Some(c) = applier.flush().await? {
        record(&c, &mut summary, &stream);
    }
    stream.close().await;
    on_progress(&measure(&admin, &summary, applier.pending()).await?);
    Ok(summary)
}

/// Lag both ways: WAL bytes behind the source's current position, and the age of the last
/// applied commit while changes are pending (0 when caught up).
async fn measure(
    admin: &tokio_postgres::Client,
    summary: &SyncSummary,
    pending: bool,
) -> Result<SyncProgress, CdcError> {
    let row = admin
        .query_one(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::int8, \
                    ((extract(epoch FROM now()) - 946684800) * 1000000)::float8",
            &[&summary.applied.to_string()],
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
    })
}
