//! A group's life on the target: `BEGIN` when its first statement must go, its run sent when
//! it closes, and its commit (origin position, then `COMMIT`) only after every reply was read
//! and found right — which happens when the session is next needed, so the target applies
//! group N while group N+1 is decoded and folded.

use std::time::Instant;

use ferry_pg::sql_error;

use super::{Applier, Closing, Committed};
use crate::CdcError;

impl Applier {
    /// Commits what is complete: the group in flight, and the open group if it holds whole
    /// transactions. Called when the stream goes quiet, so the position advances without
    /// waiting for a full group, and at the end.
    pub async fn flush(&mut self) -> Result<Option<Committed>, CdcError> {
        if !self.in_transaction && self.batch_open {
            self.close_group().await?;
        }
        self.ready().await?;
        Ok(self.done.take())
    }

    /// Ends the open group at a source commit: its statements are sent, its commit waits for
    /// their replies (`ready`).
    pub(super) async fn close_group(&mut self) -> Result<(), CdcError> {
        let Some((lsn, time_us)) = self.last_commit.take() else {
            return Ok(());
        };
        self.begin_target().await?;
        self.send_run().await?;
        self.closing = Some(Closing {
            lsn,
            time_us,
            transactions: self.batch_transactions,
            changes: self.batch_changes,
            opened: self.batch_started,
            closed: Instant::now(),
        });
        self.batch_open = false;
        self.begun = false;
        self.batch_started = None;
        self.batch_transactions = 0;
        self.batch_changes = 0;
        Ok(())
    }

    /// Makes the session free for new statements: every reply read (a refused run replayed),
    /// and the group in flight committed.
    pub(super) async fn ready(&mut self) -> Result<(), CdcError> {
        self.settle().await?;
        let Some(group) = self.closing.take() else {
            return Ok(());
        };
        // txid_current(): a group that wrote nothing (changes that cancel out, a transaction
        // on unpublished tables) still gets a commit record, which is what carries the
        // origin's position.
        self.target
            .execute(
                "SELECT txid_current(), pg_replication_origin_xact_setup($1::text::pg_lsn, \
                        to_timestamp(946684800 + $2::float8 / 1000000))",
                &[&group.lsn.to_string(), &(group.time_us as f64)],
            )
            .await
            .map_err(sql_error("recording the applied position"))?;
        self.target
            .batch_execute("COMMIT")
            .await
            .map_err(sql_error("committing applied changes on the target"))?;
        self.applied = group.lsn;
        self.verify_samples().await?;
        tracing::debug!(
            lsn = %group.lsn,
            transactions = group.transactions,
            changes = group.changes,
            open_ms = group.opened.map_or(0, |t| (group.closed - t).as_millis()),
            finish_ms = group.closed.elapsed().as_millis(),
            "group committed"
        );
        let committed = Committed {
            lsn: group.lsn,
            commit_time_us: group.time_us,
            transactions: group.transactions,
            changes: group.changes,
        };
        self.done = Some(match self.done.take() {
            Some(earlier) => earlier.then(committed),
            None => committed,
        });
        Ok(())
    }

    /// Opens the open group's target transaction if it is not yet (the group before it
    /// committed first).
    pub(super) async fn begin_target(&mut self) -> Result<(), CdcError> {
        self.ready().await?;
        if self.batch_open && !self.begun {
            self.target
                .batch_execute("BEGIN")
                .await
                .map_err(sql_error("starting a target transaction"))?;
            self.begun = true;
        }
        Ok(())
    }
}
