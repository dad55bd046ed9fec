use std::time::Duration as StdDuration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Duration;
use recapp_access_token::{AuthMethod, ISSUER, KeySet, PublicKey, TokenError};
use recapp_proto::identity::v1 as pb;
use recapp_tests::{
    Backend, TestIdentity, backend_test,
    identity::{bearer, reason},
};
use tonic::{Code, Request, Status};

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "purple elephant juggling tangerines";
const EMAIL: &str = "alice@example.com";

fn assert_status(status: &Status, code: Code, expected_reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(status), expected_reason, "{status:?}");
}

async fn signed_in(app: &TestIdentity) -> (pb::Account, pb::Session) {
    let account = app.create_account(EMAIL, PASSWORD).await;
    let session = app.sign_in(EMAIL, PASSWORD).await;
    (account, session)
}

async fn key_set(app: &TestIdentity) -> KeySet {
    let keys = app
        .anonymous_client()
        .await
        .get_signing_keys(pb::GetSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    KeySet::new(keys.into_iter().map(|k| PublicKey {
        key_id: k.key_id,
        bytes: k.public_key.try_into().expect("a 32-byte key"),
    }))
    .unwrap()
}

async fn authenticate(app: &TestIdentity, email: &str, password: &str) -> Result<(), Status> {
    app.client
        .clone()
        .authenticate(pb::AuthenticateRequest {
            email: email.into(),
            password: password.into(),
            client_info: None,
        })
        .await
        .map(drop)
}

async fn refresh(app: &TestIdentity, refresh_token: &str) -> Result<pb::Session, Status> {
    app.client
        .clone()
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: refresh_token.into(),
            client_info: None,
        })
        .await
        .map(|r| r.into_inner().session.expect("a session"))
}

async fn sign_out(app: &TestIdentity, refresh_token: &str) -> Result<(), Status> {
    app.client
        .clone()
        .revoke_session(pb::RevokeSessionRequest {
            session: Some(pb::revoke_session_request::Session::RefreshToken(
                refresh_token.into(),
            )),
            client_info: None,
        })
        .await
        .map(drop)
}

async fn revoke_by_id(app: &TestIdentity, access_token: &str, id: &str) -> Result<(), Status> {
    app.client
        .clone()
        .revoke_session(bearer(
            pb::RevokeSessionRequest {
                session: Some(pb::revoke_session_request::Session::SessionId(id.into())),
                client_info: None,
            },
            access_token,
        ))
        .await
        .map(drop)
}

