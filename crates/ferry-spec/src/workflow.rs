//! `[sync]` and `[cutover]`: the gates and the cutover of `ferry migrate` (issue 6).

use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Value};

use crate::plan::Checker;
use crate::quantity::{format_duration, parse_duration};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSync {
    pub max_lag: Option<Spanned<String>>,
    pub sustained: Option<Spanned<String>>,
    /// A string with a unit or a bare integer of bytes.
    pub max_retained_wal: Option<Spanned<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCutover {
    pub approval: Option<Spanned<String>>,
    pub quiesce: Option<Spanned<String>>,
    pub drain_timeout: Option<Spanned<String>>,
    pub final_validation: Option<Spanned<String>>,
    pub final_validation_budget: Option<Spanned<String>>,
}

/// The `ready` gate and the source's WAL budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    /// The lag must stay below this (default 1s) …
    pub max_lag: Duration,
    /// … for this long (default 30s) before cutover.
    pub sustained: Duration,
    /// Stop before Ferry's slot holds more WAL than this on the source (`None`: only
    /// `max_slot_wal_keep_size` bounds it).
    pub max_retained_wal: Option<u64>,
}

/// Who decides when to cut over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Approval {
    /// `ferry cutover SPEC` from another terminal.
    #[default]
    Manual,
    /// As soon as the `ready` gate opens.
    Auto,
}

/// What the cutover re-validates inside the write pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FinalValidation {
    #[default]
    Off,
    /// The tables changed since the last full validation, within the budget.
    Changed,
}

/// How the cutover runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutoverSettings {
    pub approval: Approval,
    /// How long open transactions on the fenced source may run before they are ended.
    pub drain_timeout: Duration,
    pub final_validation: FinalValidation,
    pub final_validation_budget: Duration,
}

const DEFAULT_MAX_LAG: Duration = Duration::from_secs(1);
const DEFAULT_SUSTAINED: Duration = Duration::from_secs(30);
const DEFAULT_DRAIN: Duration = Duration::from_secs(10);
const DEFAULT_FINAL_BUDGET: Duration = Duration::from_secs(30);

impl Checker<'_> {
    /// A duration within `[min, max]`, or `default`.
    fn bounded(
        &mut self,
        v: Option<Spanned<String>>,
        key: &str,
        (min, max): (Duration, Duration),
        default: Duration,
    ) -> Duration {
        let Some(v) = v else {
            return default;
        };
        match parse_duration(v.get_ref()) {
            Ok(d) if (min..=max).contains(&d) => d,
            Ok(d) => {
                let message = format!(
                    "must be between {} and {} (found {})",
                    format_duration(min),
                    format_duration(max),
                    format_duration(d)
                );
                self.report(&v, key, message);
                default
            }
            Err(message) => {
                self.report(&v, key, message);
                default
            }
        }
    }

    pub(crate) fn sync(&mut self, raw: RawSync) -> SyncSettings {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        SyncSettings {
            max_lag: self.bounded(
                raw.max_lag,
                "[sync] max_lag",
                (ms(10), secs(3600)),
                DEFAULT_MAX_LAG,
            ),
            sustained: self.bounded(
                raw.sustained,
                "[sync] sustained",
                (secs(1), secs(86_400)),
                DEFAULT_SUSTAINED,
            ),
            max_retained_wal: raw
                .max_retained_wal
                .and_then(|v| self.size(&v, "[sync] max_retained_wal")),
        }
    }

    pub(crate) fn cutover(&mut self, raw: RawCutover) -> CutoverSettings {
        let secs = Duration::from_secs;
        let approval = raw.approval.and_then(|v| {
            self.choice(
                &v,
                "[cutover] approval",
                &[("manual", Approval::Manual), ("auto", Approval::Auto)],
            )
        });
        if let Some(v) = raw.quiesce {
            // "proxy" comes with the data access layer (a later issue).
            self.choice(&v, "[cutover] quiesce", &[("source", ())]);
        }
        let final_validation = raw.final_validation.and_then(|v| {
            self.choice(
                &v,
                "[cutover] final_validation",
                &[
                    ("off", FinalValidation::Off),
                    ("changed", FinalValidation::Changed),
                ],
            )
        });
        CutoverSettings {
            approval: approval.unwrap_or_default(),
            drain_timeout: self.bounded(
                raw.drain_timeout,
                "[cutover] drain_timeout",
                (Duration::ZERO, secs(3600)),
                DEFAULT_DRAIN,
            ),
            final_validation: final_validation.unwrap_or_default(),
            final_validation_budget: self.bounded(
                raw.final_validation_budget,
                "[cutover] final_validation_budget",
                (secs(1), secs(3600)),
                DEFAULT_FINAL_BUDGET,
            ),
        }
    }
}
