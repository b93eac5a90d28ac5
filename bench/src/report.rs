//! Collecting samples into rows, printing the table, the verdicts and the JSON.

use std::time::Duration;

use serde_json::{json, Value};

use crate::tools::{mb, Kind, Sample};

/// Ferry must take at most this fraction of the fastest peer's wall time.
pub const RATIO_TARGET: f64 = 0.80;
/// Ferry's peak RSS must stay under this many (decimal) megabytes.
pub const RSS_TARGET_MB: f64 = 200.0;

/// One line of the table: every sample of one tool (or floor step) across rounds.
#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub kind: Kind,
    pub samples: Vec<Duration>,
    /// The notes of each sample, beside `samples`.
    pub sample_notes: Vec<Vec<String>>,
    /// The highest peak RSS of any round.
    pub peak_rss_kib: Option<u64>,
    pub failures: Vec<String>,
}

impl Row {
    pub fn new(label: String, kind: Kind) -> Row {
        Row {
            label,
            kind,
            samples: Vec::new(),
            sample_notes: Vec::new(),
            peak_rss_kib: None,
            failures: Vec::new(),
        }
    }

    /// The median wall time, when the tool never failed.
    pub fn wall(&self) -> Option<Duration> {
        if !self.failures.is_empty() || self.samples.is_empty() {
            return None;
        }
        let mut s = self.samples.clone();
        s.sort();
        let n = s.len();
        Some(if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2
        })
    }

    /// The notes of the median round (the lower middle one for an even count), after the
    /// peak RSS of all rounds.
    pub fn notes(&self) -> Vec<String> {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        order.sort_by_key(|&i| self.samples[i]);
        let mut notes = Vec::new();
        if let Some(kib) = self.peak_rss_kib {
            notes.push(format!("peak RSS {:.0} MB", mb(kib)));
        }
        if let Some(&i) = order.get(order.len().saturating_sub(1) / 2) {
            notes.extend(self.sample_notes[i].iter().cloned());
        }
        notes
    }
}

/// All rows, in the order they were first seen.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    fn row(&mut self, label: &str, kind: Kind) -> &mut Row {
        let at = match self.rows.iter().position(|r| r.label == label) {
            Some(i) => i,
            None => {
                self.rows.push(Row::new(label.to_string(), kind));
                self.rows.len() - 1
            }
        };
        &mut self.rows[at]
    }

    pub fn add(&mut self, sample: Sample) {
        let row = self.row(&sample.row, sample.kind);
        row.samples.push(sample.wall);
        row.sample_notes.push(sample.notes);
        if let Some(kib) = sample.peak_rss_kib {
            row.peak_rss_kib = Some(row.peak_rss_kib.map_or(kib, |p| p.max(kib)));
        }
    }

    pub fn fail(&mut self, label: &str, kind: Kind, reason: String) {
        self.row(label, kind).failures.push(reason);
    }

    fn ferry(&self) -> Option<&Row> {
        self.rows.iter().find(|r| r.kind == Kind::Ferry)
    }

    /// The fastest peer that completed correctly.
    pub fn fastest_peer(&self) -> Option<(&Row, Duration)> {
        self.rows
            .iter()
            .filter(|r| r.kind == Kind::Peer)
            .filter_map(|r| r.wall().map(|w| (r, w)))
            .min_by_key(|(_, w)| *w)
    }

    /// Ferry's time over the fastest peer's.
    pub fn ferry_ratio(&self) -> Option<f64> {
        let ferry = self.ferry()?.wall()?;
        let (_, peer) = self.fastest_peer()?;
        Some(ferry.as_secs_f64() / peer.as_secs_f64())
    }

    pub fn ferry_rss_mb(&self) -> Option<f64> {
        self.ferry()?.peak_rss_kib.map(mb)
    }

    /// The table, the failures and the two verdict lines.
    pub fn print(&self) {
        let peer = self.fastest_peer().map(|(_, w)| w);
        let ferry = self.ferry().and_then(Row::wall);
        let width = self
            .rows
            .iter()
            .map(|r| r.label.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!(
            "{:<width$} | {:>9} | {:>14} | {:>8} | notes",
            "tool", "wall s", "/ fastest peer", "/ ferry"
        );
        println!("{}", "-".repeat(width + 50));
        for row in &self.rows {
            let (wall, vs_peer, vs_ferry) = match row.wall() {
                Some(w) => (seconds(w), ratio(w, peer), ratio(w, ferry)),
                None => ("FAILED".into(), "-".into(), "-".into()),
            };
            let mut notes = row.notes();
            if row.samples.len() > 1 {
                let all: Vec<String> = row.samples.iter().map(|s| seconds(*s)).collect();
                notes.insert(0, format!("median of {} s", all.join(", ")));
            }
            if self
                .fastest_peer()
                .is_some_and(|(r, _)| r.label == row.label)
            {
                notes.insert(0, "fastest peer".into());
            }
            println!(
                "{:<width$} | {:>9} | {:>14} | {:>8} | {}",
                row.label,
                wall,
                vs_peer,
                vs_ferry,
                notes.join("; ")
            );
        }
        let failed: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| !r.failures.is_empty())
            .collect();
        if !failed.is_empty() {
            println!();
            for row in failed {
                for reason in &row.failures {
                    println!("FAILED {}: {reason}", row.label);
                }
            }
        }
        println!();
        for line in self.verdicts() {
            println!("{line}");
        }
    }

    /// `ferry / fastest peer = ...: PASS|FAIL` and `ferry peak RSS = ...: PASS|FAIL`.
    pub fn verdicts(&self) -> Vec<String> {
        let ratio_line = match (self.ferry_ratio(), self.ferry(), self.fastest_peer()) {
            (Some(r), _, Some((peer, _))) => format!(
                "ferry / fastest peer ({}) = {r:.2} (target <= {RATIO_TARGET:.2}): {}",
                peer.label,
                pass(r <= RATIO_TARGET)
            ),
            (None, None, _) => {
                format!("ferry / fastest peer = n/a (ferry not run) (target <= {RATIO_TARGET:.2}): FAIL")
            }
            (None, Some(f), _) if f.wall().is_none() => format!(
                "ferry / fastest peer = n/a (ferry FAILED) (target <= {RATIO_TARGET:.2}): FAIL"
            ),
            _ => format!(
                "ferry / fastest peer = n/a (no peer completed) (target <= {RATIO_TARGET:.2}): FAIL"
            ),
        };
        let rss_line = match self.ferry_rss_mb() {
            Some(m) => format!(
                "ferry peak RSS = {m:.0} MB (target < {RSS_TARGET_MB:.0} MB): {}",
                pass(m < RSS_TARGET_MB)
            ),
            None => format!("ferry peak RSS = n/a (target < {RSS_TARGET_MB:.0} MB): FAIL"),
        };
        vec![ratio_line, rss_line]
    }

    pub fn to_json(&self, header: Value) -> Value {
        let peer = self.fastest_peer().map(|(_, w)| w);
        let ferry = self.ferry().and_then(Row::wall);
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let w = r.wall();
                json!({
                    "tool": r.label,
                    "kind": match r.kind { Kind::Ferry => "ferry", Kind::Peer => "peer", Kind::Floor => "floor" },
                    "wall_seconds": w.map(|w| w.as_secs_f64()),
                    "samples": r.samples.iter().zip(&r.sample_notes).map(|(s, n)| json!({"seconds": s.as_secs_f64(), "notes": n})).collect::<Vec<_>>(),
                    "ratio_vs_fastest_peer": w.zip(peer).map(|(w, p)| w.as_secs_f64() / p.as_secs_f64()),
                    "ratio_vs_ferry": w.zip(ferry).map(|(w, f)| w.as_secs_f64() / f.as_secs_f64()),
                    "peak_rss_mb": r.peak_rss_kib.map(mb),
                    "failures": r.failures,
                    "notes": r.notes(),
                })
            })
            .collect();
        json!({
            "run": header,
            "rows": rows,
            "fastest_peer": self.fastest_peer().map(|(r, _)| r.label.clone()),
            "ferry_vs_fastest_peer": self.ferry_ratio(),
            "ferry_peak_rss_mb": self.ferry_rss_mb(),
            "targets": {
                "ferry_vs_fastest_peer_max": RATIO_TARGET,
                "ferry_peak_rss_mb_below": RSS_TARGET_MB,
                "ratio_pass": self.ferry_ratio().is_some_and(|r| r <= RATIO_TARGET),
                "rss_pass": self.ferry_rss_mb().is_some_and(|m| m < RSS_TARGET_MB),
            },
            "verdicts": self.verdicts(),
        })
    }
}