async fn list_sessions(
    app: &TestIdentity,
    access_token: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListSessionsResponse, Status> {
    app.client
        .clone()
        .list_sessions(bearer(
            pb::ListSessionsRequest {
                page_size,
                page_token: page_token.into(),
            },
            access_token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn listed_ids(app: &TestIdentity, access_token: &str) -> Vec<String> {
    list_sessions(app, access_token, 0, "")
        .await
        .unwrap()
        .sessions
        .into_iter()
        .map(|s| s.session_id)
        .collect()
}

async fn change_password(
    app: &TestIdentity,
    access_token: &str,
    current: &str,
    new: &str,
) -> Result<pb::ChangePasswordResponse, Status> {
    app.client
        .clone()
        .change_password(bearer(
            pb::ChangePasswordRequest {
                current_password: current.into(),
                new_password: new.into(),
                client_info: None,
            },
            access_token,
        ))
        .await
        .map(|r| r.into_inner())
}

fn seconds(d: StdDuration) -> i64 {
    i64::try_from(d.as_secs()).unwrap()
}

async fn authenticate_returns_a_session_whose_access_token_verifies_offline(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let account = app.create_account(EMAIL, PASSWORD).await;
    let now = app.now().timestamp();

    // Act
    let session = app.sign_in(EMAIL, PASSWORD).await;

    // Assert
    assert_eq!(session.account.as_ref(), Some(&account));
    assert_eq!(
        session.authentication_methods,
        vec![pb::AuthenticationMethod::Password as i32]
    );
    assert!(!session.refresh_token.is_empty());
    let ttl = seconds(app.settings.access_token_ttl);
    assert_eq!(
        session.access_token_expire_time.as_ref().unwrap().seconds,
        now + ttl
    );
    let claims = recapp_access_token::verify(&session.access_token, &key_set(&app).await, now)
        .expect("the access token verifies");
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.sub.to_string(), account.id);
    assert_eq!(claims.email, EMAIL);
    assert_eq!(claims.sid.to_string(), session.session_id);
    assert_eq!(claims.amr, vec![AuthMethod::Pwd]);
    assert!(!claims.totp);
    assert_eq!(claims.exp, now + ttl);
}
backend_test!(authenticate_returns_a_session_whose_access_token_verifies_offline);

async fn an_access_token_does_not_verify_after_it_expires(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, session) = signed_in(&app).await;
    let keys = key_set(&app).await;
    let ttl = seconds(app.settings.access_token_ttl);
    let now = app.now().timestamp();

    // Act
    let just_before = recapp_access_token::verify(&session.access_token, &keys, now + ttl - 1);
    let after = recapp_access_token::verify(&session.access_token, &keys, now + ttl + 1);

    // Assert
    assert!(just_before.is_ok(), "{just_before:?}");
    assert_eq!(after, Err(TokenError::Expired));
}
backend_test!(an_access_token_does_not_verify_after_it_expires);

async fn the_service_refuses_an_expired_access_token(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, session) = signed_in(&app).await;
    app.clock
        .advance(Duration::from_std(app.settings.access_token_ttl).unwrap() + Duration::seconds(1));

    // Act
    let status = list_sessions(&app, &session.access_token, 0, "")
        .await
        .unwrap_err();

    // Assert
    assert_status(&status, Code::Unauthenticated, "TOKEN_EXPIRED");
}
backend_test!(the_service_refuses_an_expired_access_token);

async fn an_access_token_with_a_tampered_claim_has_a_bad_signature(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, session) = signed_in(&app).await;
    let keys = key_set(&app).await;
    let parts: Vec<&str> = session.access_token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["email"] = serde_json::Value::String("mallory@example.com".into());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = format!("{}.{}.{}", parts[0], payload, parts[2]);

    // Act
    let offline = recapp_access_token::verify(&tampered, &keys, app.now().timestamp());
    let online = list_sessions(&app, &tampered, 0, "").await.unwrap_err();

    // Assert
    assert_eq!(offline, Err(TokenError::BadSignature));
    assert_status(&online, Code::Unauthenticated, "TOKEN_INVALID");
}
backend_test!(an_access_token_with_a_tampered_claim_has_a_bad_signature);

async fn an_unknown_email_and_a_wrong_password_fail_identically(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    app.create_account(EMAIL, PASSWORD).await;

    // Act
    let unknown = authenticate(&app, "nobody@example.com", PASSWORD)
        .await
        .unwrap_err();
    let wrong = authenticate(&app, EMAIL, "not the right passphrase")
        .await
        .unwrap_err();
    let malformed = authenticate(&app, "not an email", PASSWORD)
        .await
        .unwrap_err();

    // Assert
    assert_status(&wrong, Code::Unauthenticated, "INVALID_CREDENTIALS");
    for other in [&unknown, &malformed] {
        assert_eq!(other.code(), wrong.code());
        assert_eq!(reason(other), reason(&wrong));
        assert_eq!(other.message(), wrong.message());
    }
}
backend_test!(an_unknown_email_and_a_wrong_password_fail_identically);

async fn refreshing_rotates_the_refresh_token(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, first) = signed_in(&app).await;

    // Act
    let second = refresh(&app, &first.refresh_token).await.unwrap();
    let third = refresh(&app, &second.refresh_token).await.unwrap();

    // Assert
    assert_eq!(second.session_id, first.session_id);
    assert_eq!(third.session_id, first.session_id);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(third.refresh_token, second.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(second.account, first.account);
    assert_eq!(second.authentication_methods, first.authentication_methods);
    let claims = recapp_access_token::verify(
        &third.access_token,
        &key_set(&app).await,
        app.now().timestamp(),
    )
    .unwrap();
    assert_eq!(claims.sid.to_string(), first.session_id);
}
backend_test!(refreshing_rotates_the_refresh_token);

