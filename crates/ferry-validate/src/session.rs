//! Sessions pinned to the same output settings on both sides, and the fence that keeps a
//! target read from running ahead of what the source showed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_model::Lsn;
use ferry_pg::{sql_error, Connector};
use tokio_postgres::Client;

use crate::ValidateError;

/// Every setting that changes how a value is written as text, pinned on both sides: what
/// differs only by session (an instant shown in another zone) is then equal. The session is
/// read-only and never times out on the server's defaults.
const PINNED: &str = "SET TimeZone = 'UTC';
     SET DateStyle = 'ISO, YMD';
     SET IntervalStyle = 'postgres';
     SET extra_float_digits = 3;
     SET bytea_output = 'hex';
     SET lc_monetary = 'C';
     SET lc_numeric = 'C';
     SET statement_timeout = 0;
     SET default_transaction_read_only = on;
     SET application_name = 'ferry validate'";

/// A connection of one side with the pinned settings.
pub(crate) async fn open(connector: &Connector) -> Result<Client, ValidateError> {
    let client = connector.connect().await?;
    client
        .batch_execute(PINNED)
        .await
        .map_err(sql_error(format!(
            "pinning the output settings on the {}",
            connector.side()
        )))?;
    Ok(client)
}

/// The source's position after a read: every transaction the read saw ends before it.
pub(crate) async fn source_position(source: &Client) -> Result<Lsn, ValidateError> {
    let text: String = source
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .map_err(sql_error("reading the source's WAL position"))?
        .get(0);
    text.parse()
        .map_err(|_| ValidateError::unexpected("reading the source's WAL position", text))
}

/// A later position the change capture reported as applied while its stream was idle
/// (`(origin position, confirmed position)`), as the state store holds it.
pub type AheadFn = Arc<dyn Fn() -> Option<(Lsn, Lsn)> + Send + Sync>;

/// How far the target reflects the source: Ferry's replication origin on the target, or a
/// confirmation ahead of it recorded by `ferry sync`.
#[derive(Clone)]
pub struct Fence {
    pub origin: String,
    pub ahead: AheadFn,
    /// How long a read waits for the target to reach the source's position.
    pub wait: Duration,
    /// Set once a wait ran out: the target is not following (change capture stopped), so
    /// later reads do not wait again — their ranges are reported unsettled at once instead of
    /// each waiting `wait`.
    pub gave_up: Arc<AtomicBool>,
}

impl Fence {
    /// Whether the target has the origin (change capture of this migration ran there).
    pub(crate) async fn present(&self, target: &Client) -> Result<bool, ValidateError> {
        Ok(target
            .query_opt(
                "SELECT 1 FROM pg_replication_origin WHERE roname = $1",
                &[&self.origin],
            )
            .await
            .map_err(sql_error(
                "looking for Ferry's replication origin on the target",
            ))?
            .is_some())
    }

    async fn applied(&self, target: &Client) -> Result<Lsn, ValidateError> {
        let text: Option<String> = target
            .query_one(
                "SELECT pg_replication_origin_progress($1, true)::text",
                &[&self.origin],
            )
            .await
            .map_err(sql_error("reading the applied position on the target"))?
            .get(0);
        let origin: Lsn = text.and_then(|t| t.parse().ok()).unwrap_or_default();
        Ok(match (self.ahead)() {
            Some((at, confirmed)) if at == origin => origin.max(confirmed),
            _ => origin,
        })
    }

    /// Waits until the target reflects the source through `lsn`; false when it did not
    /// within [`Fence::wait`].
    pub(crate) async fn reach(&self, target: &Client, lsn: Lsn) -> Result<bool, ValidateError> {
        let deadline = Instant::now() + self.wait;
        let mut pause = Duration::from_millis(5);
        loop {
            if self.applied(target).await? >= lsn {
                return Ok(true);
            }
            if self.gave_up.load(Ordering::Relaxed) || Instant::now() >= deadline {
                self.gave_up.store(true, Ordering::Relaxed);
                return Ok(false);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}
