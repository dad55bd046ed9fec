use recapp_proto::identity::v1::{self as pb, SecurityEventType as T};
use recapp_tests::{
    Backend, TestIdentity, backend_test,
    identity::{bearer, client_info, reason},
};
use tonic::{Code, Request, Status, metadata::MetadataValue};

const PASSWORD: &str = "correct horse battery staple";
const WRONG_PASSWORD: &str = "wrong horse battery staple";
const NEW_PASSWORD: &str = "purple elephant juggling tangerines";
const EMAIL: &str = "alice@example.com";

async fn list_events(
    app: &TestIdentity,
    access_token: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListSecurityEventsResponse, Status> {
    app.client
        .clone()
        .list_security_events(bearer(
            pb::ListSecurityEventsRequest {
                page_size,
                page_token: page_token.into(),
            },
            access_token,
        ))
        .await
        .map(|r| r.into_inner())
}

async fn all_events(app: &TestIdentity, access_token: &str) -> Vec<pb::SecurityEvent> {
    let page = list_events(app, access_token, 0, "").await.unwrap();
    assert!(page.next_page_token.is_empty());
    page.events
}

fn types(events: &[pb::SecurityEvent]) -> Vec<T> {
    events
        .iter()
        .map(|e| T::try_from(e.r#type).unwrap_or(T::Unspecified))
        .collect()
}

fn with_traceparent<M>(message: M, trace_id: &str) -> Request<M> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(format!("00-{trace_id}-00f067aa0ba902b7-01")).unwrap(),
    );
    request
}

async fn refresh(app: &TestIdentity, refresh_token: &str) -> Result<pb::Session, Status> {
    app.client
        .clone()
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: refresh_token.into(),
            client_info: Some(client_info("192.0.2.10")),
        })
        .await
        .map(|r| r.into_inner().session.expect("a session"))
}

async fn fail_to_sign_in(app: &TestIdentity, email: &str, password: &str) {
    let status = app
        .client
        .clone()
        .authenticate(pb::AuthenticateRequest {
            email: email.into(),
            password: password.into(),
            client_info: Some(client_info("192.0.2.10")),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "INVALID_CREDENTIALS");
}

async fn security_events_are_listed_newest_first(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    app.create_account(EMAIL, PASSWORD).await;
    fail_to_sign_in(&app, EMAIL, WRONG_PASSWORD).await;
    let first = app.sign_in(EMAIL, PASSWORD).await;
    refresh(&app, &first.refresh_token).await.unwrap();
    refresh(&app, &first.refresh_token).await.unwrap_err();
    let fresh = app.sign_in(EMAIL, PASSWORD).await;

    // Act
    let events = all_events(&app, &fresh.access_token).await;

    // Assert
    assert_eq!(
        types(&events),
        vec![
            T::LoginSucceeded,
            T::RefreshTokenReused,
            T::LoginSucceeded,
            T::LoginFailed,
            T::AccountCreated,
        ]
    );
    let sessions: Vec<&str> = events.iter().map(|e| e.session_id.as_str()).collect();
    assert_eq!(
        sessions,
        vec![
            fresh.session_id.as_str(),
            first.session_id.as_str(),
            first.session_id.as_str(),
            "",
            ""
        ]
    );
    for event in &events {
        assert_eq!(event.trace_id.len(), 32, "{event:?}");
        assert!(
            event.trace_id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{event:?}"
        );
        assert_ne!(event.trace_id, "0".repeat(32));
        assert_eq!(event.ip_address, "192.0.2.10", "{event:?}");
        assert_eq!(event.user_agent, "recapp-tests", "{event:?}");
        assert!(!event.id.is_empty());
        assert!(event.create_time.is_some());
    }
    let mut ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), events.len());
}
backend_test!(security_events_are_listed_newest_first);

async fn an_event_carries_the_trace_id_of_the_request_that_caused_it(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let create_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let failure_trace = "0af7651916cd43dd8448eb211c80319c";
    let mut client = app.client.clone();
    client
        .create_account(with_traceparent(
            pb::CreateAccountRequest {
                email: EMAIL.into(),
                password: PASSWORD.into(),
                display_name: String::new(),
                client_info: None,
            },
            create_trace,
        ))
        .await
        .unwrap();

    // Act
    client
        .authenticate(with_traceparent(
            pb::AuthenticateRequest {
                email: EMAIL.into(),
                password: WRONG_PASSWORD.into(),
                client_info: None,
            },
            failure_trace,
        ))
        .await
        .unwrap_err();
    let session = app.sign_in(EMAIL, PASSWORD).await;

    // Assert
    let events = all_events(&app, &session.access_token).await;
    assert_eq!(
        types(&events),
        vec![T::LoginSucceeded, T::LoginFailed, T::AccountCreated]
    );
    assert_eq!(events[2].trace_id, create_trace);
    assert_eq!(events[1].trace_id, failure_trace);
    // Without a traceparent the service starts a trace of its own.
    assert_eq!(events[0].trace_id.len(), 32);
    assert_ne!(events[0].trace_id, create_trace);
    assert_ne!(events[0].trace_id, failure_trace);
}
backend_test!(an_event_carries_the_trace_id_of_the_request_that_caused_it);

