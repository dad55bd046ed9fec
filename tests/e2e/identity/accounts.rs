use recapp_proto::identity::v1 as pb;
use recapp_tests::{
    Backend, TestIdentity, backend_test,
    identity::{SERVICE_SECRET, reason},
};
use tonic::{Code, Status, metadata::MetadataValue};

const PASSWORD: &str = "correct horse battery staple";

/// Asks for an account by email; `Err` carries the status.
async fn lookup(app: &TestIdentity, email: &str) -> Result<pb::Account, Status> {
    app.client
        .clone()
        .lookup_account_by_email(pb::LookupAccountByEmailRequest {
            email: email.into(),
        })
        .await
        .map(|r| r.into_inner().account.expect("an account"))
}

async fn create(
    app: &TestIdentity,
    email: &str,
    password: &str,
    display_name: &str,
) -> Result<pb::Account, Status> {
    app.client
        .clone()
        .create_account(pb::CreateAccountRequest {
            email: email.into(),
            password: password.into(),
            display_name: display_name.into(),
            client_info: None,
        })
        .await
        .map(|r| r.into_inner().account.expect("an account"))
}

fn assert_status(status: &Status, code: Code, expected_reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(status), expected_reason, "{status:?}");
}

async fn an_account_is_created_and_read_back(backend: Backend) {
    let app = TestIdentity::spawn(backend).await;
    let created = app.create_account("  Alice@Example.COM ", PASSWORD).await;
    assert_eq!(created.email, "alice@example.com");
    assert!(!created.totp_enrolled);

    let mut client = app.client.clone();
    let got = client
        .get_account(pb::GetAccountRequest {
            account_id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(got, created);

    let found = client
        .lookup_account_by_email(pb::LookupAccountByEmailRequest {
            email: "ALICE@example.com".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    assert_eq!(found.id, created.id);
}
backend_test!(an_account_is_created_and_read_back);

async fn an_email_that_differs_only_by_case_is_already_taken(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let first = app.create_account("bob@example.com", PASSWORD).await;

    // Act
    let status = create(&app, "BOB@Example.Com", "another fine passphrase here", "")
        .await
        .unwrap_err();

    // Assert
    assert_status(&status, Code::AlreadyExists, "EMAIL_TAKEN");
    assert_eq!(lookup(&app, "bob@example.com").await.unwrap().id, first.id);
}
backend_test!(an_email_that_differs_only_by_case_is_already_taken);

async fn malformed_emails_are_refused_and_no_account_is_created(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    // 255 bytes: one over the limit.
    let too_long = format!(
        "{}@{}.{}.{}.com",
        "a".repeat(64),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(58)
    );
    assert_eq!(too_long.len(), 255);
    let malformed = [
        "",
        "   ",
        "no-at-sign.example.com",
        "two@@example.com",
        "a@b@example.com",
        "@example.com",
        "alice@",
        "alice@localhost",
        "alice@exa mple.com",
        ".alice@example.com",
        "al..ice@example.com",
        "alice@-example.com",
        "ålice@example.com",
        "alice@example..com",
        too_long.as_str(),
    ];

    for email in malformed {
        // Act
        let status = create(&app, email, PASSWORD, "").await.unwrap_err();

        // Assert
        assert_status(&status, Code::InvalidArgument, "INVALID_EMAIL");
    }
    // The well-formed neighbours of those addresses do not exist either.
    for email in [
        "alice@example.com",
        "two@example.com",
        "no-at-sign@example.com",
    ] {
        let status = lookup(&app, email).await.unwrap_err();
        assert_status(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
    }
    let status = lookup(&app, "two@@example.com").await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, "INVALID_EMAIL");
}
backend_test!(malformed_emails_are_refused_and_no_account_is_created);

async fn a_guessable_password_is_refused_as_weak(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;

    for password in ["password1", "12345678"] {
        // Act
        let status = create(&app, "carol@example.com", password, "")
            .await
            .unwrap_err();

        // Assert
        assert_status(&status, Code::InvalidArgument, "WEAK_PASSWORD");
        assert!(
            !status.message().contains(password),
            "the message repeats the password: {status:?}"
        );
    }
    let status = lookup(&app, "carol@example.com").await.unwrap_err();
    assert_status(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}
backend_test!(a_guessable_password_is_refused_as_weak);

async fn a_password_of_seven_characters_is_too_short(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;

    // Act
    let status = create(&app, "dave@example.com", "Zq7#kP2", "")
        .await
        .unwrap_err();

    // Assert
    assert_status(&status, Code::InvalidArgument, "PASSWORD_TOO_SHORT");
    let status = lookup(&app, "dave@example.com").await.unwrap_err();
    assert_status(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}
backend_test!(a_password_of_seven_characters_is_too_short);

async fn a_password_over_1024_bytes_is_too_long_and_nothing_is_written(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let just_over = "Zq7#kP2x".repeat(128) + "!";
    assert_eq!(just_over.len(), 1025);
    // Well over the cap, but under the server's 64 KiB message limit.
    let large = "Zq7#kP2x".repeat(7 * 1024);

    for password in [just_over, large] {
        // Act
        let status = create(&app, "erin@example.com", &password, "")
            .await
            .unwrap_err();

        // Assert
        assert_status(&status, Code::InvalidArgument, "PASSWORD_TOO_LONG");
    }
    let status = lookup(&app, "erin@example.com").await.unwrap_err();
    assert_status(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}
backend_test!(a_password_over_1024_bytes_is_too_long_and_nothing_is_written);

async fn a_megabyte_password_is_refused_and_nothing_is_written(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let password = "a".repeat(1024 * 1024);

    // Act
    let status = create(&app, "frank@example.com", &password, "")
        .await
        .unwrap_err();

    // Assert: refused by its byte length, before any normalization or hash.
    assert_status(&status, Code::InvalidArgument, "PASSWORD_TOO_LONG");
    let status = lookup(&app, "frank@example.com").await.unwrap_err();
    assert_status(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}
backend_test!(a_megabyte_password_is_refused_and_nothing_is_written);

async fn a_display_name_over_100_characters_is_refused(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;

    // Act
    let status = create(&app, "grace@example.com", PASSWORD, &"G".repeat(101))
        .await
        .unwrap_err();

    // Assert
    assert_status(&status, Code::InvalidArgument, "FIELD_TOO_LONG");
    let status = lookup(&app, "grace@example.com").await.unwrap_err();
    assert_status(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}
backend_test!(a_display_name_over_100_characters_is_refused);

async fn a_display_name_with_control_or_direction_characters_is_refused(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;

    for name in ["Ada\nLovelace", "Ada\u{7}", "admin\u{202E}nimda"] {
        // Act
        let status = create(&app, "ivy@example.com", PASSWORD, name)
            .await
            .unwrap_err();

        // Assert
        assert_status(&status, Code::InvalidArgument, "INVALID_DISPLAY_NAME");
    }
    let status = lookup(&app, "ivy@example.com").await.unwrap_err();
    assert_status(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}
backend_test!(a_display_name_with_control_or_direction_characters_is_refused);

async fn parallel_sign_ups_with_one_email_create_exactly_one_account(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    const CALLERS: usize = 8;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(CALLERS));
    let mut calls = Vec::new();
    for i in 0..CALLERS {
        let client = app.new_client().await;
        let barrier = barrier.clone();
        // Case variants are one address.
        let email = if i % 2 == 0 {
            "olivia@example.com"
        } else {
            "Olivia@EXAMPLE.com"
        };
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            client
                .clone()
                .create_account(pb::CreateAccountRequest {
                    email: email.into(),
                    password: PASSWORD.into(),
                    display_name: String::new(),
                    client_info: None,
                })
                .await
                .map(|r| r.into_inner().account.expect("an account"))
        }));
    }

    // Act
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.unwrap());
    }

    // Assert
    let winners: Vec<&pb::Account> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for status in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_status(status, Code::AlreadyExists, "EMAIL_TAKEN");
    }
    assert_eq!(
        lookup(&app, "olivia@example.com").await.unwrap().id,
        winners[0].id
    );
}
backend_test!(parallel_sign_ups_with_one_email_create_exactly_one_account);

async fn a_display_name_of_100_characters_is_kept(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let name = "李".repeat(100);

    // Act
    let created = create(&app, "heidi@example.com", PASSWORD, &format!("  {name} "))
        .await
        .unwrap();

    // Assert
    assert_eq!(created.display_name, name);
    assert_eq!(
        lookup(&app, "heidi@example.com")
            .await
            .unwrap()
            .display_name,
        name
    );
}
backend_test!(a_display_name_of_100_characters_is_kept);

async fn batch_get_returns_known_accounts_in_the_order_asked_and_leaves_unknown_ids_out(
    backend: Backend,
) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let ivan = app.create_account("ivan@example.com", PASSWORD).await;
    let judy = app.create_account("judy@example.com", PASSWORD).await;
    let unknown = uuid::Uuid::now_v7().to_string();

    // Act
    let accounts = app
        .client
        .clone()
        .batch_get_accounts(pb::BatchGetAccountsRequest {
            account_ids: vec![judy.id.clone(), unknown, ivan.id.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .accounts;

    // Assert
    assert_eq!(accounts, vec![judy, ivan]);
}
backend_test!(batch_get_returns_known_accounts_in_the_order_asked_and_leaves_unknown_ids_out);

async fn batch_get_of_more_than_100_ids_is_refused(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let ids = (0..101).map(|_| uuid::Uuid::now_v7().to_string()).collect();

    // Act
    let status = app
        .client
        .clone()
        .batch_get_accounts(pb::BatchGetAccountsRequest { account_ids: ids })
        .await
        .unwrap_err();

    // Assert
    assert_status(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
}
backend_test!(batch_get_of_more_than_100_ids_is_refused);

async fn batch_get_of_exactly_100_ids_is_answered(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let known = app.create_account("kate@example.com", PASSWORD).await;
    let mut ids: Vec<String> = (0..99).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    ids.push(known.id.clone());

    // Act
    let accounts = app
        .client
        .clone()
        .batch_get_accounts(pb::BatchGetAccountsRequest { account_ids: ids })
        .await
        .unwrap()
        .into_inner()
        .accounts;

    // Assert
    assert_eq!(accounts, vec![known]);
}
backend_test!(batch_get_of_exactly_100_ids_is_answered);

async fn batch_get_with_an_id_that_is_not_a_uuid_is_refused(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let known = app.create_account("leo@example.com", PASSWORD).await;

    // Act
    let status = app
        .client
        .clone()
        .batch_get_accounts(pb::BatchGetAccountsRequest {
            account_ids: vec![known.id, "not-a-uuid".into()],
        })
        .await
        .unwrap_err();

    // Assert
    assert_status(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
}
backend_test!(batch_get_with_an_id_that_is_not_a_uuid_is_refused);

async fn get_account_of_an_unknown_id_is_not_found(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    app.create_account("mallory@example.com", PASSWORD).await;

    // Act
    let status = app
        .client
        .clone()
        .get_account(pb::GetAccountRequest {
            account_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();

    // Assert
    assert_status(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}
backend_test!(get_account_of_an_unknown_id_is_not_found);

async fn get_account_with_an_id_that_is_not_a_uuid_is_refused(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;

    // Act
    let status = app
        .client
        .clone()
        .get_account(pb::GetAccountRequest {
            account_id: "42".into(),
        })
        .await
        .unwrap_err();

    // Assert
    assert_status(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
}
backend_test!(get_account_with_an_id_that_is_not_a_uuid_is_refused);

/// Calls every RPC except GetSigningKeys with `metadata` added; answers
/// (name, result) per RPC.
async fn call_every_rpc_but_get_signing_keys(
    app: &TestIdentity,
    account_id: &str,
    metadata: Option<(&'static str, &str)>,
) -> Vec<(&'static str, Result<(), Status>)> {
    fn req<T>(message: T, metadata: Option<(&'static str, &str)>) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some((key, value)) = metadata {
            request
                .metadata_mut()
                .insert(key, MetadataValue::try_from(value).unwrap());
        }
        request
    }
    let m = metadata;
    let mut c = app.anonymous_client().await;
    vec![
        (
            "CreateAccount",
            c.create_account(req(
                pb::CreateAccountRequest {
                    email: "anonymous@example.com".into(),
                    password: PASSWORD.into(),
                    display_name: String::new(),
                    client_info: None,
                },
                m,
            ))
            .await
            .map(drop),
        ),
        (
            "GetAccount",
            c.get_account(req(
                pb::GetAccountRequest {
                    account_id: account_id.into(),
                },
                m,
            ))
            .await
            .map(drop),
        ),
        (
            "BatchGetAccounts",
            c.batch_get_accounts(req(
                pb::BatchGetAccountsRequest {
                    account_ids: vec![account_id.into()],
                },
                m,
            ))
            .await
            .map(drop),
        ),
        (
            "LookupAccountByEmail",
            c.lookup_account_by_email(req(
                pb::LookupAccountByEmailRequest {
                    email: "nina@example.com".into(),
                },
                m,
            ))
            .await
            .map(drop),
        ),
        (
            "Authenticate",
            c.authenticate(req(
                pb::AuthenticateRequest {
                    email: "nina@example.com".into(),
                    password: PASSWORD.into(),
                    client_info: None,
                },
                m,
            ))
            .await
            .map(drop),
        ),
        (
            "CompleteMfaChallenge",
            c.complete_mfa_challenge(req(pb::CompleteMfaChallengeRequest::default(), m))
                .await
                .map(drop),
        ),
        (
            "RefreshSession",
            c.refresh_session(req(pb::RefreshSessionRequest::default(), m))
                .await
                .map(drop),
        ),
        (
            "RevokeSession",
            c.revoke_session(req(pb::RevokeSessionRequest::default(), m))
                .await
                .map(drop),
        ),
        (
            "ListSessions",
            c.list_sessions(req(pb::ListSessionsRequest::default(), m))
                .await
                .map(drop),
        ),
        (
            "BeginTotpEnrollment",
            c.begin_totp_enrollment(req(pb::BeginTotpEnrollmentRequest::default(), m))
                .await
                .map(drop),
        ),
        (
            "ConfirmTotpEnrollment",
            c.confirm_totp_enrollment(req(pb::ConfirmTotpEnrollmentRequest::default(), m))
                .await
                .map(drop),
        ),
        (
            "RemoveTotp",
            c.remove_totp(req(pb::RemoveTotpRequest::default(), m))
                .await
                .map(drop),
        ),
        (
            "RegenerateRecoveryCodes",
            c.regenerate_recovery_codes(req(pb::RegenerateRecoveryCodesRequest::default(), m))
                .await
                .map(drop),
        ),
        (
            "ChangePassword",
            c.change_password(req(pb::ChangePasswordRequest::default(), m))
                .await
                .map(drop),
        ),
        (
            "ListSecurityEvents",
            c.list_security_events(req(pb::ListSecurityEventsRequest::default(), m))
                .await
                .map(drop),
        ),
    ]
}

async fn every_rpc_but_get_signing_keys_needs_a_service_credential(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let nina = app.create_account("nina@example.com", PASSWORD).await;

    // Act
    let results = call_every_rpc_but_get_signing_keys(&app, &nina.id, None).await;

    // Assert
    assert_eq!(results.len(), 15);
    for (rpc, result) in results {
        let status = result.expect_err(rpc);
        assert_eq!(status.code(), Code::Unauthenticated, "{rpc}: {status:?}");
        assert_eq!(reason(&status), "SERVICE_UNAUTHENTICATED", "{rpc}");
    }
    let status = lookup(&app, "anonymous@example.com").await.unwrap_err();
    assert_status(&status, Code::NotFound, "ACCOUNT_NOT_FOUND");
}
backend_test!(every_rpc_but_get_signing_keys_needs_a_service_credential);

async fn a_wrong_service_credential_is_refused_on_every_rpc(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let nina = app.create_account("nina@example.com", PASSWORD).await;
    let wrong = format!("{SERVICE_SECRET}x");

    // Act
    let results = call_every_rpc_but_get_signing_keys(
        &app,
        &nina.id,
        Some(("x-recapp-service-token", &wrong)),
    )
    .await;

    // Assert
    for (rpc, result) in results {
        let status = result.expect_err(rpc);
        assert_eq!(status.code(), Code::Unauthenticated, "{rpc}: {status:?}");
        assert_eq!(reason(&status), "SERVICE_UNAUTHENTICATED", "{rpc}");
    }
}
backend_test!(a_wrong_service_credential_is_refused_on_every_rpc);

async fn get_signing_keys_needs_no_credential(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;

    // Act
    let keys = app
        .anonymous_client()
        .await
        .get_signing_keys(pb::GetSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner();

    // Assert
    assert!(!keys.keys.is_empty());
    for key in &keys.keys {
        assert!(!key.key_id.is_empty());
        assert_eq!(key.algorithm, "EdDSA");
        assert_eq!(key.public_key.len(), 32);
        assert!(key.create_time.is_some());
    }
    assert!(keys.cache_max_age_seconds > 0);
    let with_credential = app
        .client
        .clone()
        .get_signing_keys(pb::GetSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(with_credential.keys, keys.keys);
}
backend_test!(get_signing_keys_needs_no_credential);