async fn reusing_a_rotated_refresh_token_revokes_the_whole_session(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, first) = signed_in(&app).await;
    let second = refresh(&app, &first.refresh_token).await.unwrap();

    // Act
    let reused = refresh(&app, &first.refresh_token).await.unwrap_err();

    // Assert
    assert_status(&reused, Code::Unauthenticated, "REFRESH_TOKEN_REUSED");
    let newest = refresh(&app, &second.refresh_token).await.unwrap_err();
    assert_status(&newest, Code::Unauthenticated, "SESSION_REVOKED");
    let access = list_sessions(&app, &second.access_token, 0, "")
        .await
        .unwrap_err();
    assert_status(&access, Code::Unauthenticated, "SESSION_REVOKED");

    let fresh = app.sign_in(EMAIL, PASSWORD).await;
    let events = app
        .client
        .clone()
        .list_security_events(bearer(
            pb::ListSecurityEventsRequest::default(),
            &fresh.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    let reuses: Vec<_> = events
        .iter()
        .filter(|e| e.r#type == pb::SecurityEventType::RefreshTokenReused as i32)
        .collect();
    assert_eq!(reuses.len(), 1, "{events:?}");
    assert_eq!(reuses[0].session_id, first.session_id);
}
backend_test!(reusing_a_rotated_refresh_token_revokes_the_whole_session);

async fn parallel_refreshes_of_one_token_have_exactly_one_winner_and_revoke_the_session(
    backend: Backend,
) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, session) = signed_in(&app).await;
    const CALLERS: usize = 8;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CALLERS));
    let mut calls = Vec::new();
    for _ in 0..CALLERS {
        let mut client = app.new_client().await;
        let barrier = barrier.clone();
        let token = session.refresh_token.clone();
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            client
                .refresh_session(pb::RefreshSessionRequest {
                    refresh_token: token,
                    client_info: None,
                })
                .await
                .map(|r| r.into_inner().session.expect("a session"))
        }));
    }

    // Act
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }

    // Assert
    let winners: Vec<&pb::Session> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let losers: Vec<&Status> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        losers.iter().any(|s| reason(s) == "REFRESH_TOKEN_REUSED"),
        "{losers:?}"
    );
    for status in losers {
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        assert!(
            ["REFRESH_TOKEN_REUSED", "SESSION_REVOKED"].contains(&reason(status).as_str()),
            "{status:?}"
        );
    }
    let status = refresh(&app, &winners[0].refresh_token).await.unwrap_err();
    assert_status(&status, Code::Unauthenticated, "SESSION_REVOKED");
}
backend_test!(parallel_refreshes_of_one_token_have_exactly_one_winner_and_revoke_the_session);

async fn a_garbage_refresh_token_is_an_invalid_session(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    signed_in(&app).await;
    let well_formed_but_unknown = URL_SAFE_NO_PAD.encode([7u8; 32]);

    for token in [
        "",
        "garbage",
        "not base64 at all!!",
        &well_formed_but_unknown,
    ] {
        // Act
        let status = refresh(&app, token).await.unwrap_err();

        // Assert
        assert_status(&status, Code::Unauthenticated, "SESSION_INVALID");
    }
}
backend_test!(a_garbage_refresh_token_is_an_invalid_session);

async fn a_session_expires_when_idle_for_longer_than_the_idle_lifetime(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn_with(backend, |s| {
        s.session_idle_ttl = StdDuration::from_secs(60);
    })
    .await;
    let (_, first) = signed_in(&app).await;
    app.clock.advance(Duration::seconds(59));
    let kept_alive = refresh(&app, &first.refresh_token).await.unwrap();

    // Act
    app.clock.advance(Duration::seconds(61));
    let status = refresh(&app, &kept_alive.refresh_token).await.unwrap_err();

    // Assert
    assert_status(&status, Code::Unauthenticated, "SESSION_EXPIRED");
    let fresh = app.sign_in(EMAIL, PASSWORD).await;
    assert_eq!(
        listed_ids(&app, &fresh.access_token).await,
        vec![fresh.session_id]
    );
}
backend_test!(a_session_expires_when_idle_for_longer_than_the_idle_lifetime);

