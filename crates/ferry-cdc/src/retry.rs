//! How long `ferry sync` waits before trying again after a transient fault, and when it gives
//! up: a pure schedule, kept apart from the loop that follows it.

use std::time::Duration;

/// Exponential backoff with a cap and a total budget per episode of faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait before the first retry; each further wait doubles.
    pub first_delay: Duration,
    /// No wait is longer than this.
    pub max_delay: Duration,
    /// Give up once faults have gone on this long without the stream coming back to work;
    /// zero never retries.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            give_up_after: Duration::from_secs(300),
        }
    }
}

/// One episode of faults: the waits so far.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    attempts: u32,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Backoff {
        Backoff {
            policy,
            attempts: 0,
            next: policy.first_delay,
        }
    }

    /// Retries made so far in this episode.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before the next attempt, `elapsed` into the episode; `None` once the budget
    /// is spent. The last wait is shortened so that the last attempt falls on the budget.
    pub(crate) fn next_delay(&mut self, elapsed: Duration) -> Option<Duration> {
        let left = self.policy.give_up_after.checked_sub(elapsed)?;
        if left.is_zero() {
            return None;
        }
        let delay = self.next.min(self.policy.max_delay).min(left);
        self.next = (self.next * 2).min(self.policy.max_delay);
        self.attempts += 1;
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_stop_at_the_budget() {
        let mut b = Backoff::new(RetryPolicy::default());
        let mut elapsed = Duration::ZERO;
        let mut waits = Vec::new();
        while let Some(d) = b.next_delay(elapsed) {
            waits.push(d.as_millis());
            elapsed += d;
        }
        assert_eq!(
            &waits[..8],
            &[500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]
        );
        assert_eq!(
            elapsed,
            Duration::from_secs(300),
            "the budget is used to its end"
        );
        assert_eq!(b.attempts() as usize, waits.len());
        // 31.5 s to reach the cap, eight waits of 30 s, then what is left of the 5 minutes.
        assert_eq!(waits.len(), 6 + 8 + 1);
        assert_eq!(waits.last().copied(), Some(28_500));
    }

    #[test]
    fn a_zero_budget_never_retries() {
        let mut b = Backoff::new(RetryPolicy {
            give_up_after: Duration::ZERO,
            ..RetryPolicy::default()
        });
        assert_eq!(b.next_delay(Duration::ZERO), None);
        assert_eq!(b.attempts(), 0);
    }

    #[test]
    fn time_spent_in_failing_attempts_counts() {
        let mut b = Backoff::new(RetryPolicy {
            give_up_after: Duration::from_secs(10),
            ..RetryPolicy::default()
        });
        assert_eq!(
            b.next_delay(Duration::from_secs(9)),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            b.next_delay(Duration::from_millis(9800)),
            Some(Duration::from_millis(200))
        );
        assert_eq!(b.next_delay(Duration::from_secs(10)), None);
    }
}
