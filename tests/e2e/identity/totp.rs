//! TOTP enrollment, signing in with a second factor, replay protection,
//! recovery codes and removal, end to end.

use std::{sync::Arc, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use identity_service::{domain::TotpSecret, service::CounterPolicy, store::totp_credential};
use recapp_access_token::{AuthMethod, Claims, KeySet, PublicKey};
use recapp_proto::identity::v1 as pb;
use recapp_tests::{
    Backend, IdentityClient, TestIdentity, backend_test,
    identity::{bearer, client_info, reason, secret_from_base32, totp_code},
};
use sea_orm::{Database, EntityTrait};
use tokio::sync::Barrier;
use tonic::{Code, Status};

use pb::complete_mfa_challenge_request::Code as MfaCode;

const PASSWORD: &str = "correct horse battery staple";
const STEP: chrono::Duration = chrono::Duration::seconds(30);
const PARALLEL: usize = 30;

/// An account with TOTP enrolled; the clock has moved one step past the
/// enrollment, so the current code is fresh.
struct Enrolled {
    account: pb::Account,
    email: String,
    secret: TotpSecret,
    recovery_codes: Vec<String>,
    access_token: String,
}

async fn enrolled(app: &TestIdentity, email: &str) -> Enrolled {
    let account = app.create_account(email, PASSWORD).await;
    let session = app.sign_in(email, PASSWORD).await;
    let (secret, recovery_codes, access_token) = app.enroll_totp(&session.access_token).await;
    app.clock.advance(STEP);
    Enrolled {
        account,
        email: email.to_owned(),
        secret,
        recovery_codes,
        access_token,
    }
}

fn assert_status(status: &Status, code: Code, expected_reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(status), expected_reason, "{status:?}");
}

/// A well-formed code that matches no step within two of `now`.
fn wrong_code(secret: &TotpSecret, now: DateTime<Utc>) -> String {
    let taken: Vec<String> = (-2..=2)
        .map(|steps| totp_code(secret, now + STEP * steps))
        .collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap()
}

async fn challenge(app: &TestIdentity, email: &str) -> pb::MfaChallenge {
    match app.authenticate(email, PASSWORD).await {
        pb::authenticate_response::Result::MfaChallenge(c) => c,
        other => panic!("expected an MFA challenge, got {other:?}"),
    }
}

async fn complete(
    client: &mut IdentityClient,
    challenge_token: &str,
    code: MfaCode,
) -> Result<pb::Session, Status> {
    client
        .complete_mfa_challenge(pb::CompleteMfaChallengeRequest {
            challenge_token: challenge_token.to_owned(),
            code: Some(code),
            client_info: Some(client_info("192.0.2.10")),
        })
        .await
        .map(|r| r.into_inner().session.unwrap())
}

