//! Steering a running [`crate::sync`] from beside it: the cutover of `ferry migrate` needs
//! to know promptly how far the target reflects the source, to ask for a position without
//! the idle stream's throttling, and to hear of any change committed on the source after the
//! fence's final LSN (the fence leaked).

use std::sync::atomic::{AtomicU64, Ordering};

use ferry_model::Lsn;

/// Shared between a running sync and its caller. All positions are 0 while unset.
#[derive(Debug, Default)]
pub struct SyncControl {
    /// What the target reflects: the last applied commit, or a later idle confirmation.
    position: AtomicU64,
    /// A position the caller waits for: idle confirmations are not throttled until it is
    /// reached.
    wanted: AtomicU64,
    /// Changes of transactions that commit at or after this position are reported as leaks.
    fence: AtomicU64,
    /// The commit position of the first change seen past the fence.
    leaked: AtomicU64,
}

impl SyncControl {
    pub fn position(&self) -> Lsn {
        Lsn(self.position.load(Ordering::Acquire))
    }

    /// Asks the running sync to reach `lsn` without delay.
    pub fn want(&self, lsn: Lsn) {
        self.wanted.store(lsn.0, Ordering::Release);
    }

    /// From now on, a change in a transaction committing at or after `lsn` is a leak.
    pub fn fence_at(&self, lsn: Lsn) {
        self.fence.store(lsn.0, Ordering::Release);
    }

    /// The commit position of the first change seen past the fence, if any.
    pub fn leaked(&self) -> Option<Lsn> {
        match self.leaked.load(Ordering::Acquire) {
            0 => None,
            v => Some(Lsn(v)),
        }
    }

    pub(crate) fn publish(&self, position: Lsn) {
        self.position.fetch_max(position.0, Ordering::AcqRel);
    }

    /// Whether a wanted position is not reached yet.
    pub(crate) fn in_a_hurry(&self) -> bool {
        let wanted = self.wanted.load(Ordering::Acquire);
        wanted != 0 && self.position.load(Ordering::Acquire) < wanted
    }

    /// Whether a transaction committing at `commit` is past the fence.
    pub(crate) fn past_fence(&self, commit: Lsn) -> bool {
        let fence = self.fence.load(Ordering::Acquire);
        fence != 0 && commit.0 >= fence
    }

    pub(crate) fn leak(&self, commit: Lsn) {
        let _ = self
            .leaked
            .compare_exchange(0, commit.0, Ordering::AcqRel, Ordering::Acquire);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_only_move_forward_and_the_first_leak_is_kept() {
        let c = SyncControl::default();
        assert!(!c.past_fence(Lsn(10)), "no fence: nothing leaks");
        c.publish(Lsn(30));
        c.publish(Lsn(20));
        assert_eq!(c.position(), Lsn(30));
        c.want(Lsn(40));
        assert!(c.in_a_hurry());
        c.publish(Lsn(40));
        assert!(!c.in_a_hurry());
        c.fence_at(Lsn(50));
        assert!(!c.past_fence(Lsn(49)));
        assert!(c.past_fence(Lsn(50)));
        c.leak(Lsn(55));
        c.leak(Lsn(60));
        assert_eq!(c.leaked(), Some(Lsn(55)));
    }
}
