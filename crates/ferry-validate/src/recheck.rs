//! Re-checks of the rows found different: a difference is reported only once it persisted
//! with the source's row unchanged between two looks (fenced, when change capture runs, so
//! the target had applied everything the source showed). Rows still changing when the time
//! is up are reported as unsettled, never as differences.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_postgres::types::ToSql;

use crate::chunks::{both, Ctx, Pair};
use crate::query::{self, Key};
use crate::report::{Difference, Unsettled};
use crate::rows::{self, RowValues};
use crate::shape::Shape;
use crate::ValidateError;

/// A row that differed at the last look, with the source's row then.
pub(crate) struct Candidate {
    pub key: Key,
    pub source: Option<RowValues>,
}

/// How the re-checks run.
pub(crate) struct Rules {
    /// The pause before each look when the target is not fenced (no change capture of this
    /// migration): time for another replication to deliver.
    pub pause: Duration,
    /// How long rows may keep changing before they are reported unsettled.
    pub settle_for: Duration,
}

/// Keys per query.
const BATCH: usize = 1000;

/// Re-checks `candidates` of one table until each is confirmed, cleared or out of time.
pub(crate) async fn keyed(
    ctx: &Ctx<'_>,
    pair: &Pair,
    shape: &Shape,
    mut candidates: Vec<Candidate>,
    rules: &Rules,
) -> Result<(Vec<Difference>, Vec<Unsettled>), ValidateError> {
    let deadline = Instant::now() + rules.settle_for;
    let mut found = Vec::new();
    let mut behind = false;
    while !candidates.is_empty() && Instant::now() < deadline {
        let pause = if ctx.fence.is_some() {
            Duration::from_millis(50)
        } else {
            rules.pause
        };
        tokio::time::sleep(pause).await;
        let mut next = Vec::new();
        for batch in candidates.chunks(BATCH) {
            let Some((s, t)) = look(ctx, pair, shape, batch).await? else {
                behind = true;
                next.extend(batch.iter().map(|c| Candidate {
                    key: c.key.clone(),
                    source: c.source.clone(),
                }));
                continue;
            };
            for c in batch {
                let (now_s, now_t) = (s.get(&c.key), t.get(&c.key));
                if now_s.map(|r| &r.compared) == now_t.map(|r| &r.compared) {
                    continue; // it was lag, or it was fixed
                }
                if now_s.map(|r| &r.compared) == c.source.as_ref().map(|r| &r.compared) {
                    found.push(rows::difference(shape, &c.key, now_s, now_t));
                } else {
                    next.push(Candidate {
                        key: c.key.clone(),
                        source: now_s.cloned(),
                    });
                }
            }
        }
        candidates = next;
    }
    let why = if behind {
        format!(
            "the target did not reach the source's position within {} s: is `ferry sync` running?",
            ctx.fence.map_or(0, |f| f.wait.as_secs())
        )
    } else {
        format!(
            "the row kept changing on the source for {} s of re-checks",
            rules.settle_for.as_secs()
        )
    };
    let unsettled = candidates
        .iter()
        .map(|c| Unsettled {
            table: shape.table.to_string(),
            key: Some(rows::key_map(shape, &c.key)),
            why: why.clone(),
        })
        .collect();
    Ok((found, unsettled))
}

/// The rows of `batch`'s keys on both sides.
async fn look(
    ctx: &Ctx<'_>,
    pair: &Pair,
    shape: &Shape,
    batch: &[Candidate],
) -> Result<Option<(HashMap<Key, RowValues>, HashMap<Key, RowValues>)>, ValidateError> {
    let arrays: Vec<Vec<String>> = (0..shape.key.len())
        .map(|i| batch.iter().map(|c| c.key[i].clone()).collect())
        .collect();
    let sp: Vec<&(dyn ToSql + Sync)> = arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
    let tp = sp.clone();
    let sql = query::fetch_keys(shape);
    let found = both(
        ctx,
        (&pair.source, &pair.target),
        rows::fetch(&pair.source, shape, &sql, &sp),
        rows::fetch(&pair.target, shape, &sql, &tp),
    )
    .await?;
    Ok(found.map(|(s, t)| (rows::by_key(shape, s), rows::by_key(shape, t))))
}
