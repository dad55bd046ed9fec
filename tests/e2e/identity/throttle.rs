//! Throttling of password and second-factor guessing, end to end: bursts,
//! delays, the hard cap, restarts, shared counters.

use std::{sync::Arc, time::Duration};

use identity_service::{domain::TotpSecret, service::CounterPolicy};
use recapp_proto::identity::v1 as pb;
use recapp_tests::{
    Backend, IdentityClient, TestIdentity, backend_test,
    identity::{bearer, client_info, reason, totp_code},
};
use tokio::sync::Barrier;
use tonic::{Code, Status};
use tonic_types::StatusExt;

const PASSWORD: &str = "correct horse battery staple";
const WRONG: &str = "wrong horse battery staple";
const IP: &str = "192.0.2.10";
const PARALLEL: usize = 30;

fn policy(free_attempts: u32, base_delay: Duration) -> CounterPolicy {
    CounterPolicy {
        free_attempts,
        base_delay,
        max_delay: base_delay * 16,
        hard_cap: None,
        hard_lock: Duration::ZERO,
        forget_after: None,
    }
}

fn generous() -> CounterPolicy {
    policy(1000, Duration::from_secs(1))
}

/// A service whose password-per-account counter allows `free` attempts,
/// then waits a minute; the other counters stay out of the way.
async fn spawn_with_password_policy(backend: Backend, account: CounterPolicy) -> TestIdentity {
    TestIdentity::spawn_with(backend, |s| {
        s.throttle.password_per_account = account;
        s.throttle.password_per_address = generous();
        s.throttle.otp_per_account = generous();
        s.throttle.otp_per_address = generous();
    })
    .await
}

async fn try_authenticate(
    client: &mut IdentityClient,
    email: &str,
    password: &str,
    ip: &str,
) -> Result<pb::authenticate_response::Result, Status> {
    client
        .authenticate(pb::AuthenticateRequest {
            email: email.into(),
            password: password.into(),
            client_info: Some(client_info(ip)),
        })
        .await
        .map(|r| r.into_inner().result.unwrap())
}

fn assert_status(status: &Status, code: Code, expected_reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(status), expected_reason, "{status:?}");
}

/// The RetryInfo delay of a RATE_LIMITED status.
fn retry_delay(status: &Status) -> Duration {
    assert_status(status, Code::ResourceExhausted, "RATE_LIMITED");
    status
        .get_error_details()
        .retry_info()
        .and_then(|info| info.retry_delay)
        .unwrap_or_else(|| panic!("no RetryInfo: {status:?}"))
}

