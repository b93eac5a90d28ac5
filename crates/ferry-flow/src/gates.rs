//! The `ready` gate and the cutover decision.

use std::time::Duration;

/// The lag `ferry sync` measured at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagSample {
    /// Unix milliseconds.
    pub at_ms: i64,
    pub lag_seconds: f64,
}

/// The last batch validation, as the store holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidationFact {
    pub finished_at_ms: i64,
    pub differences: u64,
    /// Rows still changing while validation looked: re-checked inside the cutover pause,
    /// so they do not hold the gate.
    pub unsettled: u64,
}

/// `[sync] max_lag` and `[sync] sustained`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gates {
    pub max_lag: Duration,
    pub sustained: Duration,
}

/// Whether the target may be cut over to, and if not, why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Readiness {
    Ready,
    NotYet(Vec<String>),
}

/// A lag older than this says nothing about now.
const STALE_MS: i64 = 5_000;

/// The `ready` gate: the lag stayed below `max_lag` for the whole `sustained` window up to
/// `now_ms` (the samples must cover the window, the newest at most 5 s old), and the last
/// validation found no difference.
pub fn ready(
    lag: &[LagSample],
    now_ms: i64,
    validation: Option<&ValidationFact>,
    gates: &Gates,
) -> Readiness {
    let mut why = Vec::new();
    let max = gates.max_lag.as_secs_f64();
    let window_start = now_ms - i64::try_from(gates.sustained.as_millis()).unwrap_or(i64::MAX);
    match lag.iter().max_by_key(|s| s.at_ms) {
        None => why.push("no lag measured yet: is change capture running?".to_owned()),
        Some(newest) if now_ms - newest.at_ms > STALE_MS => why.push(format!(
            "the last lag was measured {:.0} s ago: is change capture running?",
            (now_ms - newest.at_ms) as f64 / 1000.0
        )),
        Some(_) => {
            // The sample in force when the window began, and every one since.
            let before = lag
                .iter()
                .filter(|s| s.at_ms <= window_start)
                .max_by_key(|s| s.at_ms);
            match before {
                None => why.push(format!(
                    "the lag has been watched for less than [sync] sustained ({} s)",
                    gates.sustained.as_secs()
                )),
                Some(first) => {
                    let worst = lag
                        .iter()
                        .filter(|s| s.at_ms > window_start)
                        .chain(std::iter::once(first))
                        .map(|s| s.lag_seconds)
                        .fold(0.0, f64::max);
                    if worst >= max {
                        why.push(format!(
                            "the lag reached {worst:.1} s in the last {} s ([sync] max_lag is {max:.1} s)",
                            gates.sustained.as_secs()
                        ));
                    }
                }
            }
        }
    }
    match validation {
        None => why.push("no validation has run: run `ferry validate SPEC`".to_owned()),
        Some(v) if v.differences > 0 => why.push(format!(
            "the last validation found {} difference(s): fix them and validate again",
            v.differences
        )),
        Some(_) => {}
    }
    if why.is_empty() {
        Readiness::Ready
    } else {
        Readiness::NotYet(why)
    }
}

/// `[cutover] approval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Approval {
    /// Cut over as soon as the gate opens.
    Auto,
    /// Wait for `ferry cutover SPEC`.
    #[default]
    Manual,
}

/// What the running migration does about cutover now.
#[derive(Debug, Clone, PartialEq)]
pub enum CutoverDecision {
    Go,
    Wait(Vec<String>),
}

/// Cut over now? Only through an open gate, and with manual approval only once approved.
pub fn cutover(readiness: &Readiness, approval: Approval, approved: bool) -> CutoverDecision {
    match (readiness, approval, approved) {
        (Readiness::NotYet(why), _, _) => CutoverDecision::Wait(why.clone()),
        (Readiness::Ready, Approval::Auto, _) | (Readiness::Ready, Approval::Manual, true) => {
            CutoverDecision::Go
        }
        (Readiness::Ready, Approval::Manual, false) => CutoverDecision::Wait(vec![
            "ready: waiting for `ferry cutover SPEC` ([cutover] approval = \"manual\")".into(),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATES: Gates = Gates {
        max_lag: Duration::from_secs(1),
        sustained: Duration::from_secs(60),
    };
    const CLEAN: ValidationFact = ValidationFact {
        finished_at_ms: 0,
        differences: 0,
        unsettled: 3,
    };

    /// One sample a second from `from_s` to `to_s` (seconds), lag from `f`.
    fn samples(from_s: i64, to_s: i64, f: impl Fn(i64) -> f64) -> Vec<LagSample> {
        (from_s..=to_s)
            .map(|t| LagSample {
                at_ms: t * 1000,
                lag_seconds: f(t),
            })
            .collect()
    }

    fn reasons(r: Readiness) -> String {
        match r {
            Readiness::Ready => String::new(),
            Readiness::NotYet(why) => why.join("; "),
        }
    }

    #[test]
    fn low_lag_for_the_whole_window_and_a_clean_validation_is_ready() {
        let lag = samples(0, 100, |_| 0.2);
        assert_eq!(ready(&lag, 100_000, Some(&CLEAN), &GATES), Readiness::Ready);
    }

    #[test]
    fn one_spike_inside_the_window_closes_the_gate() {
        let lag = samples(0, 100, |t| if t == 70 { 1.5 } else { 0.2 });
        let why = reasons(ready(&lag, 100_000, Some(&CLEAN), &GATES));
        assert!(why.contains("reached 1.5 s"), "{why}");
        // Once the spike is older than the window, the gate opens.
        let lag = samples(0, 140, |t| if t == 70 { 1.5 } else { 0.2 });
        assert_eq!(ready(&lag, 140_000, Some(&CLEAN), &GATES), Readiness::Ready);
    }

    #[test]
    fn a_window_not_yet_watched_or_a_stale_lag_is_not_ready() {
        let lag = samples(50, 100, |_| 0.1);
        let why = reasons(ready(&lag, 100_000, Some(&CLEAN), &GATES));
        assert!(why.contains("watched for less than"), "{why}");
        let lag = samples(0, 100, |_| 0.1);
        let why = reasons(ready(&lag, 110_000, Some(&CLEAN), &GATES));
        assert!(why.contains("10 s ago"), "{why}");
        let why = reasons(ready(&[], 1, Some(&CLEAN), &GATES));
        assert!(why.contains("no lag measured"), "{why}");
    }

    #[test]
    fn validation_must_have_run_and_found_nothing() {
        let lag = samples(0, 100, |_| 0.1);
        let why = reasons(ready(&lag, 100_000, None, &GATES));
        assert!(why.contains("ferry validate"), "{why}");
        let dirty = ValidationFact {
            differences: 2,
            ..CLEAN
        };
        let why = reasons(ready(&lag, 100_000, Some(&dirty), &GATES));
        assert!(why.contains("2 difference(s)"), "{why}");
    }

    #[test]
    fn cutover_goes_only_through_an_open_gate_and_manual_waits_for_approval() {
        let not_yet = Readiness::NotYet(vec!["lag".into()]);
        assert_eq!(
            cutover(&not_yet, Approval::Auto, true),
            CutoverDecision::Wait(vec!["lag".into()])
        );
        assert_eq!(
            cutover(&Readiness::Ready, Approval::Auto, false),
            CutoverDecision::Go
        );
        assert_eq!(
            cutover(&Readiness::Ready, Approval::Manual, true),
            CutoverDecision::Go
        );
        assert!(matches!(
            cutover(&Readiness::Ready, Approval::Manual, false),
            CutoverDecision::Wait(w) if w[0].contains("ferry cutover")
        ));
    }
}
