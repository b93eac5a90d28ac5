//! Validation (docs/adr/0011-validation.md): proves both sides hold the same rows without
//! moving them out. Both databases hash key ranges of each table ([`query`]); ranges whose
//! count or hash differ are split until they are small enough to fetch ([`chunks`]); the
//! differing rows are re-checked ([`recheck`]) and reported by key with the columns that
//! differ and both values. Tables without a key are compared as multisets ([`keyless`]).
//!
//! While change capture runs, a target read waits until the target has applied what the
//! source showed ([`Fence`]), so lag alone is never reported as a difference.

mod chunks;
mod error;
mod keyless;
mod query;
mod recheck;
mod report;
mod rows;
mod session;
mod shape;

use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use ferry_model::TableName;
use ferry_pg::{catalog, sql_error, Connector};

pub use error::ValidateError;
pub use report::{ColumnDifference, Difference, Kind, Report, TableReport, Unsettled, Value};
pub use session::{AheadFn, Fence};

use chunks::{Ctx, Outcome, Pair, Range};
use query::{HashFn, Key};
use recheck::{Candidate, Rules};
use report::Kind as DiffKind;
use shape::Shape;

/// A table to validate, as the source's catalog lists it.
#[derive(Debug, Clone)]
pub struct TableToValidate {
    pub name: TableName,
    pub est_rows: u64,
    /// Heap pages, as the catalog estimates them.
    pub pages: u64,
}

/// How a validation runs.
#[derive(Clone)]
pub struct ValidateOptions {
    pub tables: Vec<TableToValidate>,
    /// Concurrent queries per side.
    pub jobs: usize,
    /// At most this many rows hashed per second per side (the throttle); `None`: no limit.
    pub rows_per_second: Option<u64>,
    /// Rows per first-level range.
    pub chunk_rows: u64,
    /// Ranges of at most this many rows are fetched and compared row by row.
    pub leaf_rows: u64,
    /// Change capture's applied position on the target, when this migration has one.
    pub fence: Option<Fence>,
    /// Without a fence: the pause before a differing row is looked at again.
    pub recheck_pause: Duration,
    /// How long differing rows may keep changing before they are reported unsettled.
    pub settle_for: Duration,
    /// Differing rows named per table at most; further differing ranges are counted only.
    pub max_differences: usize,
}

impl ValidateOptions {
    pub fn new(tables: Vec<TableToValidate>) -> ValidateOptions {
        ValidateOptions {
            tables,
            jobs: 2,
            rows_per_second: None,
            chunk_rows: 10_000,
            leaf_rows: 1_000,
            fence: None,
            recheck_pause: Duration::from_millis(250),
            settle_for: Duration::from_secs(30),
            max_differences: 1_000,
        }
    }
}

/// What a running validation reports.
pub enum ValidateEvent<'a> {
    /// A table's comparison finished.
    TableDone(&'a TableReport),
}