fn assert_invalid_credentials<T: std::fmt::Debug>(result: Result<T, Status>) {
    let status = result.unwrap_err();
    assert_status(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
}

fn assert_signed_in(result: Result<pb::authenticate_response::Result, Status>) -> pb::Session {
    match result {
        Ok(pb::authenticate_response::Result::Session(s)) => s,
        other => panic!("expected a session, got {other:?}"),
    }
}

async fn event_types(app: &TestIdentity, access_token: &str) -> Vec<pb::SecurityEventType> {
    app.client
        .clone()
        .list_security_events(bearer(
            pb::ListSecurityEventsRequest {
                page_size: 200,
                page_token: String::new(),
            },
            access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .events
        .iter()
        .map(|e| e.r#type())
        .collect()
}

/// A well-formed code that matches no step within one of `now`.
fn wrong_code(secret: &TotpSecret, now: chrono::DateTime<chrono::Utc>) -> String {
    let window: Vec<String> = (-1..=1)
        .map(|steps| totp_code(secret, now + seconds(30 * steps)))
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !window.contains(c))
        .unwrap()
}

fn seconds(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

async fn a_parallel_burst_of_wrong_passwords_checks_at_most_the_free_attempts(backend: Backend) {
    let free = 3;
    let app = spawn_with_password_policy(backend, policy(free, Duration::from_secs(60))).await;
    app.create_account("alice@example.com", PASSWORD).await;

    let barrier = Arc::new(Barrier::new(PARALLEL));
    let mut tasks = Vec::new();
    for _ in 0..PARALLEL {
        let mut client = app.new_client().await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            try_authenticate(&mut client, "alice@example.com", WRONG, IP).await
        }));
    }
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();

    let statuses: Vec<&Status> = results.iter().map(|r| r.as_ref().unwrap_err()).collect();
    let checked = statuses
        .iter()
        .filter(|s| reason(s) == "INVALID_CREDENTIALS")
        .count();
    assert!(
        (1..=free as usize).contains(&checked),
        "{checked} passwords checked: {statuses:?}"
    );
    for status in statuses
        .iter()
        .filter(|s| reason(s) != "INVALID_CREDENTIALS")
    {
        assert!(retry_delay(status) > Duration::ZERO, "{status:?}");
    }
    // The burst left the account locked: the right password waits too.
    let locked = try_authenticate(&mut app.client.clone(), "alice@example.com", PASSWORD, IP)
        .await
        .unwrap_err();
    assert!(retry_delay(&locked) > Duration::ZERO);
}
backend_test!(a_parallel_burst_of_wrong_passwords_checks_at_most_the_free_attempts);

async fn a_locked_account_refuses_the_right_password_until_the_delay_has_passed(backend: Backend) {
    let app = spawn_with_password_policy(backend, policy(3, Duration::from_secs(60))).await;
    app.create_account("alice@example.com", PASSWORD).await;
    let mut client = app.client.clone();
    for _ in 0..3 {
        assert_invalid_credentials(
            try_authenticate(&mut client, "alice@example.com", WRONG, IP).await,
        );
    }

    let locked = try_authenticate(&mut client, "alice@example.com", PASSWORD, IP)
        .await
        .unwrap_err();
    assert_eq!(retry_delay(&locked), Duration::from_secs(60));
    app.clock.advance(seconds(59));
    let still = try_authenticate(&mut client, "alice@example.com", PASSWORD, IP)
        .await
        .unwrap_err();
    assert_eq!(retry_delay(&still), Duration::from_secs(1));

    app.clock.advance(seconds(1));
    assert_signed_in(try_authenticate(&mut client, "alice@example.com", PASSWORD, IP).await);

    // The success cleared the counter: three free attempts again, then a wait.
    for _ in 0..3 {
        assert_invalid_credentials(
            try_authenticate(&mut client, "alice@example.com", WRONG, IP).await,
        );
    }
    let locked = try_authenticate(&mut client, "alice@example.com", PASSWORD, IP)
        .await
        .unwrap_err();
    assert_eq!(retry_delay(&locked), Duration::from_secs(60));
}
backend_test!(a_locked_account_refuses_the_right_password_until_the_delay_has_passed);

async fn the_delay_doubles_with_each_further_failure(backend: Backend) {
    let app = spawn_with_password_policy(backend, policy(2, Duration::from_secs(10))).await;
    app.create_account("alice@example.com", PASSWORD).await;
    let mut client = app.client.clone();
    for _ in 0..2 {
        assert_invalid_credentials(
            try_authenticate(&mut client, "alice@example.com", WRONG, IP).await,
        );
    }

    for expected in [10, 20, 40] {
        let locked = try_authenticate(&mut client, "alice@example.com", WRONG, IP)
            .await
            .unwrap_err();
        assert_eq!(retry_delay(&locked), Duration::from_secs(expected));
        app.clock.advance(seconds(expected as i64));
        assert_invalid_credentials(
            try_authenticate(&mut client, "alice@example.com", WRONG, IP).await,
        );
    }
}
backend_test!(the_delay_doubles_with_each_further_failure);

async fn email_case_variants_share_one_counter(backend: Backend) {
    let app = spawn_with_password_policy(backend, policy(3, Duration::from_secs(60))).await;
    app.create_account("bob@example.com", PASSWORD).await;
    let mut client = app.client.clone();

    for variant in ["Bob@Example.com", "BOB@EXAMPLE.COM", "  bob@EXAMPLE.com "] {
        assert_invalid_credentials(try_authenticate(&mut client, variant, WRONG, IP).await);
    }

    let locked = try_authenticate(&mut client, "bob@example.com", PASSWORD, IP)
        .await
        .unwrap_err();
    assert!(retry_delay(&locked) > Duration::ZERO);
}
backend_test!(email_case_variants_share_one_counter);

async fn a_restart_does_not_reset_the_counter(backend: Backend) {
    let app = spawn_with_password_policy(backend, policy(3, Duration::from_secs(60))).await;
    app.create_account("alice@example.com", PASSWORD).await;
    let mut client = app.client.clone();
    for _ in 0..3 {
        assert_invalid_credentials(
            try_authenticate(&mut client, "alice@example.com", WRONG, IP).await,
        );
    }

    let restarted = app.spawn_replica().await;
    app.stop().await;

    let locked = try_authenticate(
        &mut restarted.client.clone(),
        "alice@example.com",
        PASSWORD,
        IP,
    )
    .await
    .unwrap_err();
    assert_eq!(retry_delay(&locked), Duration::from_secs(60));
    restarted.clock.advance(seconds(60));
    assert_signed_in(
        try_authenticate(
            &mut restarted.client.clone(),
            "alice@example.com",
            PASSWORD,
            IP,
        )
        .await,
    );
}
backend_test!(a_restart_does_not_reset_the_counter);

async fn the_hard_cap_locks_the_account_beyond_the_longest_delay(backend: Backend) {
    let cap = CounterPolicy {
        free_attempts: 3,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(4),
        hard_cap: Some(10),
        hard_lock: Duration::from_secs(3600),
        forget_after: None,
    };
    let app = spawn_with_password_policy(backend, cap).await;
    app.create_account("alice@example.com", PASSWORD).await;
    let mut client = app.client.clone();

    for _ in 0..10 {
        assert_invalid_credentials(
            try_authenticate(&mut client, "alice@example.com", WRONG, IP).await,
        );
        // Past whatever delay this failure imposed (at most max_delay)...
        app.clock.advance(seconds(5));
    }
    // ...except after the tenth: the account is locked for an hour.
    let locked = try_authenticate(&mut client, "alice@example.com", PASSWORD, IP)
        .await
        .unwrap_err();
    let wait = retry_delay(&locked);
    assert!(
        wait > Duration::from_secs(3500) && wait <= Duration::from_secs(3600),
        "{wait:?}"
    );
    app.clock.advance(seconds(30 * 60));
    let still = try_authenticate(&mut client, "alice@example.com", PASSWORD, IP)
        .await
        .unwrap_err();
    assert!(retry_delay(&still) > Duration::from_secs(25 * 60));

    app.clock.advance(seconds(30 * 60));
    let session =
        assert_signed_in(try_authenticate(&mut client, "alice@example.com", PASSWORD, IP).await);
    let events = event_types(&app, &session.access_token).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == pb::SecurityEventType::AccountLocked)
            .count(),
        1,
        "{events:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == pb::SecurityEventType::LoginFailed)
            .count(),
        10,
        "{events:?}"
    );
}
backend_test!(the_hard_cap_locks_the_account_beyond_the_longest_delay);

