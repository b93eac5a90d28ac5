//! Progress on the terminal (indicatif bars: overall, and one per unit being copied) or, when
//! stderr is not a terminal, plain lines every ten seconds and one per finished unit.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ferry_copy::Observer;
use ferry_model::CopyUnit;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::human_bytes;

pub struct Progress {
    bars: Option<Bars>,
    plain: Mutex<Plain>,
}

struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
    units: Mutex<HashMap<String, (ProgressBar, u64)>>,
}

struct Plain {
    total: u64,
    copied: u64,
    rows: u64,
    units_left: usize,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    pub fn new() -> Progress {
        let bars = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5));
            let overall = multi.add(ProgressBar::new(0));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            overall.set_prefix("copy");
            Bars { multi, overall, units: Mutex::new(HashMap::new()) }
        });
        let now = Instant::now();
        Progress {
            bars,
            plain: Mutex::new(Plain {
                total: 0,
                copied: 0,
                rows: 0,
                units_left: 0,
                started: now,
                last_line: now,
            }),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bars {
            b.overall.finish_and_clear();
            let _ = b.multi.clear();
        }
    }

    fn plain_line(&self, force: bool) {
        let Ok(mut p) = self.plain.lock() else { return };
        if !force && p.last_line.elapsed() < Duration::from_secs(10) {
            return;
        }
        p.last_line = Instant::now();
        let secs = p.started.elapsed().as_secs_f64().max(0.001);
        let rate = p.copied as f64 / secs;
        let pct = if p.total > 0 {
            100.0 * p.copied as f64 / p.total as f64
        } else {
            0.0
        };
        let eta = if rate > 0.0 && p.total > p.copied {
            (p.total - p.copied) as f64 / rate
        } else {
            0.0
        };
        eprintln!(
            "copy: {} of ~{} ({pct:.0}%), {} rows so far, {}/s, {} units left, ETA {eta:.0}s",
            human_bytes(p.copied),
            human_bytes(p.total),
            p.rows,
            human_bytes(rate as u64),
            p.units_left
        );
    }
}

fn unit_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:>10} {wide_msg} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Observer for Progress {
    fn step(&self, step: &str) {
        match &self.bars {
            Some(b) => b.overall.set_message(step.to_owned()),
            None => eprintln!("{step}…"),
        }
    }

    fn planned(&self, total_bytes: u64, done_bytes: u64, units: usize) {
        if let Some(b) = &self.bars {
            b.overall.set_length(total_bytes);
            b.overall.set_position(done_bytes);
            b.overall.reset_eta();
        }
        if let Ok(mut p) = self.plain.lock() {
            p.total = total_bytes.saturating_sub(done_bytes);
            p.units_left = units;
            p.started = Instant::now();
        }
    }

    fn unit_started(&self, unit: &CopyUnit, estimated_bytes: u64) {
        if let Some(b) = &self.bars {
            let bar = b.multi.add(ProgressBar::new(estimated_bytes));
            bar.set_style(unit_style());
            bar.set_prefix("table");
            bar.set_message(unit.to_string());
            if let Ok(mut units) = b.units.lock() {
                units.insert(unit.key(), (bar, 0));
            }
        }
    }

    fn unit_progress(&self, unit: &CopyUnit, bytes: u64, rows: u64) {
        if let Some(b) = &self.bars {
            b.overall.inc(bytes);
            if let Ok(mut units) = b.units.lock() {
                if let Some((bar, r)) = units.get_mut(&unit.key()) {
                    bar.inc(bytes);
                    *r += rows;
                    if *r > 0 {
                        bar.set_message(format!("{unit}  {} rows", *r));
                    }
                }
            }
        }
        if let Ok(mut p) = self.plain.lock() {
            p.copied += bytes;
            p.rows += rows;
        }
        if self.bars.is_none() {
            self.plain_line(false);
        }
    }

    fn unit_finished(&self, unit: &CopyUnit, rows: u64, bytes: u64) {
        if let Some(b) = &self.bars {
            if let Ok(mut units) = b.units.lock() {
                if let Some((bar, _)) = units.remove(&unit.key()) {
                    bar.finish_and_clear();
                    b.multi.remove(&bar);
                }
            }
            let _ = b.multi.println(format!(
                "  copied {unit}: {rows} rows, {}",
                human_bytes(bytes)
            ));
        } else {
            eprintln!("copied {unit}: {rows} rows, {}", human_bytes(bytes));
        }
        if let Ok(mut p) = self.plain.lock() {
            p.units_left = p.units_left.saturating_sub(1);
        }
    }

    fn note(&self, message: &str) {
        match &self.bars {
            Some(b) => {
                let _ = b.multi.println(format!("  {message}"));
            }
            None => eprintln!("{message}"),
        }
    }
}
