//! Throttling of guessing, in the database so it holds across replicas and
//! restarts.
//!
//! An attempt is *reserved* before the secret is checked: the counter is
//! incremented and the delay for the next attempt set in one
//! compare-and-swap, so a failure is on record even if the check never ends,
//! and a parallel burst cannot slip more attempts through than the policy
//! allows. A success then clears the account's counter (or, for a client
//! address, takes its own reservation back).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use sha2::{Digest, Sha256};

use crate::{
    error::{IdentityError, Result},
    store::{self, throttle_counter as counter},
};

/// How one kind of counter slows guessing down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterPolicy {
    /// Consecutive failures allowed back to back.
    pub free_attempts: u32,
    /// The delay after the first failure beyond the free ones; it doubles
    /// with each further failure.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// After this many consecutive failures the key is locked for
    /// `hard_lock`, and every further failure locks it again (NIST 800-63B
    /// asks for at most 100).
    pub hard_cap: Option<u32>,
    pub hard_lock: Duration,
    /// Failures older than this are forgotten (for client addresses, which
    /// are shared by many people and never "succeed" as a whole).
    pub forget_after: Option<Duration>,
}

/// The four counters: password and second-factor failures, each per account
/// and per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub password_per_account: CounterPolicy,
    pub password_per_address: CounterPolicy,
    pub otp_per_account: CounterPolicy,
    pub otp_per_address: CounterPolicy,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        let account = CounterPolicy {
            free_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            hard_cap: Some(100),
            hard_lock: Duration::from_secs(24 * 3600),
            forget_after: None,
        };
        let address = CounterPolicy {
            free_attempts: 50,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(5 * 60),
            hard_cap: None,
            hard_lock: Duration::ZERO,
            forget_after: Some(Duration::from_secs(3600)),
        };
        Self {
            password_per_account: account,
            password_per_address: address,
            otp_per_account: account,
            otp_per_address: address,
        }
    }
}

impl CounterPolicy {
    /// The wait imposed after `failures` consecutive failures.
    pub fn delay_after(&self, failures: u32) -> Duration {
        if self.hard_cap.is_some_and(|cap| failures >= cap) {
            return self.hard_lock;
        }
        if failures < self.free_attempts {
            return Duration::ZERO;
        }
        let doublings = std::cmp::min(failures - self.free_attempts, 30);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

/// Which secret is being guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guess {
    Password,
    SecondFactor,
}

/// A counter key. Password counters are keyed by the normalized email, so an
/// unknown address is throttled exactly like a known one and case variants
/// share one counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKey(String);

impl CounterKey {
    pub fn for_email(guess: Guess, normalized_email: &str) -> Self {
        let digest = hex::encode(Sha256::digest(normalized_email.as_bytes()));
        Self(format!("{}:email:{digest}", prefix(guess)))
    }

    pub fn for_account(guess: Guess, account_id: uuid::Uuid) -> Self {
        Self(format!("{}:account:{account_id}", prefix(guess)))
    }

    pub fn for_address(guess: Guess, address: &str) -> Option<Self> {
        let address = address.trim();
        if address.is_empty() {
            return None;
        }
        let address: String = address.chars().take(64).collect();
        Some(Self(format!("{}:ip:{address}", prefix(guess))))
    }
}

fn prefix(guess: Guess) -> &'static str {
    match guess {
        Guess::Password => "pwd",
        Guess::SecondFactor => "otp",
    }
}

/// What a reservation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// Consecutive failures counting this attempt.
    pub failures: u32,
    /// True when this attempt reached the hard cap.
    pub reached_cap: bool,
    /// The counter as it was before, for [`release`].
    before: Before,
}

/// A counter's state before a reservation, and the version the reservation
/// wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Before {
    version: i64,
    failures: i32,
    next_allowed_at: Option<i64>,
    last_failure_at: Option<i64>,
}

const CAS_ROUNDS: usize = 32;