async fn a_session_expires_at_its_absolute_lifetime_even_when_refreshed(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn_with(backend, |s| {
        s.session_idle_ttl = StdDuration::from_secs(100);
        s.session_absolute_ttl = StdDuration::from_secs(150);
    })
    .await;
    let (_, mut session) = signed_in(&app).await;
    for _ in 0..3 {
        app.clock.advance(Duration::seconds(45));
        session = refresh(&app, &session.refresh_token).await.unwrap();
    }
    // Just refreshed at 135 s: the idle lifetime would reach 235 s, but the
    // absolute lifetime caps it at 150 s.
    assert!(
        session.refresh_token_expire_time.as_ref().unwrap().seconds <= app.now().timestamp() + 15
    );

    // Act
    app.clock.advance(Duration::seconds(16));
    let status = refresh(&app, &session.refresh_token).await.unwrap_err();

    // Assert
    assert_status(&status, Code::Unauthenticated, "SESSION_EXPIRED");
    // The access token never outlives its session: it expired with it.
    let claims = recapp_access_token::verify(
        &session.access_token,
        &key_set(&app).await,
        app.now().timestamp() - 16,
    )
    .unwrap();
    assert!(claims.exp <= app.now().timestamp() - 16 + 15);
    let access = list_sessions(&app, &session.access_token, 0, "")
        .await
        .unwrap_err();
    assert_status(&access, Code::Unauthenticated, "TOKEN_EXPIRED");
}
backend_test!(a_session_expires_at_its_absolute_lifetime_even_when_refreshed);

async fn signing_out_with_the_refresh_token_ends_the_session(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, session) = signed_in(&app).await;

    // Act
    sign_out(&app, &session.refresh_token).await.unwrap();

    // Assert
    let status = refresh(&app, &session.refresh_token).await.unwrap_err();
    assert_status(&status, Code::Unauthenticated, "SESSION_REVOKED");
    let access = list_sessions(&app, &session.access_token, 0, "")
        .await
        .unwrap_err();
    assert_status(&access, Code::Unauthenticated, "SESSION_REVOKED");
    // Signing out twice, or with an unknown token, is not an error.
    sign_out(&app, &session.refresh_token).await.unwrap();
    sign_out(&app, "garbage").await.unwrap();
}
backend_test!(signing_out_with_the_refresh_token_ends_the_session);

async fn a_session_is_revoked_by_id_with_the_owners_access_token(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, laptop) = signed_in(&app).await;
    let phone = app.sign_in(EMAIL, PASSWORD).await;

    // Act
    revoke_by_id(&app, &laptop.access_token, &phone.session_id)
        .await
        .unwrap();

    // Assert
    let status = refresh(&app, &phone.refresh_token).await.unwrap_err();
    assert_status(&status, Code::Unauthenticated, "SESSION_REVOKED");
    assert_eq!(
        listed_ids(&app, &laptop.access_token).await,
        vec![laptop.session_id.clone()]
    );
    refresh(&app, &laptop.refresh_token).await.unwrap();
}
backend_test!(a_session_is_revoked_by_id_with_the_owners_access_token);

async fn the_current_session_is_revoked_by_its_own_id(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, session) = signed_in(&app).await;

    // Act
    revoke_by_id(&app, &session.access_token, &session.session_id)
        .await
        .unwrap();

    // Assert
    let access = list_sessions(&app, &session.access_token, 0, "")
        .await
        .unwrap_err();
    assert_status(&access, Code::Unauthenticated, "SESSION_REVOKED");
    let status = refresh(&app, &session.refresh_token).await.unwrap_err();
    assert_status(&status, Code::Unauthenticated, "SESSION_REVOKED");
}
backend_test!(the_current_session_is_revoked_by_its_own_id);

async fn another_accounts_session_cannot_be_revoked_by_id(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, alice) = signed_in(&app).await;
    app.create_account("bob@example.com", PASSWORD).await;
    let bob = app.sign_in("bob@example.com", PASSWORD).await;

    // Act
    let status = revoke_by_id(&app, &alice.access_token, &bob.session_id)
        .await
        .unwrap_err();
    let unknown = revoke_by_id(&app, &alice.access_token, &uuid::Uuid::now_v7().to_string())
        .await
        .unwrap_err();

    // Assert
    assert_status(&status, Code::NotFound, "SESSION_NOT_FOUND");
    assert_eq!(status.message(), unknown.message());
    assert_status(&unknown, Code::NotFound, "SESSION_NOT_FOUND");
    refresh(&app, &bob.refresh_token).await.unwrap();
}
backend_test!(another_accounts_session_cannot_be_revoked_by_id);