/// What a caller can see of an attempt.
fn observed(result: Result<pb::authenticate_response::Result, Status>) -> String {
    match result {
        Ok(_) => "signed in".into(),
        Err(status) => {
            let delay = status
                .get_error_details()
                .retry_info()
                .and_then(|i| i.retry_delay);
            format!(
                "{:?} {} {:?} {delay:?}",
                status.code(),
                reason(&status),
                status.message()
            )
        }
    }
}

async fn unknown_emails_are_throttled_exactly_like_known_ones(backend: Backend) {
    let app = spawn_with_password_policy(backend, policy(3, Duration::from_secs(60))).await;
    app.create_account("known@example.com", PASSWORD).await;
    let mut client = app.client.clone();

    let mut sequences = Vec::new();
    for email in ["known@example.com", "unknown@example.com"] {
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(observed(
                try_authenticate(&mut client, email, WRONG, IP).await,
            ));
        }
        app.clock.advance(seconds(60));
        seen.push(observed(
            try_authenticate(&mut client, email, WRONG, IP).await,
        ));
        seen.push(observed(
            try_authenticate(&mut client, email, WRONG, IP).await,
        ));
        sequences.push(seen);
    }

    assert_eq!(sequences[0], sequences[1]);
    let ic = "Unauthenticated INVALID_CREDENTIALS";
    let rl = "ResourceExhausted RATE_LIMITED";
    let kinds: Vec<bool> = sequences[0].iter().map(|s| s.starts_with(ic)).collect();
    assert_eq!(kinds, [true, true, true, false, false, true, false]);
    assert!(sequences[0][3].starts_with(rl), "{:?}", sequences[0]);
}
backend_test!(unknown_emails_are_throttled_exactly_like_known_ones);