/// Seconds with one decimal, two below ten seconds.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.2}")
    } else {
        format!("{s:.1}")
    }
}

fn ratio(w: Duration, base: Option<Duration>) -> String {
    match base {
        Some(b) if !b.is_zero() => format!("{:.2}", w.as_secs_f64() / b.as_secs_f64()),
        _ => "-".into(),
    }
}

fn pass(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Report;
    use crate::tools::{Kind, Sample};

    fn sample(row: &str, kind: Kind, secs: u64, rss: Option<u64>) -> Sample {
        Sample {
            row: row.into(),
            kind,
            wall: Duration::from_secs(secs),
            peak_rss_kib: rss,
            notes: vec![],
        }
    }

    #[test]
    fn ratio_against_the_fastest_correct_peer() {
        let mut r = Report::default();
        r.add(sample("ferry", Kind::Ferry, 8, Some(100_000)));
        r.add(sample("a", Kind::Peer, 10, None));
        r.add(sample("b", Kind::Peer, 20, None));
        r.add(sample("floor", Kind::Floor, 1, None));
        r.fail("c", Kind::Peer, "wrong copy".into());
        assert_eq!(r.fastest_peer().map(|(p, _)| p.label.as_str()), Some("a"));
        assert_eq!(r.ferry_ratio(), Some(0.8));
        let v = r.verdicts();
        assert!(v[0].ends_with("PASS"), "{v:?}");
        assert!(v[1].contains("102 MB") && v[1].ends_with("PASS"), "{v:?}");
    }

    #[test]
    fn median_of_rounds_and_failed_ferry() {
        let mut r = Report::default();
        for s in [30, 10, 20] {
            r.add(sample("a", Kind::Peer, s, None));
        }
        assert_eq!(r.rows[0].wall(), Some(Duration::from_secs(20)));
        r.rows[0].sample_notes = vec![vec!["30".into()], vec!["10".into()], vec!["20".into()]];
        assert_eq!(r.rows[0].notes(), vec!["20".to_string()]);
        r.add(sample("ferry", Kind::Ferry, 5, None));
        r.fail("ferry", Kind::Ferry, "boom".into());
        assert_eq!(r.ferry_ratio(), None);
        assert!(r.verdicts()[0].contains("ferry FAILED"));
    }
}
