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

/// How a run ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct SyncSummary {
    pub started_at: Lsn,
    pub applied: Lsn,
    pub transactions: u64,
    pub changes: u64,
}

/// Runs until `stop` is cancelled, the server ends the stream, or (with `until_caught_up`)
/// the source's changes up to the start are applied. `on_commit` sees each committed group.
pub async fn sync(
    source: &Connector,
    target: &Connector,
    options: &SyncOptions,
    stop: CancellationToken,
    on_commit: &mut (dyn FnMut(&Committed) + Send),
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
    let mut record =
        |c: &Committed, summary: &mut SyncSummary, stream: &ferry_replication::LogicalStream| {
            stream.confirm(c.lsn, c.lsn);
            summary.applied = c.lsn;
            summary.transactions += c.transactions as u64;
            summary.changes += c.changes as u64;
            on_commit(c);
        };
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
    }
    if let Some(c) = applier.flush().await? {
        record(&c, &mut summary, &stream);
    }
    stream.close().await;
    Ok(summary)
}