async fn a_correct_password_does_not_clear_the_second_factor_counter(backend: Backend) {
    let app = TestIdentity::spawn_with(backend, |s| {
        s.throttle.otp_per_account = policy(2, Duration::from_secs(60));
        s.throttle.otp_per_address = generous();
        s.throttle.password_per_address = generous();
    })
    .await;
    app.create_account("alice@example.com", PASSWORD).await;
    let session = app.sign_in("alice@example.com", PASSWORD).await;
    let (secret, _, _) = app.enroll_totp(&session.access_token).await;
    app.clock.advance(seconds(30));
    let mut client = app.client.clone();
    let challenge = |result: Result<pb::authenticate_response::Result, Status>| match result {
        Ok(pb::authenticate_response::Result::MfaChallenge(c)) => c.challenge_token,
        other => panic!("expected a challenge, got {other:?}"),
    };
    let complete = |token: &str, code: String| pb::CompleteMfaChallengeRequest {
        challenge_token: token.to_owned(),
        code: Some(pb::complete_mfa_challenge_request::Code::TotpCode(code)),
        client_info: Some(client_info(IP)),
    };

    let first = challenge(try_authenticate(&mut client, "alice@example.com", PASSWORD, IP).await);
    let good = totp_code(&secret, app.now());
    let bad = wrong_code(&secret, app.now());
    for _ in 0..2 {
        let status = client
            .complete_mfa_challenge(complete(&first, bad.clone()))
            .await
            .unwrap_err();
        assert_status(&status, Code::Unauthenticated, "TOTP_INVALID");
    }

    let second = challenge(try_authenticate(&mut client, "alice@example.com", PASSWORD, IP).await);
    let refused = client
        .complete_mfa_challenge(complete(&second, good.clone()))
        .await
        .unwrap_err();
    assert_eq!(retry_delay(&refused), Duration::from_secs(60));

    app.clock.advance(seconds(60));
    client
        .complete_mfa_challenge(complete(&second, totp_code(&secret, app.now())))
        .await
        .unwrap();
}
backend_test!(a_correct_password_does_not_clear_the_second_factor_counter);

async fn failures_from_one_address_lock_other_accounts_from_that_address_only(backend: Backend) {
    let app = TestIdentity::spawn_with(backend, |s| {
        s.throttle.password_per_address = CounterPolicy {
            forget_after: Some(Duration::from_secs(3600)),
            ..policy(3, Duration::from_secs(60))
        };
        s.throttle.password_per_account = generous();
    })
    .await;
    let emails = [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ];
    for email in emails {
        app.create_account(email, PASSWORD).await;
    }
    let mut client = app.client.clone();
    let attacker = "198.51.100.7";

    for email in &emails[..3] {
        assert_invalid_credentials(try_authenticate(&mut client, email, WRONG, attacker).await);
    }

    let locked = try_authenticate(&mut client, emails[3], PASSWORD, attacker)
        .await
        .unwrap_err();
    assert_eq!(retry_delay(&locked), Duration::from_secs(60));
    assert_signed_in(try_authenticate(&mut client, emails[3], PASSWORD, "203.0.113.9").await);
    // The accounts themselves are not locked either.
    assert_signed_in(try_authenticate(&mut client, emails[0], PASSWORD, "203.0.113.9").await);
}
backend_test!(failures_from_one_address_lock_other_accounts_from_that_address_only);