async fn no_event_field_holds_a_password_or_a_token(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    app.create_account(EMAIL, PASSWORD).await;
    fail_to_sign_in(&app, EMAIL, WRONG_PASSWORD).await;
    let first = app.sign_in(EMAIL, PASSWORD).await;
    let rotated = refresh(&app, &first.refresh_token).await.unwrap();
    refresh(&app, &first.refresh_token).await.unwrap_err();
    let second = app.sign_in(EMAIL, PASSWORD).await;
    let third = app.sign_in(EMAIL, PASSWORD).await;
    app.client
        .clone()
        .revoke_session(pb::RevokeSessionRequest {
            session: Some(pb::revoke_session_request::Session::RefreshToken(
                third.refresh_token.clone(),
            )),
            client_info: None,
        })
        .await
        .unwrap();
    app.client
        .clone()
        .change_password(bearer(
            pb::ChangePasswordRequest {
                current_password: PASSWORD.into(),
                new_password: NEW_PASSWORD.into(),
                client_info: None,
            },
            &second.access_token,
        ))
        .await
        .unwrap();
    let secrets = [
        PASSWORD,
        WRONG_PASSWORD,
        NEW_PASSWORD,
        &first.refresh_token,
        &first.access_token,
        &rotated.refresh_token,
        &rotated.access_token,
        &second.refresh_token,
        &second.access_token,
        &third.refresh_token,
        &third.access_token,
    ];

    // Act
    let events = all_events(&app, &second.access_token).await;

    // Assert
    assert!(types(&events).contains(&T::PasswordChanged), "{events:?}");
    assert!(types(&events).contains(&T::SessionRevoked), "{events:?}");
    for event in &events {
        let fields = [
            &event.id,
            &event.ip_address,
            &event.user_agent,
            &event.trace_id,
            &event.session_id,
        ];
        for field in fields {
            for secret in secrets {
                assert!(
                    !field.contains(secret),
                    "an event field holds a secret: {event:?}"
                );
            }
        }
    }
}
backend_test!(no_event_field_holds_a_password_or_a_token);

async fn another_accounts_events_are_not_visible(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    app.create_account(EMAIL, PASSWORD).await;
    let alice = app.sign_in(EMAIL, PASSWORD).await;
    app.create_account("bob@example.com", PASSWORD).await;
    fail_to_sign_in(&app, "bob@example.com", WRONG_PASSWORD).await;
    let bob = app.sign_in("bob@example.com", PASSWORD).await;
    fail_to_sign_in(&app, EMAIL, WRONG_PASSWORD).await;

    // Act
    let alices = all_events(&app, &alice.access_token).await;
    let bobs = all_events(&app, &bob.access_token).await;

    // Assert
    assert_eq!(
        types(&alices),
        vec![T::LoginFailed, T::LoginSucceeded, T::AccountCreated]
    );
    assert_eq!(
        types(&bobs),
        vec![T::LoginSucceeded, T::LoginFailed, T::AccountCreated]
    );
    assert!(
        alices.iter().all(|a| bobs.iter().all(|b| a.id != b.id)),
        "an event is listed for both accounts"
    );
    assert_eq!(alices[1].session_id, alice.session_id);
    assert_eq!(bobs[0].session_id, bob.session_id);
}
backend_test!(another_accounts_events_are_not_visible);

async fn security_events_are_paged_by_page_size(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    app.create_account(EMAIL, PASSWORD).await;
    fail_to_sign_in(&app, EMAIL, WRONG_PASSWORD).await;
    fail_to_sign_in(&app, EMAIL, WRONG_PASSWORD).await;
    app.sign_in(EMAIL, PASSWORD).await;
    let session = app.sign_in(EMAIL, PASSWORD).await;
    let everything = all_events(&app, &session.access_token).await;
    assert_eq!(everything.len(), 5);

    // Act
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = list_events(&app, &session.access_token, 2, &token)
            .await
            .unwrap();
        pages.push(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages.len() < 10, "paging does not end");
    }

    // Assert
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    assert_eq!(pages.concat(), everything);
}
backend_test!(security_events_are_paged_by_page_size);

async fn a_page_exactly_filling_the_list_has_no_next_page_token(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    app.create_account(EMAIL, PASSWORD).await;
    let session = app.sign_in(EMAIL, PASSWORD).await;

    // Act
    let page = list_events(&app, &session.access_token, 2, "")
        .await
        .unwrap();

    // Assert
    assert_eq!(
        types(&page.events),
        vec![T::LoginSucceeded, T::AccountCreated]
    );
    assert!(page.next_page_token.is_empty());
}
backend_test!(a_page_exactly_filling_the_list_has_no_next_page_token);

async fn security_events_refuse_a_garbage_or_foreign_page_token(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    app.create_account(EMAIL, PASSWORD).await;
    let alice = app.sign_in(EMAIL, PASSWORD).await;
    app.sign_in(EMAIL, PASSWORD).await;
    app.create_account("bob@example.com", PASSWORD).await;
    let bob = app.sign_in("bob@example.com", PASSWORD).await;
    let alices_events_token = list_events(&app, &alice.access_token, 1, "")
        .await
        .unwrap()
        .next_page_token;
    let alices_sessions_token = app
        .client
        .clone()
        .list_sessions(bearer(
            pb::ListSessionsRequest {
                page_size: 1,
                page_token: String::new(),
            },
            &alice.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!alices_events_token.is_empty());
    assert!(!alices_sessions_token.is_empty());

    // Act
    let garbage = list_events(&app, &bob.access_token, 1, "garbage")
        .await
        .unwrap_err();
    let foreign = list_events(&app, &bob.access_token, 1, &alices_events_token)
        .await
        .unwrap_err();
    let other_list = list_events(&app, &alice.access_token, 1, &alices_sessions_token)
        .await
        .unwrap_err();
    let negative = list_events(&app, &alice.access_token, -1, "")
        .await
        .unwrap_err();

    // Assert
    for status in [&garbage, &foreign, &other_list] {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert_eq!(reason(status), "INVALID_PAGE_TOKEN", "{status:?}");
    }
    assert_eq!(negative.code(), Code::InvalidArgument, "{negative:?}");
}
backend_test!(security_events_refuse_a_garbage_or_foreign_page_token);
