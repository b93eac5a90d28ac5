//! The batch pass over tables with a key: key ranges hashed on both sides, differing ranges
//! split until they are small enough to fetch, then the rows compared. Runs `jobs` ranges at
//! a time, each with one connection per side.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use crate::query::{self, HashFn, Key};
use crate::rows::{self, RowValues};
use crate::session::{self, Fence};
use crate::shape::Shape;
use crate::ValidateError;

/// A differing range is split into about this many.
const SPLIT: u64 = 16;

/// One connection per side.
pub(crate) struct Pair {
    pub source: Client,
    pub target: Client,
    /// The range-hash statements prepared on each side, by SQL text (planned once per
    /// table and range shape, not once per range).
    pub prepared: (HashMap<String, Statement>, HashMap<String, Statement>),
}

impl Pair {
    pub fn new(source: Client, target: Client) -> Pair {
        Pair {
            source,
            target,
            prepared: (HashMap::new(), HashMap::new()),
        }
    }
}

/// A key range `[lo, hi)` of table `table` (an index into the shapes); an open end is `None`.
#[derive(Debug, Clone)]
pub(crate) struct Range {
    pub table: usize,
    pub lo: Option<Key>,
    pub hi: Option<Key>,
    /// Rows expected (for the throttle).
    pub rows: u64,
}

/// What comparing a range found.
pub(crate) enum Outcome {
    Equal {
        table: usize,
        rows: (u64, u64),
    },
    Split(Vec<Range>),
    /// The range's rows, read from both sides: the keys that differ go to the re-checks.
    Rows {
        table: usize,
        rows: (u64, u64),
        differing: Vec<(Key, Option<RowValues>, Option<RowValues>)>,
    },
    /// The target never reached the source's position: re-checked by key later.
    Behind {
        range: Range,
    },
    /// The range differs, but its table has as many differing rows as are wanted already:
    /// not drilled down.
    Undrilled {
        table: usize,
    },
}

/// What the ranges share.
pub(crate) struct Ctx<'a> {
    pub shapes: &'a [Shape],
    pub hash: HashFn,
    pub fence: Option<&'a Fence>,
    pub leaf_rows: u64,
    /// Differing rows found so far, per table, and how many are wanted at most: past that a
    /// differing range is counted, not drilled (a target missing a whole table must not be
    /// fetched row by row).
    pub found: Vec<AtomicUsize>,
    pub max_differences: usize,
}

/// Runs one query on both sides (`source` and `target` are its two futures, not started
/// yet): concurrently, or (fenced) the source first and the target once it reflects what the
/// source showed. `None` when the target did not get there in time.
pub(crate) async fn both<T>(
    ctx: &Ctx<'_>,
    (source_client, target_client): (&Client, &Client),
    source: impl std::future::Future<Output = Result<T, ValidateError>>,
    target: impl std::future::Future<Output = Result<T, ValidateError>>,
) -> Result<Option<(T, T)>, ValidateError> {
    match ctx.fence {
        None => {
            let (s, t) = tokio::join!(source, target);
            Ok(Some((s?, t?)))
        }
        Some(fence) => {
            let s = source.await?;
            let at = session::source_position(source_client).await?;
            if !fence.reach(target_client, at).await? {
                return Ok(None);
            }
            Ok(Some((s, target.await?)))
        }
    }
}