async fn revoke_session_without_a_valid_session_is_an_invalid_argument(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, session) = signed_in(&app).await;

    // Act
    let garbage_id = revoke_by_id(&app, &session.access_token, "not-a-uuid")
        .await
        .unwrap_err();
    let neither = app
        .client
        .clone()
        .revoke_session(bearer(
            pb::RevokeSessionRequest {
                session: None,
                client_info: None,
            },
            &session.access_token,
        ))
        .await
        .unwrap_err();

    // Assert
    assert_status(&garbage_id, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_status(&neither, Code::InvalidArgument, "INVALID_ARGUMENT");
    refresh(&app, &session.refresh_token).await.unwrap();
}
backend_test!(revoke_session_without_a_valid_session_is_an_invalid_argument);

async fn refreshing_records_the_last_use_and_extends_the_idle_expiry(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn_with(backend, |s| {
        s.session_idle_ttl = StdDuration::from_secs(600);
    })
    .await;
    let (_, session) = signed_in(&app).await;
    let signed_in_at = app.now().timestamp();
    app.clock.advance(Duration::seconds(100));

    // Act
    let refreshed = refresh(&app, &session.refresh_token).await.unwrap();

    // Assert
    let now = app.now().timestamp();
    assert_eq!(
        refreshed
            .refresh_token_expire_time
            .as_ref()
            .unwrap()
            .seconds,
        now + 600
    );
    let listed = list_sessions(&app, &refreshed.access_token, 0, "")
        .await
        .unwrap()
        .sessions;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].create_time.as_ref().unwrap().seconds,
        signed_in_at
    );
    assert_eq!(listed[0].last_use_time.as_ref().unwrap().seconds, now);
    assert_eq!(listed[0].expire_time.as_ref().unwrap().seconds, now + 600);
}
backend_test!(refreshing_records_the_last_use_and_extends_the_idle_expiry);

async fn list_sessions_pages_through_the_callers_sessions_newest_first(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, oldest) = signed_in(&app).await;
    let middle = app.sign_in(EMAIL, PASSWORD).await;
    let newest = app.sign_in(EMAIL, PASSWORD).await;

    // Act
    let first = list_sessions(&app, &newest.access_token, 2, "")
        .await
        .unwrap();
    let second = list_sessions(&app, &newest.access_token, 2, &first.next_page_token)
        .await
        .unwrap();

    // Assert
    let ids = |page: &pb::ListSessionsResponse| -> Vec<String> {
        page.sessions.iter().map(|s| s.session_id.clone()).collect()
    };
    assert_eq!(
        ids(&first),
        vec![newest.session_id.clone(), middle.session_id.clone()]
    );
    assert!(!first.next_page_token.is_empty());
    assert_eq!(ids(&second), vec![oldest.session_id.clone()]);
    assert!(second.next_page_token.is_empty());
    let current: Vec<bool> = first
        .sessions
        .iter()
        .chain(&second.sessions)
        .map(|s| s.current)
        .collect();
    assert_eq!(current, vec![true, false, false]);
    let listed = &first.sessions[0];
    assert_eq!(listed.ip_address, "192.0.2.10");
    assert_eq!(listed.user_agent, "recapp-tests");
    assert_eq!(
        listed.authentication_methods,
        vec![pb::AuthenticationMethod::Password as i32]
    );
}
backend_test!(list_sessions_pages_through_the_callers_sessions_newest_first);

async fn list_sessions_marks_the_session_of_the_token_used_as_current(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, oldest) = signed_in(&app).await;
    app.sign_in(EMAIL, PASSWORD).await;

    // Act
    let page = list_sessions(&app, &oldest.access_token, 0, "")
        .await
        .unwrap();

    // Assert
    let current: Vec<&str> = page
        .sessions
        .iter()
        .filter(|s| s.current)
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(page.sessions.len(), 2);
    assert_eq!(current, vec![oldest.session_id.as_str()]);
}
backend_test!(list_sessions_marks_the_session_of_the_token_used_as_current);

