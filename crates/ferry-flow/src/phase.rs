//! The phases of a migration, as the store and `ferry status` name them.

use std::fmt;
use std::str::FromStr;

/// Where a migration stands. The main line runs `Check` → … → `Finalized`; `RolledBack`,
/// `Aborted` and `Failed` end it elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Check,
    Prepare,
    Copy,
    Sync,
    Validate,
    Ready,
    Cutover,
    CutOver,
    Finalized,
    RolledBack,
    Aborted,
    Failed,
}

const ALL: [Phase; 12] = [
    Phase::Check,
    Phase::Prepare,
    Phase::Copy,
    Phase::Sync,
    Phase::Validate,
    Phase::Ready,
    Phase::Cutover,
    Phase::CutOver,
    Phase::Finalized,
    Phase::RolledBack,
    Phase::Aborted,
    Phase::Failed,
];

/// A phase name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a phase (one of: check, prepare, copy, sync, validate, ready, cutover, cut_over, finalized, rolled_back, aborted, failed)")]
pub struct PhaseError(pub String);

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Check => "check",
            Phase::Prepare => "prepare",
            Phase::Copy => "copy",
            Phase::Sync => "sync",
            Phase::Validate => "validate",
            Phase::Ready => "ready",
            Phase::Cutover => "cutover",
            Phase::CutOver => "cut_over",
            Phase::Finalized => "finalized",
            Phase::RolledBack => "rolled_back",
            Phase::Aborted => "aborted",
            Phase::Failed => "failed",
        }
    }

    /// The next phase on the main line (`None` after `Finalized` and for the ends elsewhere).
    pub fn next(self) -> Option<Phase> {
        Some(match self {
            Phase::Check => Phase::Prepare,
            Phase::Prepare => Phase::Copy,
            Phase::Copy => Phase::Sync,
            Phase::Sync => Phase::Validate,
            Phase::Validate => Phase::Ready,
            Phase::Ready => Phase::Cutover,
            Phase::Cutover => Phase::CutOver,
            Phase::CutOver => Phase::Finalized,
            _ => return None,
        })
    }

    /// Whether the migration has ended (nothing more runs).
    pub fn is_end(self) -> bool {
        matches!(
            self,
            Phase::Finalized | Phase::RolledBack | Phase::Aborted | Phase::Failed
        )
    }

    /// A rollback is possible at every phase before `Finalized` that has not ended.
    pub fn can_roll_back(self) -> bool {
        !self.is_end()
    }

    /// Whether moving from `self` to `to` is a transition the workflow makes: the next phase,
    /// back from `Ready` to `Sync` (the gate closed again) or from `Cutover` to `Ready` (a
    /// cutover that stopped before the target opened), or an end elsewhere.
    pub fn may_become(self, to: Phase) -> bool {
        if self.is_end() {
            return false;
        }
        self.next() == Some(to)
            || matches!(
                (self, to),
                (Phase::Ready, Phase::Sync) | (Phase::Cutover, Phase::Ready)
            )
            || matches!(to, Phase::RolledBack | Phase::Aborted | Phase::Failed)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Phase {
    type Err = PhaseError;

    fn from_str(s: &str) -> Result<Phase, PhaseError> {
        ALL.into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| PhaseError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_say_which_exist() {
        for p in ALL {
            assert_eq!(p.as_str().parse::<Phase>(), Ok(p));
        }
        let err = "cutted".parse::<Phase>().expect_err("not a phase");
        assert!(err.to_string().contains("cut_over"), "{err}");
    }

    #[test]
    fn the_main_line_runs_in_order_and_ends_end() {
        let mut p = Phase::Check;
        let mut seen = vec![p];
        while let Some(n) = p.next() {
            assert!(p.may_become(n));
            seen.push(n);
            p = n;
        }
        assert_eq!(seen.len(), 9);
        assert_eq!(p, Phase::Finalized);
        for end in [
            Phase::Finalized,
            Phase::RolledBack,
            Phase::Aborted,
            Phase::Failed,
        ] {
            assert!(end.is_end());
            assert!(!end.can_roll_back());
            assert!(!end.may_become(Phase::Sync));
        }
    }

    #[test]
    fn only_the_workflows_own_moves_are_allowed() {
        assert!(Phase::Ready.may_become(Phase::Sync));
        assert!(Phase::Cutover.may_become(Phase::Ready));
        assert!(Phase::CutOver.may_become(Phase::RolledBack));
        assert!(Phase::Copy.may_become(Phase::Aborted));
        assert!(!Phase::Copy.may_become(Phase::Ready));
        assert!(!Phase::Sync.may_become(Phase::Copy));
        assert!(!Phase::CutOver.may_become(Phase::Cutover));
    }
}