/// Validates `options.tables` between `source` and `target`.
pub async fn validate(
    source: &Connector,
    target: &Connector,
    options: &ValidateOptions,
    on_event: &mut (dyn FnMut(ValidateEvent<'_>) + Send),
) -> Result<Report, ValidateError> {
    let started = Instant::now();
    let mut pairs = Vec::with_capacity(options.jobs.max(1));
    for _ in 0..options.jobs.max(1) {
        pairs.push(Pair::new(
            session::open(source).await?,
            session::open(target).await?,
        ));
    }
    let first = &pairs[0];
    let versions = (
        catalog::version_num(&first.source).await?,
        catalog::version_num(&first.target).await?,
    );
    let fence = match &options.fence {
        Some(f) if f.present(&first.target).await? => Some(f.clone()),
        _ => None,
    };
    let mut report = Report {
        fenced: fence.is_some(),
        ..Report::default()
    };
    let mut shapes = Vec::new();
    for t in &options.tables {
        let Some(src_cols) = shape::columns(&first.source, &t.name).await? else {
            continue; // dropped since it was listed
        };
        let Some(dst_cols) = shape::columns(&first.target, &t.name).await? else {
            report
                .differences
                .push(table_difference(&t.name, DiffKind::TableMissing, None));
            report
                .tables
                .push(table_report(&t.name, Vec::new(), "different"));
            continue;
        };
        let key = shape::key(&first.source, &t.name, versions.0).await?;
        let s = shape::shape(
            t.name.clone(),
            src_cols,
            &dst_cols,
            &key,
            (t.est_rows, t.pages),
        );
        for (column, side) in &s.one_sided {
            let mut d = table_difference(&t.name, DiffKind::ColumnMissing, None);
            d.columns.push(ColumnDifference {
                column: column.clone(),
                source: Some(format!("only on the {side}")),
                target: None,
            });
            report.differences.push(d);
        }
        shapes.push(s);
    }
    let ctx = Ctx {
        shapes: &shapes,
        hash: HashFn::for_versions(versions.0, versions.1),
        fence: fence.as_ref(),
        leaf_rows: options.leaf_rows.max(1),
        found: shapes.iter().map(|_| AtomicUsize::new(0)).collect(),
        max_differences: options.max_differences.max(1),
    };
    let rules = Rules {
        pause: options.recheck_pause,
        settle_for: options.settle_for,
    };
    let mut per_table: Vec<Tally> = shapes.iter().map(|_| Tally::default()).collect();

    // Tables with a key: every range, `jobs` at a time.
    let mut ranges = Vec::new();
    for (i, s) in shapes.iter().enumerate() {
        if !s.key.is_empty() {
            ranges.extend(first_ranges(&pairs[0], i, s, options.chunk_rows).await?);
        }
    }
    let mut chunk_counts = vec![0u64; shapes.len()];
    let mut candidates: Vec<Vec<Candidate>> = shapes.iter().map(|_| Vec::new()).collect();
    let mut behind: Vec<Range> = Vec::new();
    let pairs = chunks::run_all(
        &ctx,
        pairs,
        ranges,
        options.rows_per_second,
        &mut |outcome| match outcome {
            Outcome::Equal { table, rows } => per_table[table].add(rows),
            Outcome::Rows {
                table,
                rows,
                differing,
            } => {
                per_table[table].add(rows);
                candidates[table].extend(
                    differing
                        .into_iter()
                        .map(|(key, source, _)| Candidate { key, source }),
                );
            }
            Outcome::Behind { range } => behind.push(range),
            Outcome::Undrilled { table } => per_table[table].undrilled += 1,
            Outcome::Split(_) => {}
        },
        &mut chunk_counts,
    )
    .await?;
    let pair = &pairs[0];
    for (i, s) in shapes.iter().enumerate() {
        let table_started = Instant::now();
        let mut tally = std::mem::take(&mut per_table[i]);
        tally.chunks = chunk_counts[i];
        if s.key.is_empty() {
            let found = keyless::compare(&ctx, pair, s, &rules).await?;
            tally.add(found.rows);
            tally.chunks = 1;
            tally.differences = found.differences.len();
            tally.unsettled = found.unsettled.len();
            report.differences.extend(found.differences);
            report.unsettled.extend(found.unsettled);
        } else {
            let list = std::mem::take(&mut candidates[i]);
            let (found, unsettled) = recheck::keyed(&ctx, pair, s, list, &rules).await?;
            tally.differences = found.len();
            tally.unsettled = unsettled.len();
            report.differences.extend(found);
            report.unsettled.extend(unsettled);
            if tally.undrilled > 0 {
                tally.differences += 1;
                report
                    .differences
                    .push(rows::more_differences(s, tally.undrilled));
            }
            for r in behind.iter().filter(|r| r.table == i) {
                tally.unsettled += 1;
                report.unsettled.push(Unsettled {
                    table: s.table.to_string(),
                    key: r.lo.as_ref().map(|k| rows::key_map(s, k)),
                    why: "the target did not reach the source's position while this key range \
                          was read (from this key on): is `ferry sync` running?"
                        .into(),
                });
            }
        }
        let status = if tally.differences > 0 || !s.one_sided.is_empty() {
            "different"
        } else if tally.unsettled > 0 {
            "unsettled"
        } else {
            "equal"
        };
        let t = TableReport {
            table: s.table.to_string(),
            key: s.key_names(),
            source_rows: tally.rows.0,
            target_rows: tally.rows.1,
            chunks: tally.chunks,
            status: status.into(),
            seconds: tally.seconds + table_started.elapsed().as_secs_f64(),
        };
        on_event(ValidateEvent::TableDone(&t));
        report.tables.push(t);
    }
    report.result = if report.is_equal() {
        "equal"
    } else {
        "different"
    }
    .into();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

#[derive(Default)]
struct Tally {
    rows: (u64, u64),
    chunks: u64,
    differences: usize,
    unsettled: usize,
    seconds: f64,
    /// Differing ranges not drilled down (past `max_differences`).
    undrilled: u64,
}

impl Tally {
    fn add(&mut self, rows: (u64, u64)) {
        self.rows.0 += rows.0;
        self.rows.1 += rows.1;
    }
}

fn table_difference(table: &TableName, kind: DiffKind, key: Option<Key>) -> Difference {
    Difference {
        table: table.to_string(),
        kind,
        key: key.map(|k| std::iter::once(("key".to_owned(), k.join(","))).collect()),
        columns: Vec::new(),
        row: None,
        copies: None,
        ranges: None,
    }
}

fn table_report(table: &TableName, key: Vec<String>, status: &str) -> TableReport {
    TableReport {
        table: table.to_string(),
        key,
        source_rows: 0,
        target_rows: 0,
        chunks: 0,
        status: status.into(),
        seconds: 0.0,
    }
}

/// The first ranges of a table: cut at keys sampled from the source (whole blocks, so it
/// reads little), about `chunk_rows` rows each; one range for a small table.
async fn first_ranges(
    pair: &Pair,
    table: usize,
    shape: &Shape,
    chunk_rows: u64,
) -> Result<Vec<Range>, ValidateError> {
    let whole = Range {
        table,
        lo: None,
        hi: None,
        rows: shape.est_rows,
    };
    let chunks = shape.est_rows / chunk_rows.max(1);
    if chunks < 2 {
        return Ok(vec![whole]);
    }
    // About 8 sampled blocks per range, one key from each.
    let percent = ((chunks * 8) as f64 * 100.0 / shape.pages.max(1) as f64).clamp(0.0001, 100.0);
    let sql = query::sample(shape, percent);
    let what = || sql_error(format!("sampling the keys of {}", shape.table));
    let found = pair.source.query(&sql, &[]).await.map_err(what())?;
    let keys: Vec<Key> = found
        .iter()
        .map(|r| {
            (0..shape.key.len())
                .map(|i| r.try_get::<_, String>(i).map_err(what()))
                .collect()
        })
        .collect::<Result<_, _>>()?;
    let every = (keys.len() as u64 / chunks).max(1) as usize;
    let bounds: Vec<Key> = keys.into_iter().skip(every).step_by(every).collect();
    Ok(chunks::sub_ranges(whole, bounds, shape.est_rows))
}