async fn list_sessions_refuses_a_garbage_or_foreign_page_token(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, alice) = signed_in(&app).await;
    app.sign_in(EMAIL, PASSWORD).await;
    app.create_account("bob@example.com", PASSWORD).await;
    let bob = app.sign_in("bob@example.com", PASSWORD).await;
    let alices_token = list_sessions(&app, &alice.access_token, 1, "")
        .await
        .unwrap()
        .next_page_token;
    assert!(!alices_token.is_empty());

    for token in ["garbage", "AAAA", alices_token.as_str()] {
        // Act
        let status = list_sessions(&app, &bob.access_token, 1, token)
            .await
            .unwrap_err();

        // Assert
        assert_status(&status, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    }
}
backend_test!(list_sessions_refuses_a_garbage_or_foreign_page_token);

async fn revoked_and_other_accounts_sessions_are_not_listed(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, kept) = signed_in(&app).await;
    let signed_out = app.sign_in(EMAIL, PASSWORD).await;
    let current = app.sign_in(EMAIL, PASSWORD).await;
    app.create_account("bob@example.com", PASSWORD).await;
    app.sign_in("bob@example.com", PASSWORD).await;

    // Act
    sign_out(&app, &signed_out.refresh_token).await.unwrap();

    // Assert
    assert_eq!(
        listed_ids(&app, &current.access_token).await,
        vec![current.session_id, kept.session_id]
    );
}
backend_test!(revoked_and_other_accounts_sessions_are_not_listed);

/// Calls every RPC that acts for a person, with `authorization` (if any) as
/// the `authorization` metadata entry.
async fn call_every_user_rpc(
    app: &TestIdentity,
    authorization: Option<&str>,
) -> Vec<(&'static str, Result<(), Status>)> {
    macro_rules! req {
        ($message:expr) => {{
            let mut request = Request::new($message);
            if let Some(value) = authorization {
                request
                    .metadata_mut()
                    .insert("authorization", value.parse().unwrap());
            }
            request
        }};
    }
    let mut c = app.client.clone();
    vec![
        (
            "ListSessions",
            c.list_sessions(req!(pb::ListSessionsRequest::default()))
                .await
                .map(drop),
        ),
        (
            "RevokeSession",
            c.revoke_session(req!(pb::RevokeSessionRequest {
                session: Some(pb::revoke_session_request::Session::SessionId(
                    uuid::Uuid::now_v7().to_string(),
                )),
                client_info: None,
            }))
            .await
            .map(drop),
        ),
        (
            "BeginTotpEnrollment",
            c.begin_totp_enrollment(req!(pb::BeginTotpEnrollmentRequest {}))
                .await
                .map(drop),
        ),
        (
            "ConfirmTotpEnrollment",
            c.confirm_totp_enrollment(req!(pb::ConfirmTotpEnrollmentRequest {
                totp_code: "123456".into(),
                client_info: None,
            }))
            .await
            .map(drop),
        ),
        (
            "RemoveTotp",
            c.remove_totp(req!(pb::RemoveTotpRequest {
                code: Some(pb::remove_totp_request::Code::TotpCode("123456".into())),
                client_info: None,
            }))
            .await
            .map(drop),
        ),
        (
            "RegenerateRecoveryCodes",
            c.regenerate_recovery_codes(req!(pb::RegenerateRecoveryCodesRequest {
                totp_code: "123456".into(),
                client_info: None,
            }))
            .await
            .map(drop),
        ),
        (
            "ChangePassword",
            c.change_password(req!(pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: NEW_PASSWORD.into(),
                client_info: None,
            }))
            .await
            .map(drop),
        ),
        (
            "ListSecurityEvents",
            c.list_security_events(req!(pb::ListSecurityEventsRequest::default()))
                .await
                .map(drop),
        ),
    ]
}

fn assert_all_refused(results: Vec<(&'static str, Result<(), Status>)>, expected: &str) {
    assert_eq!(results.len(), 8);
    for (rpc, result) in results {
        let status = result.expect_err(rpc);
        assert_eq!(status.code(), Code::Unauthenticated, "{rpc}: {status:?}");
        assert_eq!(reason(&status), expected, "{rpc}");
    }
}

async fn user_rpcs_refuse_a_garbage_access_token(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    signed_in(&app).await;

    // Act
    let results = call_every_user_rpc(&app, Some("Bearer garbage.token.x")).await;

    // Assert
    assert_all_refused(results, "TOKEN_INVALID");
}
backend_test!(user_rpcs_refuse_a_garbage_access_token);

async fn user_rpcs_refuse_a_call_without_an_access_token(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, session) = signed_in(&app).await;

    // Act
    let none = call_every_user_rpc(&app, None).await;
    let basic = format!("Basic {}", session.access_token);
    let not_bearer = call_every_user_rpc(&app, Some(&basic)).await;
    let empty = call_every_user_rpc(&app, Some("Bearer ")).await;

    // Assert
    assert_all_refused(none, "TOKEN_MISSING");
    assert_all_refused(not_bearer, "TOKEN_MISSING");
    assert_all_refused(empty, "TOKEN_MISSING");
}
backend_test!(user_rpcs_refuse_a_call_without_an_access_token);