async fn a_successful_sign_in_from_an_address_does_not_extend_its_lock(backend: Backend) {
    let app = TestIdentity::spawn_with(backend, |s| {
        s.throttle.password_per_address = CounterPolicy {
            forget_after: Some(Duration::from_secs(3600)),
            ..policy(3, Duration::from_secs(60))
        };
        s.throttle.password_per_account = generous();
    })
    .await;
    let emails = [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
    ];
    for email in emails {
        app.create_account(email, PASSWORD).await;
    }
    let mut client = app.client.clone();
    let shared = "198.51.100.7";
    for email in &emails[..3] {
        assert_invalid_credentials(try_authenticate(&mut client, email, WRONG, shared).await);
    }

    app.clock.advance(seconds(60));
    assert_signed_in(try_authenticate(&mut client, emails[3], PASSWORD, shared).await);

    // That success was not a guess: the next person from the address is not
    // made to wait because of it.
    assert_signed_in(try_authenticate(&mut client, emails[0], PASSWORD, shared).await);
}
backend_test!(a_successful_sign_in_from_an_address_does_not_extend_its_lock);

async fn a_second_factor_success_from_an_address_does_not_extend_its_lock(backend: Backend) {
    let app = TestIdentity::spawn_with(backend, |s| {
        s.throttle.otp_per_address = CounterPolicy {
            forget_after: Some(Duration::from_secs(3600)),
            ..policy(2, Duration::from_secs(60))
        };
        s.throttle.otp_per_account = generous();
        s.throttle.password_per_address = generous();
    })
    .await;
    let mut secrets = Vec::new();
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        app.create_account(email, PASSWORD).await;
        let session = app.sign_in(email, PASSWORD).await;
        secrets.push(app.enroll_totp(&session.access_token).await.0);
    }
    app.clock.advance(seconds(30));
    let mut client = app.client.clone();
    let shared = "198.51.100.7";
    let challenge = async |email: &str| match try_authenticate(
        &mut app.client.clone(),
        email,
        PASSWORD,
        shared,
    )
    .await
    {
        Ok(pb::authenticate_response::Result::MfaChallenge(c)) => c.challenge_token,
        other => panic!("expected a challenge, got {other:?}"),
    };
    let request = |token: &str, code: String| pb::CompleteMfaChallengeRequest {
        challenge_token: token.to_owned(),
        code: Some(pb::complete_mfa_challenge_request::Code::TotpCode(code)),
        client_info: Some(client_info(shared)),
    };

    let a = challenge("a@example.com").await;
    for _ in 0..2 {
        let wrong = client
            .complete_mfa_challenge(request(&a, wrong_code(&secrets[0], app.now())))
            .await
            .unwrap_err();
        assert_status(&wrong, Code::Unauthenticated, "TOTP_INVALID");
    }
    let b = challenge("b@example.com").await;
    let locked = client
        .complete_mfa_challenge(request(&b, totp_code(&secrets[1], app.now())))
        .await
        .unwrap_err();
    assert_eq!(retry_delay(&locked), Duration::from_secs(60));

    app.clock.advance(seconds(60));
    client
        .complete_mfa_challenge(request(&b, totp_code(&secrets[1], app.now())))
        .await
        .unwrap();
    let c = challenge("c@example.com").await;
    client
        .complete_mfa_challenge(request(&c, totp_code(&secrets[2], app.now())))
        .await
        .unwrap();
}
backend_test!(a_second_factor_success_from_an_address_does_not_extend_its_lock);
