//! `ferry status`: where a migration stands, for people or (`--json`) for scripts. The JSON
//! fields are documented in docs/status-json.md and only ever gain fields.

use std::process::ExitCode;

use anyhow::Result;
use ferry_model::UnitState;
use ferry_store::StateStore;
use serde::Serialize;

use super::migrate::journal::{keys, phase_of};
use crate::cli::SpecArgs;
use crate::report::human_bytes;
use crate::session::Session;

#[derive(Debug, Serialize)]
struct Status {
    migration: String,
    /// `logical` (or `physical`, later).
    mode: String,
    /// One of the workflow's phases (ferry_flow::Phase): check, prepare, copy, sync,
    /// validate, ready, cutover, cut_over, finalized, rolled_back, aborted, failed.
    phase: String,
    source: Option<String>,
    target: Option<String>,
    slot: Option<String>,
    snapshot: Option<String>,
    consistent_lsn: Option<String>,
    snapshot_held: bool,
    tables_total: usize,
    tables_done: usize,
    units_total: usize,
    units_done: usize,
    rows: u64,
    bytes: u64,
    /// Change capture: the source position applied on the target, and the lag as last
    /// measured by `ferry sync` (null before any sync).
    applied_lsn: Option<String>,
    lag_bytes: Option<u64>,
    lag_seconds: Option<f64>,
    /// The change stream spooled while the copy ran (ADR 10): the last position confirmed
    /// to the source from it, and the bytes still on disk (0 once `ferry sync` applied it).
    spool_lsn: Option<String>,
    spool_bytes: u64,
    /// Why spooling stopped before the copy ended (`[copy] max_spool` or the disk's reserve
    /// reached): from there the slot on the source holds the stream.
    spool_full: Option<String>,
    /// The last `ferry validate`, null before any.
    validation: Option<Validation>,
    /// `ferry sync`'s online validation: rows read back after apply, and mismatches found.
    online_validation: OnlineValidation,
    /// The cutover, once one ran: the write pause, the final position, the lag before it.
    cutover: Option<Cutover>,
    /// The newest error and what to do about it (null when none).
    last_error: Option<LastError>,
    sections: Vec<Section>,
    errors: Vec<Error>,
    /// The migration's timeline, oldest first.
    events: Vec<Event>,
}