async fn user_rpcs_refuse_the_access_token_of_a_revoked_session(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, session) = signed_in(&app).await;
    sign_out(&app, &session.refresh_token).await.unwrap();
    let header = format!("Bearer {}", session.access_token);

    // Act
    let results = call_every_user_rpc(&app, Some(&header)).await;

    // Assert
    assert_all_refused(results, "SESSION_REVOKED");
    authenticate(&app, EMAIL, PASSWORD).await.unwrap();
}
backend_test!(user_rpcs_refuse_the_access_token_of_a_revoked_session);

async fn change_password_with_a_wrong_current_password_is_refused(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, session) = signed_in(&app).await;

    // Act
    let status = change_password(
        &app,
        &session.access_token,
        "not the right passphrase",
        NEW_PASSWORD,
    )
    .await
    .unwrap_err();

    // Assert
    assert_status(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    authenticate(&app, EMAIL, PASSWORD).await.unwrap();
    let status = authenticate(&app, EMAIL, NEW_PASSWORD).await.unwrap_err();
    assert_status(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    refresh(&app, &session.refresh_token).await.unwrap();
}
backend_test!(change_password_with_a_wrong_current_password_is_refused);

async fn change_password_to_a_weak_password_is_refused(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, session) = signed_in(&app).await;

    for weak in ["password1", "12345678", "alice@example.com"] {
        // Act
        let status = change_password(&app, &session.access_token, PASSWORD, weak)
            .await
            .unwrap_err();

        // Assert
        assert_status(&status, Code::InvalidArgument, "WEAK_PASSWORD");
    }
    let short = change_password(&app, &session.access_token, PASSWORD, "Zq7#kP2")
        .await
        .unwrap_err();
    assert_status(&short, Code::InvalidArgument, "PASSWORD_TOO_SHORT");
    authenticate(&app, EMAIL, PASSWORD).await.unwrap();
}
backend_test!(change_password_to_a_weak_password_is_refused);

async fn change_password_revokes_every_other_session_and_keeps_the_current_one(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let (_, laptop) = signed_in(&app).await;
    let phone = app.sign_in(EMAIL, PASSWORD).await;
    let current = app.sign_in(EMAIL, PASSWORD).await;
    let signed_out = app.sign_in(EMAIL, PASSWORD).await;
    sign_out(&app, &signed_out.refresh_token).await.unwrap();
    app.create_account("bob@example.com", PASSWORD).await;
    let bob = app.sign_in("bob@example.com", PASSWORD).await;

    // Act
    let changed = change_password(&app, &current.access_token, PASSWORD, NEW_PASSWORD)
        .await
        .unwrap();

    // Assert
    assert_eq!(changed.revoked_session_count, 2);
    for other in [&laptop, &phone] {
        let status = refresh(&app, &other.refresh_token).await.unwrap_err();
        assert_status(&status, Code::Unauthenticated, "SESSION_REVOKED");
        let access = list_sessions(&app, &other.access_token, 0, "")
            .await
            .unwrap_err();
        assert_status(&access, Code::Unauthenticated, "SESSION_REVOKED");
    }
    assert_eq!(
        listed_ids(&app, &current.access_token).await,
        vec![current.session_id.clone()]
    );
    refresh(&app, &current.refresh_token).await.unwrap();
    let old = authenticate(&app, EMAIL, PASSWORD).await.unwrap_err();
    assert_status(&old, Code::Unauthenticated, "INVALID_CREDENTIALS");
    app.sign_in(EMAIL, NEW_PASSWORD).await;
    refresh(&app, &bob.refresh_token).await.unwrap();
}
backend_test!(change_password_revokes_every_other_session_and_keeps_the_current_one);
