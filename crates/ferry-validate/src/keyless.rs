//! Tables without a key: compared as multisets of rows. The whole table's count and hash
//! first; when they differ, counts and hashes per bucket of the row hash, then the rows of
//! the differing buckets only. A difference is reported once two looks in a row agree.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ferry_pg::sql_error;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::chunks::{both, Ctx, Pair};
use crate::query;
use crate::recheck::Rules;
use crate::report::{Difference, Unsettled, Value};
use crate::rows::{self, RowValues};
use crate::shape::Shape;
use crate::ValidateError;

/// What comparing a keyless table found.
pub(crate) struct Found {
    pub rows: (u64, u64),
    pub differences: Vec<Difference>,
    pub unsettled: Vec<Unsettled>,
}

type Multiset = BTreeMap<Vec<Value>, (i64, RowValues)>;

pub(crate) async fn compare(
    ctx: &Ctx<'_>,
    pair: &Pair,
    shape: &Shape,
    rules: &Rules,
) -> Result<Found, ValidateError> {
    let sql = query::chunk_hash(shape, ctx.hash, "");
    let whole = both(
        ctx,
        (&pair.source, &pair.target),
        whole_hash(&pair.source, shape, &sql),
        whole_hash(&pair.target, shape, &sql),
    )
    .await?;
    let behind = || Found {
        rows: (0, 0),
        differences: Vec::new(),
        unsettled: vec![Unsettled {
            table: shape.table.to_string(),
            key: None,
            why: "the target did not reach the source's position: is `ferry sync` running?".into(),
        }],
    };
    let Some((s, t)) = whole else {
        return Ok(behind());
    };
    let rows = (s.0, t.0);
    if s == t {
        return Ok(Found {
            rows,
            differences: Vec::new(),
            unsettled: Vec::new(),
        });
    }
    let buckets = (s.0.max(t.0) / ctx.leaf_rows.max(1))
        .next_power_of_two()
        .clamp(1, 1 << 16) as i64;
    let sql = query::bucket_hashes(shape, ctx.hash);
    let per_bucket = both(
        ctx,
        (&pair.source, &pair.target),
        bucket_hashes(&pair.source, shape, &sql, buckets),
        bucket_hashes(&pair.target, shape, &sql, buckets),
    )
    .await?;
    let Some((s, t)) = per_bucket else {
        return Ok(behind());
    };
    let mut differing: Vec<i64> = s
        .iter()
        .filter(|(b, h)| t.get(*b) != Some(*h))
        .map(|(b, _)| *b)
        .chain(t.keys().filter(|b| !s.contains_key(*b)).copied())
        .collect();
    differing.sort_unstable();
    // About a thousand rows a bucket: past `max_differences` rows, the rest is only counted.
    let wanted = ctx
        .max_differences
        .div_ceil(ctx.leaf_rows.max(1) as usize)
        .max(1);
    let undrilled = differing.len().saturating_sub(wanted) as u64;
    differing.truncate(wanted);
    let deadline = Instant::now() + rules.settle_for;
    let mut last: Option<Multiset> = None;
    loop {
        let Some(now) = look(ctx, pair, shape, &differing, buckets).await? else {
            return Ok(behind());
        };
        if now.is_empty() {
            // It was lag: the buckets agree now.
            return Ok(Found {
                rows,
                differences: Vec::new(),
                unsettled: Vec::new(),
            });
        }
        if last.as_ref() == Some(&now) {
            let mut differences: Vec<Difference> = now
                .values()
                .map(|(n, row)| rows::multiset_difference(shape, *n, row))
                .collect();
            if undrilled > 0 {
                differences.push(rows::more_differences(shape, undrilled));
            }
            return Ok(Found {
                rows,
                differences,
                unsettled: Vec::new(),
            });
        }
        if Instant::now() >= deadline {
            return Ok(Found {
                rows,
                differences: Vec::new(),
                unsettled: vec![Unsettled {
                    table: shape.table.to_string(),
                    key: None,
                    why: format!(
                        "its rows kept changing on the source for {} s of re-checks",
                        rules.settle_for.as_secs()
                    ),
                }],
            });
        }
        last = Some(now);
        if ctx.fence.is_none() {
            tokio::time::sleep(rules.pause).await;
        }
    }
}

async fn whole_hash(
    client: &Client,
    shape: &Shape,
    sql: &str,
) -> Result<(u64, String), ValidateError> {
    let what = || sql_error(format!("hashing rows of {}", shape.table));
    let row = client.query_one(sql, &[]).await.map_err(what())?;
    let count: i64 = row.try_get(0).map_err(what())?;
    Ok((count.max(0) as u64, row.try_get(1).map_err(what())?))
}

async fn bucket_hashes(
    client: &Client,
    shape: &Shape,
    sql: &str,
    buckets: i64,
) -> Result<HashMap<i64, (i64, String)>, ValidateError> {
    let what = || sql_error(format!("hashing rows of {} by bucket", shape.table));
    let rows = client.query(sql, &[&buckets]).await.map_err(what())?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(what())?,
                (r.try_get(1).map_err(what())?, r.try_get(2).map_err(what())?),
            ))
        })
        .collect()
}

/// The multiset difference of the rows in `buckets` (`None`: the target stayed behind).
async fn look(
    ctx: &Ctx<'_>,
    pair: &Pair,
    shape: &Shape,
    buckets: &[i64],
    count: i64,
) -> Result<Option<Multiset>, ValidateError> {
    let list = buckets.to_vec();
    let sp: Vec<&(dyn ToSql + Sync)> = vec![&list, &count];
    let tp = sp.clone();
    let sql = query::fetch_buckets(shape, ctx.hash);
    let found = both(
        ctx,
        (&pair.source, &pair.target),
        rows::fetch(&pair.source, shape, &sql, &sp),
        rows::fetch(&pair.target, shape, &sql, &tp),
    )
    .await?;
    Ok(found.map(|(s, t)| rows::multiset_diff(s, t)))
}
