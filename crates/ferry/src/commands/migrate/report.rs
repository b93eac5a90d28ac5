//! The migration's report: each phase's duration, rows and bytes copied, transactions
//! applied, the lag at cutover, the write pause and the validation result; printed, and
//! written as `report.md` and `report.json` in the state directory.

use anyhow::Result;
use ferry_model::UnitState;
use ferry_store::StateStore;
use serde::Serialize;

use super::cutover::CutoverDone;
use super::journal::{keys, phase_of};
use crate::report::human_bytes;
use crate::session::Session;

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub migration: String,
    pub phase: String,
    pub source: String,
    pub target: String,
    pub phases: Vec<PhaseTime>,
    pub rows_copied: u64,
    pub bytes_copied: u64,
    pub transactions_applied: Option<u64>,
    pub lag_at_cutover_seconds: Option<f64>,
    pub write_pause_seconds: Option<f64>,
    pub final_lsn: Option<String>,
    pub sequences_set: Option<usize>,
    /// Sessions the fence ended: between transactions, and inside one at the drain timeout.
    pub sessions_ended: Option<(u32, u32)>,
    pub recopied_tables: Vec<String>,
    pub validation: Option<String>,
    pub validation_differences: Option<u64>,
    pub online_validation_mismatches: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct PhaseTime {
    pub phase: String,
    pub seconds: Option<f64>,
}

pub(crate) fn gather(session: &Session, done: Option<&CutoverDone>) -> Result<Report> {
    let store = &session.store;
    let units = store.units()?;
    let done_units = units.iter().filter(|u| u.state == UnitState::Done);
    let (rows, bytes) = done_units.fold((0, 0), |(r, b), u| (r + u.rows, b + u.bytes));
    let phases = store
        .sections()?
        .into_iter()
        .filter_map(|s| {
            let phase = s.name.strip_prefix("phase:")?.to_owned();
            let ended = phase
                .parse::<ferry_flow::Phase>()
                .is_ok_and(|p| p.is_end() || p == ferry_flow::Phase::CutOver);
            if ended {
                return None; // a state reached, not work done
            }
            Some(PhaseTime {
                phase,
                seconds: s.done_at.map(|d| (d - s.started_at) as f64 / 1000.0),
            })
        })
        .collect();
    let parse =
        |k: &str| -> Result<Option<f64>> { Ok(store.value(k)?.and_then(|v| v.parse().ok())) };
    let validation = store.last_validation()?;
    Ok(Report {
        migration: session.plan.name.clone(),
        phase: phase_of(store.value("phase")?.as_deref()).to_string(),
        source: session.plan.source.conninfo.identity(),
        target: session.plan.target.conninfo.identity(),
        phases,
        rows_copied: rows,
        bytes_copied: bytes,
        transactions_applied: store
            .value("sync_transactions")?
            .and_then(|v| v.parse().ok()),
        lag_at_cutover_seconds: parse(keys::LAG_AT_CUTOVER)?,
        write_pause_seconds: parse(keys::PAUSE_MS)?.map(|ms| ms / 1000.0),
        final_lsn: store.value(keys::FINAL_LSN)?,
        sequences_set: done.map(|d| d.sequences),
        sessions_ended: done.map(|d| (d.drained_idle, d.drained_in_transaction)),
        recopied_tables: done.map(|d| d.recopied.clone()).unwrap_or_default(),
        validation_differences: validation.as_ref().map(|v| v.differences),
        validation: validation.map(|v| v.result),
        online_validation_mismatches: store.event_count(crate::commands::sync::ONLINE_MISMATCH)?,
    })
}

pub(crate) fn markdown(r: &Report) -> String {
    let mut md = format!(
        "# Migration {}\n\n{} → {}; phase **{}**\n\n| phase | seconds |\n|---|---|\n",
        r.migration, r.source, r.target, r.phase
    );
    for p in &r.phases {
        md.push_str(&format!(
            "| {} | {} |\n",
            p.phase,
            p.seconds
                .map_or("running".to_owned(), |s| format!("{s:.1}"))
        ));
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "—".to_owned());
    md.push_str(&format!(
        "\n- copied: {} rows, {}\n- change capture: {} transactions applied\n- lag at cutover: {}\n- writes paused at cutover: {}\n- final position: {}\n- validation: {}\n- online validation mismatches: {}\n",
        r.rows_copied,
        human_bytes(r.bytes_copied),
        opt(r.transactions_applied.map(|t| t.to_string())),
        opt(r.lag_at_cutover_seconds.map(|l| format!("{l:.3} s"))),
        opt(r.write_pause_seconds.map(|p| format!("{p:.3} s"))),
        opt(r.final_lsn.clone()),
        opt(r.validation.as_ref().map(|v| format!(
            "{v} ({} difference(s))",
            r.validation_differences.unwrap_or(0)
        ))),
        r.online_validation_mismatches,
    ));
    if let Some(n) = r.sequences_set {
        md.push_str(&format!("- sequences set at cutover: {n}\n"));
    }
    if let Some((idle, busy)) = r.sessions_ended {
        md.push_str(&format!(
            "- sessions ended by the fence: {idle} between transactions, {busy} inside one at the drain timeout\n"
        ));
    }
    for t in &r.recopied_tables {
        md.push_str(&format!(
            "- copied again at cutover (append-only, updated or deleted): {t}\n"
        ));
    }
    md
}

/// Prints the report and writes `report.md` and `report.json` beside the store.
pub(crate) fn write_and_print(session: &Session, done: Option<&CutoverDone>) -> Result<()> {
    let report = gather(session, done)?;
    let md = markdown(&report);
    let dir = &session.plan.state_dir;
    std::fs::write(dir.join("report.md"), &md)?;
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    println!("{md}");
    println!(
        "report written to {} and report.json",
        dir.join("report.md").display()
    );
    Ok(())
}
