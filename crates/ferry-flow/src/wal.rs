//! The source's safety while a migration runs: the WAL Ferry's slot holds back there.

/// What was measured on the source about Ferry's slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WalFacts {
    /// `pg_replication_slots.wal_status` is `lost`: the slot was invalidated.
    pub lost: bool,
    /// WAL the slot retains (current LSN minus its restart LSN), bytes.
    pub retained: u64,
    /// `safe_wal_size`: bytes that may still be written before the slot is invalidated
    /// (`None`: `max_slot_wal_keep_size` is unlimited).
    pub safe_wal_size: Option<i64>,
    /// How fast the source writes WAL, and how fast the slot's confirmed position moves
    /// (bytes per second, over the last minute or so).
    pub wal_rate: f64,
    pub confirm_rate: f64,
}

/// What to do about it.
#[derive(Debug, Clone, PartialEq)]
pub enum WalVerdict {
    Fine,
    Warn(String),
    /// Stop the migration before the source suffers (its slot dropped by `ferry abort`, or
    /// kept for a resume once the cause is fixed).
    Stop(String),
}

/// Stop when the slot would be invalidated within this many seconds at the current rates.
const HORIZON_S: f64 = 300.0;

/// The WAL guard: stop when the slot is lost, when it retains more than `budget`
/// (`[sync] max_retained_wal`), or when the retained WAL grows fast enough to reach
/// `max_slot_wal_keep_size` within five minutes; warn at 80% of the budget or within three
/// times that horizon.
pub fn wal_guard(f: &WalFacts, budget: Option<u64>) -> WalVerdict {
    if f.lost {
        return WalVerdict::Stop(
            "the source invalidated Ferry's slot (max_slot_wal_keep_size): the changes since \
             are gone; start over with `ferry copy SPEC --restart`"
                .into(),
        );
    }
    if let Some(b) = budget {
        if f.retained >= b {
            return WalVerdict::Stop(format!(
                "Ferry's slot holds {} MB of WAL on the source, at [sync] max_retained_wal ({} MB): \
                 stopping before the source's disk suffers; find why apply is slow, then resume",
                f.retained >> 20,
                b >> 20
            ));
        }
    }
    if let Some(safe) = f.safe_wal_size {
        let growth = f.wal_rate - f.confirm_rate;
        if safe <= 0 {
            return WalVerdict::Stop(
                "Ferry's slot is about to be invalidated (safe_wal_size is 0)".into(),
            );
        }
        if growth > 0.0 {
            let left_s = safe as f64 / growth;
            if left_s < HORIZON_S {
                return WalVerdict::Stop(format!(
                    "at the current rates Ferry's slot would be invalidated in {left_s:.0} s \
                     (max_slot_wal_keep_size): stopping while it can still resume"
                ));
            }
            if left_s < 3.0 * HORIZON_S {
                return WalVerdict::Warn(format!(
                    "Ferry's slot would be invalidated in {left_s:.0} s at the current rates"
                ));
            }
        }
    }
    match budget {
        Some(b) if f.retained.saturating_mul(5) >= b.saturating_mul(4) => {
            WalVerdict::Warn(format!(
                "Ferry's slot holds {} MB of WAL, 80% of [sync] max_retained_wal",
                f.retained >> 20
            ))
        }
        _ => WalVerdict::Fine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALM: WalFacts = WalFacts {
        lost: false,
        retained: 10 << 20,
        safe_wal_size: None,
        wal_rate: 1e6,
        confirm_rate: 1e6,
    };

    #[test]
    fn a_calm_slot_is_fine_and_a_lost_one_stops() {
        assert_eq!(wal_guard(&CALM, Some(1 << 30)), WalVerdict::Fine);
        let lost = WalFacts { lost: true, ..CALM };
        assert!(matches!(wal_guard(&lost, None), WalVerdict::Stop(m) if m.contains("--restart")));
    }

    #[test]
    fn the_budget_warns_at_80_percent_and_stops_at_100() {
        let budget = 100 << 20;
        let at = |mb: u64| WalFacts {
            retained: mb << 20,
            ..CALM
        };
        assert_eq!(wal_guard(&at(79), Some(budget)), WalVerdict::Fine);
        assert!(matches!(
            wal_guard(&at(80), Some(budget)),
            WalVerdict::Warn(_)
        ));
        assert!(
            matches!(wal_guard(&at(100), Some(budget)), WalVerdict::Stop(m) if m.contains("max_retained_wal"))
        );
    }

    #[test]
    fn a_slot_heading_for_invalidation_stops_in_time() {
        // 100 MB left, growing 1 MB/s: 100 s to go.
        let falling_behind = WalFacts {
            safe_wal_size: Some(100 << 20),
            wal_rate: 2.0 * (1 << 20) as f64,
            confirm_rate: (1 << 20) as f64,
            ..CALM
        };
        assert!(
            matches!(wal_guard(&falling_behind, None), WalVerdict::Stop(m) if m.contains("invalidated in"))
        );
        // The same room while apply keeps up: fine.
        let keeping_up = WalFacts {
            confirm_rate: 2.0 * (1 << 20) as f64,
            ..falling_behind
        };
        assert_eq!(wal_guard(&keeping_up, None), WalVerdict::Fine);
        // 600 s to go: a warning.
        let later = WalFacts {
            safe_wal_size: Some(600 << 20),
            ..falling_behind
        };
        assert!(matches!(wal_guard(&later, None), WalVerdict::Warn(_)));
    }
}