async fn get_account(app: &TestIdentity, id: &str) -> pb::Account {
    app.client
        .clone()
        .get_account(pb::GetAccountRequest {
            account_id: id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap()
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

/// Verifies an access token with the published keys.
async fn verified_claims(app: &TestIdentity, access_token: &str) -> Claims {
    let keys = app
        .client
        .clone()
        .get_signing_keys(pb::GetSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    let keys = KeySet::new(keys.into_iter().map(|k| PublicKey {
        key_id: k.key_id,
        bytes: k.public_key.as_slice().try_into().unwrap(),
    }))
    .unwrap();
    recapp_access_token::verify(access_token, &keys, app.now().timestamp()).unwrap()
}

/// The JWT payload as sent, without verifying it.
fn raw_claims(access_token: &str) -> serde_json::Value {
    let payload = access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn generous() -> CounterPolicy {
    CounterPolicy {
        free_attempts: 1000,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(1),
        hard_cap: None,
        hard_lock: Duration::ZERO,
        forget_after: None,
    }
}

async fn spawn_with_generous_otp_throttle(backend: Backend) -> TestIdentity {
    TestIdentity::spawn_with(backend, |s| {
        s.throttle.otp_per_account = generous();
        s.throttle.otp_per_address = generous();
    })
    .await
}

// --- Enrollment -----------------------------------------------------------

async fn enrollment_activates_totp_only_after_a_correct_code_is_confirmed(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let account = app.create_account("alice@example.com", PASSWORD).await;
    let session = app.sign_in("alice@example.com", PASSWORD).await;
    let token = session.access_token.clone();
    let mut client = app.client.clone();

    let begun = client
        .begin_totp_enrollment(bearer(pb::BeginTotpEnrollmentRequest {}, &token))
        .await
        .unwrap()
        .into_inner();

    // The secret: 160 bits in unpadded base32.
    assert_eq!(begun.secret_base32.len(), 32, "{}", begun.secret_base32);
    assert!(
        begun
            .secret_base32
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "{}",
        begun.secret_base32
    );
    let secret = secret_from_base32(&begun.secret_base32);
    assert_eq!(secret.as_bytes().len(), 20);
    // The URI names issuer and account and carries the same secret.
    let issuer = app.settings.totp_issuer.replace(' ', "%20");
    assert!(
        begun
            .otpauth_uri
            .starts_with(&format!("otpauth://totp/{issuer}:alice%40example.com?")),
        "{}",
        begun.otpauth_uri
    );
    assert!(
        begun.otpauth_uri.contains(&format!("issuer={issuer}")),
        "{}",
        begun.otpauth_uri
    );
    assert!(
        begun
            .otpauth_uri
            .contains(&format!("secret={}", begun.secret_base32)),
        "{}",
        begun.otpauth_uri
    );
    assert!(begun.qr_code_svg.contains("<svg"), "{}", begun.qr_code_svg);
    assert!(begun.qr_code_svg.contains("</svg>"));
    let expire = begun.expire_time.unwrap();
    let ttl = chrono::Duration::from_std(app.settings.totp_enrollment_ttl).unwrap();
    assert_eq!(expire.seconds, (app.now() + ttl).timestamp());

    // Pending is not enrolled: the account still signs in with a password.
    assert!(!get_account(&app, &account.id).await.totp_enrolled);
    assert!(matches!(
        app.authenticate("alice@example.com", PASSWORD).await,
        pb::authenticate_response::Result::Session(_)
    ));

    let wrong = client
        .confirm_totp_enrollment(bearer(
            pb::ConfirmTotpEnrollmentRequest {
                totp_code: wrong_code(&secret, app.now()),
                client_info: None,
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_status(&wrong, Code::InvalidArgument, "TOTP_INVALID");
    assert!(!get_account(&app, &account.id).await.totp_enrolled);

    let confirmed = client
        .confirm_totp_enrollment(bearer(
            pb::ConfirmTotpEnrollmentRequest {
                totp_code: totp_code(&secret, app.now()),
                client_info: None,
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(confirmed.recovery_codes.len(), 10);
    let mut distinct = confirmed.recovery_codes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10, "{:?}", confirmed.recovery_codes);
    let claims = verified_claims(&app, &confirmed.access_token).await;
    assert_eq!(claims.amr, vec![AuthMethod::Pwd, AuthMethod::Otp]);
    assert!(claims.totp);
    assert_eq!(claims.sid.to_string(), session.session_id);
    assert_eq!(claims.sub.to_string(), account.id);
    let raw = raw_claims(&confirmed.access_token);
    assert_eq!(raw["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(raw["totp"], serde_json::json!(true));
    assert!(get_account(&app, &account.id).await.totp_enrolled);
    assert!(
        event_types(&app, &confirmed.access_token)
            .await
            .contains(&pb::SecurityEventType::TotpEnrolled)
    );
}
backend_test!(enrollment_activates_totp_only_after_a_correct_code_is_confirmed);

async fn enrollment_cannot_begin_or_confirm_again_once_totp_is_enrolled(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut client = app.client.clone();

    let begin = client
        .begin_totp_enrollment(bearer(
            pb::BeginTotpEnrollmentRequest {},
            &alice.access_token,
        ))
        .await
        .unwrap_err();
    assert_status(&begin, Code::FailedPrecondition, "TOTP_ALREADY_ENROLLED");

    let confirm = client
        .confirm_totp_enrollment(bearer(
            pb::ConfirmTotpEnrollmentRequest {
                totp_code: totp_code(&alice.secret, app.now()),
                client_info: None,
            },
            &alice.access_token,
        ))
        .await
        .unwrap_err();
    assert_status(&confirm, Code::FailedPrecondition, "TOTP_ALREADY_ENROLLED");

    // The enrolled secret was not replaced: its current code still signs in.
    let c = challenge(&app, &alice.email).await;
    complete(
        &mut client,
        &c.challenge_token,
        MfaCode::TotpCode(totp_code(&alice.secret, app.now())),
    )
    .await
    .unwrap();
}
backend_test!(enrollment_cannot_begin_or_confirm_again_once_totp_is_enrolled);

async fn confirming_without_beginning_enrollment_is_refused(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    app.create_account("alice@example.com", PASSWORD).await;
    let session = app.sign_in("alice@example.com", PASSWORD).await;

    let status = app
        .client
        .clone()
        .confirm_totp_enrollment(bearer(
            pb::ConfirmTotpEnrollmentRequest {
                totp_code: "123456".into(),
                client_info: None,
            },
            &session.access_token,
        ))
        .await
        .unwrap_err();

    assert_status(
        &status,
        Code::FailedPrecondition,
        "TOTP_ENROLLMENT_NOT_STARTED",
    );
}
backend_test!(confirming_without_beginning_enrollment_is_refused);

async fn a_pending_enrollment_expires_and_can_be_begun_again(backend: Backend) {
    let app = TestIdentity::spawn_with(backend, |s| {
        s.totp_enrollment_ttl = Duration::from_secs(120);
    })
    .await;
    let account = app.create_account("alice@example.com", PASSWORD).await;
    let session = app.sign_in("alice@example.com", PASSWORD).await;
    let mut client = app.client.clone();
    let begun = client
        .begin_totp_enrollment(bearer(
            pb::BeginTotpEnrollmentRequest {},
            &session.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let secret = secret_from_base32(&begun.secret_base32);

    app.clock.advance(chrono::Duration::seconds(121));
    let expired = client
        .confirm_totp_enrollment(bearer(
            pb::ConfirmTotpEnrollmentRequest {
                totp_code: totp_code(&secret, app.now()),
                client_info: None,
            },
            &session.access_token,
        ))
        .await
        .unwrap_err();
    assert_status(
        &expired,
        Code::FailedPrecondition,
        "TOTP_ENROLLMENT_NOT_STARTED",
    );
    assert!(!get_account(&app, &account.id).await.totp_enrolled);

    // A new set-up gets a new secret, and the old one is gone.
    let again = client
        .begin_totp_enrollment(bearer(
            pb::BeginTotpEnrollmentRequest {},
            &session.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(again.secret_base32, begun.secret_base32);
    let new_secret = secret_from_base32(&again.secret_base32);
    let old = client
        .confirm_totp_enrollment(bearer(
            pb::ConfirmTotpEnrollmentRequest {
                totp_code: totp_code(&secret, app.now()),
                client_info: None,
            },
            &session.access_token,
        ))
        .await
        .unwrap_err();
    assert_status(&old, Code::InvalidArgument, "TOTP_INVALID");
    client
        .confirm_totp_enrollment(bearer(
            pb::ConfirmTotpEnrollmentRequest {
                totp_code: totp_code(&new_secret, app.now()),
                client_info: None,
            },
            &session.access_token,
        ))
        .await
        .unwrap();
    assert!(get_account(&app, &account.id).await.totp_enrolled);
}
backend_test!(a_pending_enrollment_expires_and_can_be_begun_again);

async fn the_totp_secret_is_stored_encrypted(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;

    let db = Database::connect(&app.database.url).await.unwrap();
    let row = totp_credential::Entity::find_by_id(alice.account.id.parse::<uuid::Uuid>().unwrap())
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    db.close().await.unwrap();

    let secret = alice.secret.as_bytes();
    assert_eq!(secret.len(), 20);
    // AES-256-GCM: the 20-byte secret plus a 16-byte tag.
    assert_eq!(row.secret_ciphertext.len(), 20 + 16);
    assert!(
        !row.secret_ciphertext
            .windows(secret.len())
            .any(|w| w == secret),
        "the raw secret is in the ciphertext"
    );
    assert_ne!(&row.secret_ciphertext[..20], secret);
    let base32 = alice.secret.to_base32();
    assert!(
        !row.secret_ciphertext
            .windows(base32.len())
            .any(|w| w == base32.as_bytes())
    );
    assert_eq!(row.nonce.len(), 12);
}
backend_test!(the_totp_secret_is_stored_encrypted);

// --- Signing in with TOTP ------------------------------------------------

async fn signing_in_with_totp_needs_the_current_code_and_records_both_factors(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;

    let c = challenge(&app, &alice.email).await;
    assert_eq!(c.challenge_token.len(), 43);
    let ttl = chrono::Duration::from_std(app.settings.mfa_challenge_ttl).unwrap();
    assert_eq!(
        c.expire_time.unwrap().seconds,
        (app.now() + ttl).timestamp()
    );
    assert!(c.methods.contains(&(pb::MfaMethod::Totp as i32)));
    assert!(c.methods.contains(&(pb::MfaMethod::RecoveryCode as i32)));

    let session = complete(
        &mut app.client.clone(),
        &c.challenge_token,
        MfaCode::TotpCode(totp_code(&alice.secret, app.now())),
    )
    .await
    .unwrap();

    assert_eq!(
        session.authentication_methods,
        vec![
            pb::AuthenticationMethod::Password as i32,
            pb::AuthenticationMethod::Otp as i32
        ]
    );
    let account = session.account.clone().unwrap();
    assert_eq!(account.id, alice.account.id);
    assert!(account.totp_enrolled);
    let claims = verified_claims(&app, &session.access_token).await;
    assert_eq!(claims.amr, vec![AuthMethod::Pwd, AuthMethod::Otp]);
    assert!(claims.totp);
    assert_eq!(claims.sid.to_string(), session.session_id);
    assert_eq!(
        raw_claims(&session.access_token)["amr"],
        serde_json::json!(["pwd", "otp"])
    );
}
backend_test!(signing_in_with_totp_needs_the_current_code_and_records_both_factors);

async fn a_replayed_code_is_refused_like_a_wrong_code_and_recorded(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut client = app.client.clone();
    let code = totp_code(&alice.secret, app.now());

    let first = challenge(&app, &alice.email).await;
    let session = complete(
        &mut client,
        &first.challenge_token,
        MfaCode::TotpCode(code.clone()),
    )
    .await
    .unwrap();

    // Same clock step, a new challenge, the same code.
    let second = challenge(&app, &alice.email).await;
    let replayed = complete(
        &mut client,
        &second.challenge_token,
        MfaCode::TotpCode(code.clone()),
    )
    .await
    .unwrap_err();
    let wrong = complete(
        &mut client,
        &second.challenge_token,
        MfaCode::TotpCode(wrong_code(&alice.secret, app.now())),
    )
    .await
    .unwrap_err();

    assert_status(&replayed, Code::Unauthenticated, "TOTP_INVALID");
    assert_eq!(replayed.code(), wrong.code());
    assert_eq!(reason(&replayed), reason(&wrong));
    assert_eq!(replayed.message(), wrong.message());
    let events = event_types(&app, &session.access_token).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == pb::SecurityEventType::TotpCodeReplayed)
            .count(),
        1,
        "{events:?}"
    );
}
backend_test!(a_replayed_code_is_refused_like_a_wrong_code_and_recorded);

async fn codes_one_step_either_side_are_accepted_and_two_steps_away_refused(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    // Well past the step used at enrollment.
    app.clock.advance(STEP * 5);
    let now = app.now();
    let mut client = app.client.clone();

    let c = challenge(&app, &alice.email).await;
    for steps in [-2, 2] {
        let status = complete(
            &mut client,
            &c.challenge_token,
            MfaCode::TotpCode(totp_code(&alice.secret, now + STEP * steps)),
        )
        .await
        .unwrap_err();
        assert_status(&status, Code::Unauthenticated, "TOTP_INVALID");
    }
    // The previous step first: a used step blocks itself and earlier ones.
    complete(
        &mut client,
        &c.challenge_token,
        MfaCode::TotpCode(totp_code(&alice.secret, now - STEP)),
    )
    .await
    .unwrap();
    let c = challenge(&app, &alice.email).await;
    complete(
        &mut client,
        &c.challenge_token,
        MfaCode::TotpCode(totp_code(&alice.secret, now + STEP)),
    )
    .await
    .unwrap();

    // The current step is earlier than the used next one: refused.
    let c = challenge(&app, &alice.email).await;
    let status = complete(
        &mut client,
        &c.challenge_token,
        MfaCode::TotpCode(totp_code(&alice.secret, now)),
    )
    .await
    .unwrap_err();
    assert_status(&status, Code::Unauthenticated, "TOTP_INVALID");
}
backend_test!(codes_one_step_either_side_are_accepted_and_two_steps_away_refused);

async fn an_unknown_challenge_token_is_refused(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut client = app.client.clone();
    let code = totp_code(&alice.secret, app.now());

    for token in ["garbage", "", &"A".repeat(43)] {
        let status = complete(&mut client, token, MfaCode::TotpCode(code.clone()))
            .await
            .unwrap_err();
        assert_status(&status, Code::Unauthenticated, "CHALLENGE_INVALID");
    }
    // Nothing was spent: the code still completes a real challenge.
    let c = challenge(&app, &alice.email).await;
    complete(&mut client, &c.challenge_token, MfaCode::TotpCode(code))
        .await
        .unwrap();
}
backend_test!(an_unknown_challenge_token_is_refused);

async fn a_challenge_is_refused_from_its_expire_time_on(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut client = app.client.clone();
    let late = challenge(&app, &alice.email).await;
    let in_time = challenge(&app, &alice.email).await;
    let ttl = chrono::Duration::from_std(app.settings.mfa_challenge_ttl).unwrap();

    app.clock.advance(ttl - chrono::Duration::seconds(1));
    complete(
        &mut client,
        &in_time.challenge_token,
        MfaCode::TotpCode(totp_code(&alice.secret, app.now())),
    )
    .await
    .unwrap();
    app.clock.advance(chrono::Duration::seconds(1));
    let status = complete(
        &mut client,
        &late.challenge_token,
        MfaCode::TotpCode(totp_code(&alice.secret, app.now() + STEP)),
    )
    .await
    .unwrap_err();

    assert_status(&status, Code::Unauthenticated, "CHALLENGE_EXPIRED");
}
backend_test!(a_challenge_is_refused_from_its_expire_time_on);

async fn a_challenge_refuses_the_right_code_after_its_attempts_are_used_up(backend: Backend) {
    let app = spawn_with_generous_otp_throttle(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut client = app.client.clone();
    let c = challenge(&app, &alice.email).await;

    for _ in 0..app.settings.mfa_challenge_max_attempts {
        let status = complete(
            &mut client,
            &c.challenge_token,
            MfaCode::TotpCode(wrong_code(&alice.secret, app.now())),
        )
        .await
        .unwrap_err();
        assert_status(&status, Code::Unauthenticated, "TOTP_INVALID");
    }
    let code = totp_code(&alice.secret, app.now());
    let status = complete(
        &mut client,
        &c.challenge_token,
        MfaCode::TotpCode(code.clone()),
    )
    .await
    .unwrap_err();
    assert_status(&status, Code::Unauthenticated, "CHALLENGE_EXPIRED");

    // The code was not spent: signing in again with it works.
    let c = challenge(&app, &alice.email).await;
    complete(&mut client, &c.challenge_token, MfaCode::TotpCode(code))
        .await
        .unwrap();
}
backend_test!(a_challenge_refuses_the_right_code_after_its_attempts_are_used_up);

async fn a_completed_challenge_cannot_be_used_again(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut client = app.client.clone();
    let c = challenge(&app, &alice.email).await;
    complete(
        &mut client,
        &c.challenge_token,
        MfaCode::TotpCode(totp_code(&alice.secret, app.now())),
    )
    .await
    .unwrap();

    app.clock.advance(STEP);
    let again = complete(
        &mut client,
        &c.challenge_token,
        MfaCode::TotpCode(totp_code(&alice.secret, app.now())),
    )
    .await
    .unwrap_err();
    assert_status(&again, Code::Unauthenticated, "CHALLENGE_INVALID");
    let with_recovery = complete(
        &mut client,
        &c.challenge_token,
        MfaCode::RecoveryCode(alice.recovery_codes[0].clone()),
    )
    .await
    .unwrap_err();
    assert_status(&with_recovery, Code::Unauthenticated, "CHALLENGE_INVALID");
}
backend_test!(a_completed_challenge_cannot_be_used_again);

/// Submits `code` to every challenge at once, each from its own connection.
async fn submit_all_at_once(
    app: &TestIdentity,
    challenges: Vec<String>,
    code: MfaCode,
) -> Vec<Result<pb::Session, Status>> {
    let barrier = Arc::new(Barrier::new(challenges.len()));
    let mut tasks = Vec::new();
    for token in challenges {
        let mut client = app.new_client().await;
        let barrier = barrier.clone();
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            complete(&mut client, &token, code).await
        }));
    }
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

async fn thirty_parallel_submissions_of_one_code_sign_in_exactly_once(backend: Backend) {
    let app = spawn_with_generous_otp_throttle(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut challenges = Vec::new();
    for _ in 0..PARALLEL {
        challenges.push(challenge(&app, &alice.email).await.challenge_token);
    }

    let code = totp_code(&alice.secret, app.now());
    let results = submit_all_at_once(&app, challenges, MfaCode::TotpCode(code)).await;

    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    for status in results.iter().filter_map(|r| r.as_ref().err()) {
        let why = reason(status);
        assert!(
            why == "TOTP_INVALID" || why == "RATE_LIMITED",
            "unexpected error: {status:?}"
        );
    }
}
backend_test!(thirty_parallel_submissions_of_one_code_sign_in_exactly_once);

// --- Recovery codes -------------------------------------------------------

async fn a_recovery_code_completes_a_challenge_only_once(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut client = app.client.clone();
    let code = alice.recovery_codes[0].clone();

    let c = challenge(&app, &alice.email).await;
    let session = complete(
        &mut client,
        &c.challenge_token,
        MfaCode::RecoveryCode(code.clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        session.authentication_methods,
        vec![
            pb::AuthenticationMethod::Password as i32,
            pb::AuthenticationMethod::Otp as i32
        ]
    );

    let c = challenge(&app, &alice.email).await;
    let reused = complete(&mut client, &c.challenge_token, MfaCode::RecoveryCode(code))
        .await
        .unwrap_err();
    assert_status(&reused, Code::Unauthenticated, "RECOVERY_CODE_INVALID");
    // Another code of the set still works.
    complete(
        &mut client,
        &c.challenge_token,
        MfaCode::RecoveryCode(alice.recovery_codes[1].clone()),
    )
    .await
    .unwrap();
    let events = event_types(&app, &session.access_token).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == pb::SecurityEventType::RecoveryCodeUsed)
            .count(),
        2,
        "{events:?}"
    );
}
backend_test!(a_recovery_code_completes_a_challenge_only_once);

async fn a_recovery_code_is_accepted_in_any_case_and_with_spaces_or_without_hyphens(
    backend: Backend,
) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut client = app.client.clone();
    assert!(
        alice
            .recovery_codes
            .iter()
            .all(|c| c.len() == 19 && c.matches('-').count() == 3),
        "{:?}",
        alice.recovery_codes
    );

    let variants = [
        alice.recovery_codes[0].to_uppercase(),
        alice.recovery_codes[1].replace('-', ""),
        format!(" {} ", alice.recovery_codes[2].replace('-', " ")),
        alice.recovery_codes[3].replace('-', "").to_uppercase(),
    ];
    for variant in variants {
        let c = challenge(&app, &alice.email).await;
        complete(
            &mut client,
            &c.challenge_token,
            MfaCode::RecoveryCode(variant.clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{variant:?}: {e:?}"));
    }
    // A variant spelling is the same code: spent.
    let c = challenge(&app, &alice.email).await;
    let reused = complete(
        &mut client,
        &c.challenge_token,
        MfaCode::RecoveryCode(alice.recovery_codes[0].clone()),
    )
    .await
    .unwrap_err();
    assert_status(&reused, Code::Unauthenticated, "RECOVERY_CODE_INVALID");
}
backend_test!(a_recovery_code_is_accepted_in_any_case_and_with_spaces_or_without_hyphens);

async fn thirty_parallel_submissions_of_one_recovery_code_sign_in_exactly_once(backend: Backend) {
    let app = spawn_with_generous_otp_throttle(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut challenges = Vec::new();
    for _ in 0..PARALLEL {
        challenges.push(challenge(&app, &alice.email).await.challenge_token);
    }

    let code = MfaCode::RecoveryCode(alice.recovery_codes[0].clone());
    let results = submit_all_at_once(&app, challenges, code).await;

    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    for status in results.iter().filter_map(|r| r.as_ref().err()) {
        let why = reason(status);
        assert!(
            why == "RECOVERY_CODE_INVALID" || why == "RATE_LIMITED",
            "unexpected error: {status:?}"
        );
    }
}
backend_test!(thirty_parallel_submissions_of_one_recovery_code_sign_in_exactly_once);

async fn regenerating_recovery_codes_needs_a_fresh_code_and_replaces_the_old_set(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut client = app.client.clone();
    let code = totp_code(&alice.secret, app.now());

    let wrong = client
        .regenerate_recovery_codes(bearer(
            pb::RegenerateRecoveryCodesRequest {
                totp_code: wrong_code(&alice.secret, app.now()),
                client_info: None,
            },
            &alice.access_token,
        ))
        .await
        .unwrap_err();
    assert_status(&wrong, Code::InvalidArgument, "TOTP_INVALID");

    let fresh = client
        .regenerate_recovery_codes(bearer(
            pb::RegenerateRecoveryCodesRequest {
                totp_code: code.clone(),
                client_info: None,
            },
            &alice.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .recovery_codes;
    assert_eq!(fresh.len(), 10);
    let mut distinct = fresh.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 10);
    assert!(fresh.iter().all(|c| !alice.recovery_codes.contains(c)));

    // The same TOTP code again is a replay.
    let replayed = client
        .regenerate_recovery_codes(bearer(
            pb::RegenerateRecoveryCodesRequest {
                totp_code: code,
                client_info: None,
            },
            &alice.access_token,
        ))
        .await
        .unwrap_err();
    assert_status(&replayed, Code::InvalidArgument, "TOTP_INVALID");

    let c = challenge(&app, &alice.email).await;
    let old = complete(
        &mut client,
        &c.challenge_token,
        MfaCode::RecoveryCode(alice.recovery_codes[0].clone()),
    )
    .await
    .unwrap_err();
    assert_status(&old, Code::Unauthenticated, "RECOVERY_CODE_INVALID");
    complete(
        &mut client,
        &c.challenge_token,
        MfaCode::RecoveryCode(fresh[0].clone()),
    )
    .await
    .unwrap();

    // A step later, a fresh code regenerates again.
    app.clock.advance(STEP);
    let third = client
        .regenerate_recovery_codes(bearer(
            pb::RegenerateRecoveryCodesRequest {
                totp_code: totp_code(&alice.secret, app.now()),
                client_info: None,
            },
            &alice.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .recovery_codes;
    assert_eq!(third.len(), 10);
    assert!(third.iter().all(|c| !fresh.contains(c)));
    let events = event_types(&app, &alice.access_token).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| **e == pb::SecurityEventType::RecoveryCodesRegenerated)
            .count(),
        2,
        "{events:?}"
    );
}
backend_test!(regenerating_recovery_codes_needs_a_fresh_code_and_replaces_the_old_set);

// --- Removal --------------------------------------------------------------

async fn removing_totp_needs_a_valid_code_and_then_a_password_signs_in_alone(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;
    let mut client = app.client.clone();

    let wrong = client
        .remove_totp(bearer(
            pb::RemoveTotpRequest {
                code: Some(pb::remove_totp_request::Code::TotpCode(wrong_code(
                    &alice.secret,
                    app.now(),
                ))),
                client_info: None,
            },
            &alice.access_token,
        ))
        .await
        .unwrap_err();
    assert_status(&wrong, Code::InvalidArgument, "TOTP_INVALID");
    assert!(get_account(&app, &alice.account.id).await.totp_enrolled);
    assert!(matches!(
        app.authenticate(&alice.email, PASSWORD).await,
        pb::authenticate_response::Result::MfaChallenge(_)
    ));

    client
        .remove_totp(bearer(
            pb::RemoveTotpRequest {
                code: Some(pb::remove_totp_request::Code::TotpCode(totp_code(
                    &alice.secret,
                    app.now(),
                ))),
                client_info: None,
            },
            &alice.access_token,
        ))
        .await
        .unwrap();

    assert!(!get_account(&app, &alice.account.id).await.totp_enrolled);
    let session = app.sign_in(&alice.email, PASSWORD).await;
    assert_eq!(
        session.authentication_methods,
        vec![pb::AuthenticationMethod::Password as i32]
    );
    let claims = verified_claims(&app, &session.access_token).await;
    assert_eq!(claims.amr, vec![AuthMethod::Pwd]);
    assert!(!claims.totp);
    assert!(
        event_types(&app, &session.access_token)
            .await
            .contains(&pb::SecurityEventType::TotpRemoved)
    );
}
backend_test!(removing_totp_needs_a_valid_code_and_then_a_password_signs_in_alone);

async fn removing_totp_with_a_recovery_code_works_once(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let alice = enrolled(&app, "alice@example.com").await;

    app.client
        .clone()
        .remove_totp(bearer(
            pb::RemoveTotpRequest {
                code: Some(pb::remove_totp_request::Code::RecoveryCode(
                    alice.recovery_codes[0].clone(),
                )),
                client_info: None,
            },
            &alice.access_token,
        ))
        .await
        .unwrap();

    assert!(!get_account(&app, &alice.account.id).await.totp_enrolled);
    let again = app
        .client
        .clone()
        .remove_totp(bearer(
            pb::RemoveTotpRequest {
                code: Some(pb::remove_totp_request::Code::RecoveryCode(
                    alice.recovery_codes[1].clone(),
                )),
                client_info: None,
            },
            &alice.access_token,
        ))
        .await
        .unwrap_err();
    assert_status(&again, Code::FailedPrecondition, "TOTP_NOT_ENROLLED");
}
backend_test!(removing_totp_with_a_recovery_code_works_once);

async fn removing_totp_from_an_account_without_it_is_refused(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    app.create_account("alice@example.com", PASSWORD).await;
    let session = app.sign_in("alice@example.com", PASSWORD).await;

    let status = app
        .client
        .clone()
        .remove_totp(bearer(
            pb::RemoveTotpRequest {
                code: Some(pb::remove_totp_request::Code::TotpCode("123456".into())),
                client_info: None,
            },
            &session.access_token,
        ))
        .await
        .unwrap_err();

    assert_status(&status, Code::FailedPrecondition, "TOTP_NOT_ENROLLED");
}
backend_test!(removing_totp_from_an_account_without_it_is_refused);