fn params(values: &[String]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

async fn hash_of(
    client: &Client,
    prepared: &mut HashMap<String, Statement>,
    shape: &Shape,
    sql: &str,
    values: &[String],
) -> Result<(u64, String), ValidateError> {
    let what = || ferry_pg::sql_error(format!("hashing rows of {}", shape.table));
    let statement = match prepared.get(sql) {
        Some(s) => s.clone(),
        None => {
            let s = client.prepare(sql).await.map_err(what())?;
            prepared.insert(sql.to_owned(), s.clone());
            s
        }
    };
    let row = client
        .query_one(&statement, &params(values))
        .await
        .map_err(what())?;
    let count: i64 = row.try_get(0).map_err(what())?;
    Ok((count.max(0) as u64, row.try_get(1).map_err(what())?))
}

/// Compares one range.
pub(crate) async fn compare(
    ctx: &Ctx<'_>,
    pair: &mut Pair,
    range: Range,
) -> Result<Outcome, ValidateError> {
    let shape = &ctx.shapes[range.table];
    let (filter, values) = query::range(shape, range.lo.as_ref(), range.hi.as_ref());
    let sql = query::chunk_hash(shape, ctx.hash, &filter);
    let (source_prepared, target_prepared) = &mut pair.prepared;
    let hashes = both(
        ctx,
        (&pair.source, &pair.target),
        hash_of(&pair.source, source_prepared, shape, &sql, &values),
        hash_of(&pair.target, target_prepared, shape, &sql, &values),
    );
    let Some((s, t)) = hashes.await? else {
        return Ok(Outcome::Behind { range });
    };
    if s == t {
        return Ok(Outcome::Equal {
            table: range.table,
            rows: (s.0, t.0),
        });
    }
    if ctx.found[range.table].load(Ordering::Relaxed) >= ctx.max_differences {
        return Ok(Outcome::Undrilled { table: range.table });
    }
    let most = s.0.max(t.0);
    if most > ctx.leaf_rows {
        let bounds = split_points(shape, pair, s.0 >= t.0, &filter, &values, most).await?;
        if !bounds.is_empty() {
            return Ok(Outcome::Split(sub_ranges(range, bounds, most)));
        }
    }
    let sql = query::fetch(shape, &filter);
    let (sp, tp) = (params(&values), params(&values));
    let fetched = both(
        ctx,
        (&pair.source, &pair.target),
        rows::fetch(&pair.source, shape, &sql, &sp),
        rows::fetch(&pair.target, shape, &sql, &tp),
    );
    let Some((s, t)) = fetched.await? else {
        return Ok(Outcome::Behind { range });
    };
    let counts = (s.len() as u64, t.len() as u64);
    let (s, t) = (rows::by_key(shape, s), rows::by_key(shape, t));
    let keys = rows::differing(&s, &t);
    ctx.found[range.table].fetch_add(keys.len(), Ordering::Relaxed);
    let differing = keys
        .into_iter()
        .map(|k| {
            let (a, b) = (s.get(&k).cloned(), t.get(&k).cloned());
            (k, a, b)
        })
        .collect();
    Ok(Outcome::Rows {
        table: range.table,
        rows: counts,
        differing,
    })
}

/// Keys that cut a range of `rows` rows into about [`SPLIT`] parts, read from the side with
/// more rows.
async fn split_points(
    shape: &Shape,
    pair: &Pair,
    from_source: bool,
    filter: &str,
    values: &[String],
    rows: u64,
) -> Result<Vec<Key>, ValidateError> {
    let client = if from_source {
        &pair.source
    } else {
        &pair.target
    };
    let step = i64::try_from(rows.div_ceil(SPLIT).max(1)).unwrap_or(i64::MAX);
    let sql = query::split(shape, filter, values.len() + 1);
    let mut p = params(values);
    p.push(&step);
    let found = client
        .query(&sql, &p)
        .await
        .map_err(ferry_pg::sql_error(format!(
            "splitting a range of {}",
            shape.table
        )))?;
    found
        .iter()
        .map(|r| {
            (0..shape.key.len())
                .map(|i| {
                    r.try_get::<_, String>(i)
                        .map_err(ferry_pg::sql_error(format!(
                            "splitting a range of {}",
                            shape.table
                        )))
                })
                .collect()
        })
        .collect::<Result<Vec<Key>, ferry_pg::PgError>>()
        .map_err(ValidateError::from)
}

/// `[lo, b1), [b1, b2), …, [bn, hi)`.
pub(crate) fn sub_ranges(range: Range, bounds: Vec<Key>, rows: u64) -> Vec<Range> {
    let each = rows / (bounds.len() as u64 + 1);
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut lo = range.lo;
    for b in bounds {
        if lo.as_ref() == Some(&b) {
            continue;
        }
        out.push(Range {
            table: range.table,
            lo: lo.take(),
            hi: Some(b.clone()),
            rows: each,
        });
        lo = Some(b);
    }
    out.push(Range {
        table: range.table,
        lo,
        hi: range.hi,
        rows: each,
    });
    out
}

/// Runs every range (and the ranges they split into) `jobs` at a time, at most
/// `rows_per_second` rows started per second; `on_outcome` sees each outcome but splits.
pub(crate) async fn run_all(
    ctx: &Ctx<'_>,
    pairs: Vec<Pair>,
    ranges: Vec<Range>,
    rows_per_second: Option<u64>,
    on_outcome: &mut dyn FnMut(Outcome),
    chunks: &mut [u64],
) -> Result<Vec<Pair>, ValidateError> {
    let mut queue: VecDeque<Range> = ranges.into();
    let mut idle = pairs;
    let mut running = FuturesUnordered::new();
    let started = Instant::now();
    let mut rows_started: u64 = 0;
    loop {
        while !queue.is_empty() && !idle.is_empty() {
            let (Some(pair), Some(range)) = (idle.pop(), queue.pop_front()) else {
                break;
            };
            if let Some(rate) = rows_per_second {
                let due = Duration::from_secs_f64(rows_started as f64 / rate.max(1) as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
                rows_started += range.rows;
            }
            chunks[range.table] += 1;
            tracing::debug!(table = range.table, lo = ?range.lo, hi = ?range.hi, "range");
            running.push(async move {
                let mut pair = pair;
                let outcome = compare(ctx, &mut pair, range).await;
                (pair, outcome)
            });
        }
        let Some((pair, outcome)) = running.next().await else {
            break;
        };
        idle.push(pair);
        match outcome? {
            Outcome::Split(parts) => queue.extend(parts),
            other => on_outcome(other),
        }
    }
    Ok(idle)
}