/// Reserves one attempt on `key`, or refuses with `RateLimited` while the key
/// waits out a delay or a lock.
pub async fn reserve(
    db: &impl ConnectionTrait,
    key: &CounterKey,
    policy: &CounterPolicy,
    now: DateTime<Utc>,
) -> Result<Reserved> {
    let now_ms = store::ms(now);
    for _ in 0..CAS_ROUNDS {
        let row = match counter::Entity::find_by_id(key.0.clone()).one(db).await? {
            Some(row) => row,
            None => {
                counter::Entity::insert(counter::ActiveModel {
                    key: Set(key.0.clone()),
                    failures: Set(0),
                    version: Set(0),
                    next_allowed_at: Set(None),
                    last_failure_at: Set(None),
                    created_at: Set(now_ms),
                    updated_at: Set(now_ms),
                })
                .on_conflict(
                    OnConflict::column(counter::Column::Key)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(db)
                .await?;
                continue;
            }
        };
        let mut failures = u32::try_from(row.failures).unwrap_or(0);
        let mut next_allowed = row.next_allowed_at;
        if let (Some(forget), Some(last)) = (policy.forget_after, row.last_failure_at)
            && now_ms - last >= forget.as_millis() as i64
        {
            failures = 0;
            next_allowed = None;
        }
        if let Some(until) = next_allowed.filter(|until| *until > now_ms) {
            let wait = Duration::from_millis((until - now_ms) as u64);
            return Err(IdentityError::RateLimited {
                retry_after: round_up_to_second(wait),
            });
        }
        let failures = failures.saturating_add(1);
        let delay = policy.delay_after(failures);
        let next = (!delay.is_zero()).then(|| now_ms + delay.as_millis() as i64);
        let swapped = counter::Entity::update_many()
            .col_expr(counter::Column::Failures, Expr::value(failures as i32))
            .col_expr(counter::Column::Version, Expr::value(row.version + 1))
            .col_expr(counter::Column::NextAllowedAt, Expr::value(next))
            .col_expr(counter::Column::LastFailureAt, Expr::value(Some(now_ms)))
            .col_expr(counter::Column::UpdatedAt, Expr::value(now_ms))
            .filter(counter::Column::Key.eq(key.0.clone()))
            .filter(counter::Column::Version.eq(row.version))
            .exec(db)
            .await?;
        if swapped.rows_affected == 1 {
            return Ok(Reserved {
                failures,
                reached_cap: policy.hard_cap.is_some_and(|cap| failures == cap),
                before: Before {
                    version: row.version + 1,
                    failures: (failures - 1) as i32,
                    next_allowed_at: next_allowed,
                    last_failure_at: row.last_failure_at,
                },
            });
        }
    }
    // Heavy contention on one key is itself a burst of guesses.
    Err(IdentityError::RateLimited {
        retry_after: Duration::from_secs(1),
    })
}

/// After a success: the account's consecutive failures are over.
pub async fn clear(db: &impl ConnectionTrait, key: &CounterKey, now: DateTime<Utc>) -> Result<()> {
    counter::Entity::update_many()
        .col_expr(counter::Column::Failures, Expr::value(0))
        .col_expr(
            counter::Column::Version,
            Expr::col(counter::Column::Version).add(1),
        )
        .col_expr(
            counter::Column::NextAllowedAt,
            Expr::value(Option::<i64>::None),
        )
        .col_expr(counter::Column::UpdatedAt, Expr::value(store::ms(now)))
        .filter(counter::Column::Key.eq(key.0.clone()))
        .exec(db)
        .await?;
    Ok(())
}

/// After a success from a shared address: take this attempt's reservation
/// back without forgiving anyone else's failures. When no one has reserved
/// since, the counter returns to its state before the attempt (so the delay
/// the reservation imposed goes too); otherwise only the count is reduced.
pub async fn release(
    db: &impl ConnectionTrait,
    key: &CounterKey,
    reserved: &Reserved,
    now: DateTime<Utc>,
) -> Result<()> {
    let before = reserved.before;
    let restored = counter::Entity::update_many()
        .col_expr(counter::Column::Failures, Expr::value(before.failures))
        .col_expr(counter::Column::Version, Expr::value(before.version + 1))
        .col_expr(
            counter::Column::NextAllowedAt,
            Expr::value(before.next_allowed_at),
        )
        .col_expr(
            counter::Column::LastFailureAt,
            Expr::value(before.last_failure_at),
        )
        .col_expr(counter::Column::UpdatedAt, Expr::value(store::ms(now)))
        .filter(counter::Column::Key.eq(key.0.clone()))
        .filter(counter::Column::Version.eq(before.version))
        .exec(db)
        .await?;
    if restored.rows_affected == 1 {
        return Ok(());
    }
    counter::Entity::update_many()
        .col_expr(
            counter::Column::Failures,
            Expr::col(counter::Column::Failures).sub(1),
        )
        .col_expr(
            counter::Column::Version,
            Expr::col(counter::Column::Version).add(1),
        )
        .col_expr(counter::Column::UpdatedAt, Expr::value(store::ms(now)))
        .filter(counter::Column::Key.eq(key.0.clone()))
        .filter(counter::Column::Failures.gt(0))
        .exec(db)
        .await?;
    Ok(())
}

fn round_up_to_second(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_the_free_attempts_and_double() {
        let p = ThrottlePolicy::default().password_per_account;
        assert_eq!(p.delay_after(4), Duration::ZERO);
        assert_eq!(p.delay_after(5), Duration::from_secs(1));
        assert_eq!(p.delay_after(6), Duration::from_secs(2));
        assert_eq!(p.delay_after(10), Duration::from_secs(32));
        assert_eq!(p.delay_after(60), Duration::from_secs(15 * 60));
    }

    #[test]
    fn the_hundredth_failure_locks_the_account() {
        let p = ThrottlePolicy::default().password_per_account;
        assert_eq!(p.delay_after(99), Duration::from_secs(15 * 60));
        assert_eq!(p.delay_after(100), Duration::from_secs(24 * 3600));
        assert_eq!(p.delay_after(150), Duration::from_secs(24 * 3600));
    }

    #[test]
    fn email_keys_do_not_reveal_the_address() {
        let a = CounterKey::for_email(Guess::Password, "a@example.com");
        assert!(!a.0.contains("example"));
        assert_ne!(
            a,
            CounterKey::for_email(Guess::SecondFactor, "a@example.com")
        );
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(
            round_up_to_second(Duration::from_millis(1500)),
            Duration::from_secs(2)
        );
        assert_eq!(
            round_up_to_second(Duration::from_millis(1)),
            Duration::from_secs(1)
        );
    }
}
