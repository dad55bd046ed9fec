//! When to try a failed email again: exponential growth from
//! `base_backoff`, capped at `max_backoff`, with jitter so that many emails
//! failing together (the SMTP server was down) do not all retry in the same
//! instant.

use std::time::Duration;

/// The longest shift applied to `base_backoff`; beyond it the cap applies
/// anyway and the multiplication would only overflow.
const MAX_DOUBLINGS: u32 = 30;

/// The delay before the next try after `attempts` failed ones (1 for the
/// first failure): a random point between half and all of
/// `min(max, base * 2^(attempts - 1))`.
pub(crate) fn backoff(base: Duration, max: Duration, attempts: i32) -> Duration {
    // Without randomness the full delay is still a correct (if less spread)
    // choice, so a failing random source never stops a retry.
    let random = getrandom::u64().unwrap_or(u64::MAX);
    jittered(capped(base, max, attempts), random)
}

/// `min(max, base * 2^(attempts - 1))`, for `attempts >= 1`.
pub(crate) fn capped(base: Duration, max: Duration, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(MAX_DOUBLINGS);
    base.saturating_mul(1u32 << doublings).min(max)
}

/// A point in `[delay / 2, delay]` chosen by `random`, at millisecond
/// resolution (the stored resolution).
pub(crate) fn jittered(delay: Duration, random: u64) -> Duration {
    let half = delay / 2;
    let span = u64::try_from((delay - half).as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(random % span.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(2);
    const MAX: Duration = Duration::from_secs(15 * 60);

    #[test]
    fn the_delay_doubles_with_each_failure_until_the_cap() {
        assert_eq!(capped(BASE, MAX, 1), Duration::from_secs(2));
        assert_eq!(capped(BASE, MAX, 2), Duration::from_secs(4));
        assert_eq!(capped(BASE, MAX, 3), Duration::from_secs(8));
        assert_eq!(capped(BASE, MAX, 9), Duration::from_secs(512));
        assert_eq!(capped(BASE, MAX, 10), MAX);
        assert_eq!(capped(BASE, MAX, 12), MAX);
    }

    #[test]
    fn absurd_attempt_counts_neither_overflow_nor_go_below_the_base() {
        assert_eq!(capped(BASE, MAX, i32::MAX), MAX);
        assert_eq!(capped(BASE, MAX, 0), BASE);
        assert_eq!(capped(BASE, MAX, -5), BASE);
        assert_eq!(capped(Duration::MAX, Duration::MAX, 40), Duration::MAX);
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_delay() {
        let delay = Duration::from_secs(8);
        assert_eq!(jittered(delay, 0), Duration::from_secs(4));
        assert_eq!(jittered(delay, 4_000), Duration::from_secs(8));
        assert_eq!(
            jittered(delay, u64::MAX),
            Duration::from_millis(4_000 + u64::MAX % 4_001)
        );
        for random in [1, 7, 3_999, 123_456_789, u64::MAX - 1] {
            let d = jittered(delay, random);
            assert!(d >= Duration::from_secs(4) && d <= delay, "{d:?}");
        }
        assert_eq!(jittered(Duration::ZERO, 42), Duration::ZERO);
    }

    #[test]
    fn random_backoffs_stay_within_the_bounds_at_every_attempt() {
        for attempts in 1..=14 {
            let cap = capped(BASE, MAX, attempts);
            for _ in 0..50 {
                let d = backoff(BASE, MAX, attempts);
                assert!(
                    d >= cap / 2 && d <= cap,
                    "attempt {attempts}: {d:?} vs {cap:?}"
                );
            }
        }
    }

    #[test]
    fn the_jitter_actually_varies() {
        let delays: std::collections::HashSet<_> =
            (0..20).map(|_| backoff(BASE, MAX, 10)).collect();
        assert!(delays.len() > 1);
    }
}