#[derive(Debug, Serialize)]
struct Cutover {
    pause_seconds: Option<f64>,
    final_lsn: Option<String>,
    lag_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
struct LastError {
    at_ms: i64,
    phase: String,
    message: String,
    fix: Option<String>,
}

#[derive(Debug, Serialize)]
struct Event {
    at_ms: i64,
    kind: String,
    message: String,
}

#[derive(Debug, Serialize)]
struct OnlineValidation {
    checked: u64,
    mismatches: u64,
}

#[derive(Debug, Serialize)]
struct Validation {
    result: String,
    finished_at_ms: i64,
    tables: u64,
    differences: u64,
    unsettled: u64,
    seconds: f64,
}

#[derive(Debug, Serialize)]
struct Section {
    name: String,
    started_at_ms: i64,
    done_at_ms: Option<i64>,
    seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Error {
    at_ms: i64,
    section: String,
    message: String,
}

pub fn run(args: &SpecArgs, json: bool) -> Result<ExitCode> {
    // Read-only: a status polled while a migration runs never writes (not even the command
    // log), so it never holds the store's write lock against the work.
    let session = Session::open(args, false)?;
    let status = gather(&session)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_human(&status);
    }
    Ok(ExitCode::SUCCESS)
}

fn gather(session: &Session) -> Result<Status> {
    let store = &session.store;
    let inv = store.invariants()?;
    let units = store.units()?;
    let planned: Vec<serde_json::Value> = store
        .value("units")?
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default();
    let done: Vec<_> = units
        .iter()
        .filter(|u| u.state == UnitState::Done)
        .collect();
    let tables_total = inv.as_ref().map_or(0, |i| i.tables.len());
    let sections = store.sections()?;
    let post_done = sections
        .iter()
        .filter(|s| s.name.starts_with("post-data ") && s.done_at.is_some())
        .count();
    let errors = store.errors()?;
    let parse =
        |k: &str| -> Result<Option<f64>> { Ok(store.value(k)?.and_then(|v| v.parse().ok())) };
    let pause_ms = parse(keys::PAUSE_MS)?;
    let final_lsn = store.value(keys::FINAL_LSN)?;
    Ok(Status {
        migration: session.plan.name.clone(),
        mode: session.plan.mode.to_string(),
        phase: phase_of(store.value("phase")?.as_deref()).to_string(),
        cutover: (pause_ms.is_some() || final_lsn.is_some()).then(|| Cutover {
            pause_seconds: pause_ms.map(|ms| ms / 1000.0),
            final_lsn,
            lag_seconds: parse(keys::LAG_AT_CUTOVER).ok().flatten(),
        }),
        last_error: errors.last().map(|e| LastError {
            at_ms: e.at,
            phase: e.section.clone(),
            message: e.message.clone(),
            fix: store.value(keys::LAST_FIX).ok().flatten(),
        }),
        events: store
            .events()?
            .into_iter()
            .map(|e| Event {
                at_ms: e.at,
                kind: e.kind,
                message: e.message,
            })
            .collect(),
        source: inv.as_ref().map(|i| i.source.clone()),
        target: inv.as_ref().map(|i| i.target.clone()),
        slot: inv.as_ref().map(|i| i.slot.clone()),
        snapshot: inv.as_ref().map(|i| i.snapshot.clone()),
        consistent_lsn: inv.as_ref().map(|i| i.consistent_lsn.to_string()),
        snapshot_held: ferry_copy::holder::current(&session.plan.state_dir).is_some(),
        tables_total,
        tables_done: post_done,
        units_total: planned.len(),
        units_done: done.len(),
        rows: done.iter().map(|u| u.rows).sum(),
        bytes: done.iter().map(|u| u.bytes).sum(),
        applied_lsn: store.value("applied_lsn")?,
        lag_bytes: store.value("lag_bytes")?.and_then(|v| v.parse().ok()),
        lag_seconds: store.value("lag_seconds")?.and_then(|v| v.parse().ok()),
        spool_lsn: store.value(ferry_copy::SPOOL_CONFIRMED)?,
        spool_bytes: ferry_copy::spool_bytes(&session.plan.state_dir),
        spool_full: store.value(ferry_copy::SPOOL_FULL)?,
        online_validation: OnlineValidation {
            checked: store
                .value("online_checked")?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            mismatches: store.event_count(super::sync::ONLINE_MISMATCH)?,
        },
        validation: store.last_validation()?.map(|v| Validation {
            result: v.result,
            finished_at_ms: v.finished_at,
            tables: v.tables,
            differences: v.differences,
            unsettled: v.unsettled,
            seconds: v.seconds,
        }),
        sections: sections
            .into_iter()
            .filter(|s| !s.name.starts_with("post-data "))
            .map(|s| Section {
                name: s.name,
                started_at_ms: s.started_at,
                done_at_ms: s.done_at,
                seconds: s.duration.map(|d| d.as_secs_f64()),
            })
            .collect(),
        errors: errors
            .into_iter()
            .map(|e| Error {
                at_ms: e.at,
                section: e.section,
                message: e.message,
            })
            .collect(),
    })
}

fn print_human(s: &Status) {
    println!("migration  {}", s.migration);
    println!("phase      {}", s.phase);
    if let (Some(src), Some(dst)) = (&s.source, &s.target) {
        println!("source     {src}");
        println!("target     {dst}");
    }
    if let (Some(slot), Some(lsn)) = (&s.slot, &s.consistent_lsn) {
        println!("slot       {slot} (changes from {lsn})");
    }
    if let Some(snap) = &s.snapshot {
        println!(
            "snapshot   {snap} ({})",
            if s.snapshot_held { "held" } else { "released" }
        );
    }
    println!(
        "tables     {}/{} done (data, indexes and constraints)",
        s.tables_done, s.tables_total
    );
    println!("units      {}/{} copied", s.units_done, s.units_total);
    println!("rows       {}", s.rows);
    println!("bytes      {}", human_bytes(s.bytes));
    if let Some(applied) = &s.applied_lsn {
        println!(
            "sync       applied through {applied}, lag {} bytes / {:.1} s (last measured)",
            s.lag_bytes.unwrap_or(0),
            s.lag_seconds.unwrap_or(0.0)
        );
    }
    if let Some(lsn) = &s.spool_lsn {
        println!(
            "spool      changes through {lsn} kept during the copy, {} on disk",
            human_bytes(s.spool_bytes)
        );
    }
    if s.online_validation.checked > 0 || s.online_validation.mismatches > 0 {
        println!(
            "online     {} applied row(s) read back, {} mismatch(es)",
            s.online_validation.checked, s.online_validation.mismatches
        );
    }
    if let Some(v) = &s.validation {
        println!(
            "validate   {}: {} table(s), {} difference(s), {} unsettled, {:.1} s",
            v.result, v.tables, v.differences, v.unsettled, v.seconds
        );
    }
    if let Some(full) = &s.spool_full {
        println!("           spooling stopped early: {full}; the slot holds the rest");
    }
    for sec in &s.sections {
        match sec.seconds {
            Some(t) => println!("  {:<14} done in {t:.1}s", sec.name),
            None => println!("  {:<14} started, not done", sec.name),
        }
    }
    if let Some(c) = &s.cutover {
        if let Some(p) = c.pause_seconds {
            println!("cutover    writes paused {p:.3} s");
        }
    }
    if !s.events.is_empty() {
        println!("timeline");
        for e in s.events.iter().rev().take(20).rev() {
            println!("  {}  {}", clock(e.at_ms), e.message);
        }
    }
    if let Some(e) = &s.last_error {
        println!("last error [{}] {}", e.phase, e.message);
        if let Some(fix) = &e.fix {
            println!("  fix: {fix}");
        }
    }
    if s.errors.is_empty() {
        println!("errors     none");
    } else {
        println!("errors     {}", s.errors.len());
        for e in s.errors.iter().rev().take(5) {
            println!("  [{}] {}", e.section, e.message);
        }
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Unix millisecond.
fn clock(ms: i64) -> String {
    let day_ms = ms.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}
