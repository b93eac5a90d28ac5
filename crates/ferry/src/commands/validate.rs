//! `ferry validate`: both sides hash their rows by key range, Ferry compares the hashes and
//! names the differing rows (ferry-validate; docs/adr/0011-validation.md). Works on any
//! spec: no copy or sync of Ferry's is needed, but while `ferry sync` runs the target's reads
//! are fenced by what it applied.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use ferry_spec::TablePattern;
use ferry_store::{SqliteStore, StateStore, StoredDifference, ValidationRun};
use ferry_validate::{Fence, Report, TableToValidate, ValidateEvent, ValidateOptions};

use crate::cli::SpecArgs;
use crate::session::Session;
use crate::BadInput;

/// Exit status when differences are found.
const DIFFERENT: u8 = 4;

pub struct Flags {
    pub tables: Vec<String>,
    pub json: bool,
    pub jobs: u16,
    pub rows_per_second: Option<u64>,
    pub settle_for: Duration,
    pub recheck_after: Duration,
    pub max_differences: usize,
    pub wait_for_sync: Duration,
}

pub async fn run(args: &SpecArgs, flags: Flags) -> Result<ExitCode> {
    let session = Session::open(args, false).map_err(BadInput::wrap)?;
    let id = session.log_command()?;
    let result = validate(&session, &flags).await;
    session.finish_command(
        id,
        &match &result {
            Ok(r) => r.result.clone(),
            Err(e) => format!("failed: {e}"),
        },
    );
    let report = result?;
    if flags.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report);
    }
    Ok(if report.is_equal() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(DIFFERENT)
    })
}

pub(crate) async fn validate(session: &Session, flags: &Flags) -> Result<Report> {
    let patterns = flags
        .tables
        .iter()
        .flat_map(|p| p.split(','))
        .map(|p| TablePattern::parse(p.trim()).map_err(|e| BadInput::wrap(e.into())))
        .collect::<Result<Vec<_>>>()?;
    let (source, target) = (session.source()?, session.target()?);
    let admin = source.connect().await?;
    let tables: Vec<TableToValidate> = ferry_pg::catalog::tables(&admin)
        .await?
        .into_iter()
        .filter(|t| t.holds_rows())
        .filter(|t| {
            !session
                .plan
                .tables
                .exclude
                .iter()
                .any(|p| p.matches(&t.name))
        })
        .filter(|t| patterns.is_empty() || patterns.iter().any(|p| p.matches(&t.name)))
        .map(|t| TableToValidate {
            name: t.name,
            est_rows: t.est_rows,
            pages: t.pages,
        })
        .collect();
    drop(admin);
    if tables.is_empty() && !patterns.is_empty() {
        return Err(BadInput::wrap(
            ferry_validate::ValidateError::NoTables {
                pattern: flags.tables.join(","),
            }
            .into(),
        ));
    }
    let ahead_store = Arc::new(SqliteStore::open(&session.plan.state_dir)?);
    let mut options = ValidateOptions::new(tables);
    options.jobs = usize::from(flags.jobs.max(1));
    options.rows_per_second = flags.rows_per_second;
    options.settle_for = flags.settle_for;
    options.recheck_pause = flags.recheck_after;
    options.max_differences = flags.max_differences;
    options.fence = Some(Fence {
        origin: ferry_cdc::origin_name(&session.plan.name),
        ahead: Arc::new(move || confirmed_ahead(ahead_store.as_ref())),
        wait: flags.wait_for_sync,
        gave_up: Arc::default(),
    });
    let quiet = flags.json;
    let mut on_event = |e: ValidateEvent<'_>| match e {
        ValidateEvent::TableDone(t) if !quiet => eprintln!(
            "validate: {} {} ({} rows, {} ranges, {:.1} s)",
            t.table, t.status, t.source_rows, t.chunks, t.seconds
        ),
        ValidateEvent::TableDone(_) => {}
    };
    let report = ferry_validate::validate(&source, &target, &options, &mut on_event).await?;
    store(&session.store, &report)?;
    Ok(report)
}

/// The confirmation ahead of the origin `ferry sync` recorded (`(origin, confirmed)`).
fn confirmed_ahead(store: &dyn StateStore) -> Option<(ferry_model::Lsn, ferry_model::Lsn)> {
    let text = store.value(crate::commands::sync::CONFIRMED_AHEAD).ok()??;
    let ahead: ferry_cdc::ConfirmedAhead = text.parse().ok()?;
    Some((ahead.applied, ahead.confirmed))
}

fn store(store: &dyn StateStore, report: &Report) -> Result<()> {
    let differences = report
        .differences
        .iter()
        .map(|d| {
            Ok(StoredDifference {
                table: d.table.clone(),
                kind: serde_json::to_value(d.kind)?
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                detail: serde_json::to_string(d)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    store.record_validation(&ValidationRun {
        result: report.result.clone(),
        tables: report.tables.len() as u64,
        differences,
        unsettled: report.unsettled.len() as u64,
        seconds: report.seconds,
    })?;
    Ok(())
}

pub(crate) fn print(report: &Report) {
    for d in &report.differences {
        let key = d.key.as_ref().map_or_else(
            || "(no key)".to_owned(),
            |k| {
                k.iter()
                    .map(|(c, v)| format!("{c}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        );
        let kind = serde_json::to_value(d.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if let Some(ranges) = d.ranges {
            println!(
                "{}: {ranges} more key range(s) differ, not drilled down (--max-differences)",
                d.table
            );
            continue;
        }
        println!("{} {key}: {kind}", d.table);
        for c in &d.columns {
            println!(
                "    {}: source {} | target {}",
                c.column,
                shown(&c.source),
                shown(&c.target)
            );
        }
        if let Some(row) = &d.row {
            let cols: Vec<String> = row
                .iter()
                .map(|(c, v)| format!("{c}={}", shown(v)))
                .collect();
            println!(
                "    row ({}), {} cop{} more on the {}",
                cols.join(", "),
                d.copies.unwrap_or(1),
                if d.copies == Some(1) { "y" } else { "ies" },
                if d.kind == ferry_validate::Kind::MissingOnTarget {
                    "source"
                } else {
                    "target"
                }
            );
        }
    }
    for u in &report.unsettled {
        println!(
            "{} {}: unsettled: {}",
            u.table,
            u.key
                .as_ref()
                .map(|k| k
                    .iter()
                    .map(|(c, v)| format!("{c}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            u.why
        );
    }
    println!(
        "{}: {} table(s), {} difference(s), {} unsettled, {:.1} s{}",
        report.result,
        report.tables.len(),
        report.differences.len(),
        report.unsettled.len(),
        report.seconds,
        if report.fenced {
            " (target reads fenced by the applied position)"
        } else {
            ""
        }
    );
}

fn shown(v: &Option<String>) -> String {
    match v {
        Some(s) => format!("{s:?}"),
        None => "NULL".to_owned(),
    }
}
