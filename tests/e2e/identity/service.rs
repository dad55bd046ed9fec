use std::time::Duration;

use recapp_proto::identity::v1 as pb;
use recapp_tests::{Backend, TestIdentity, backend_test, eventually, identity::bearer};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

const PASSWORD: &str = "correct horse battery staple";
const EMAIL: &str = "alice@example.com";
const SERVICE_NAME: &str = "recapp.identity.v1.IdentityService";

async fn channel(app: &TestIdentity) -> Channel {
    Endpoint::from_shared(format!("http://{}", app.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

async fn health(client: &mut HealthClient<Channel>, service: &str) -> Option<ServingStatus> {
    let response = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

async fn signing_keys(app: &TestIdentity) -> Vec<pb::SigningKey> {
    app.client
        .clone()
        .get_signing_keys(pb::GetSigningKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys
}

async fn health_reports_serving_once_started(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let mut client = HealthClient::new(channel(&app).await);

    for service in ["", SERVICE_NAME] {
        // Act
        let serving = eventually(Duration::from_secs(10), || {
            let mut client = client.clone();
            async move { health(&mut client, service).await == Some(ServingStatus::Serving) }
        })
        .await;

        // Assert
        assert!(serving, "{service:?} is not SERVING");
    }
    let unknown = client
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}
backend_test!(health_reports_serving_once_started);

async fn a_stopped_replica_stops_accepting_and_the_others_keep_serving(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    app.create_account(EMAIL, PASSWORD).await;
    let replica = app.spawn_replica().await;
    let addr = replica.addr;
    let mut old_client = replica.client.clone();
    old_client
        .get_signing_keys(pb::GetSigningKeysRequest {})
        .await
        .unwrap();

    // Act
    replica.stop().await;

    // Assert
    let refused = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(
        refused.is_err(),
        "the stopped replica accepted a connection"
    );
    assert!(
        old_client
            .get_signing_keys(pb::GetSigningKeysRequest {})
            .await
            .is_err(),
        "the stopped replica answered a call"
    );
    app.sign_in(EMAIL, PASSWORD).await;
}
backend_test!(a_stopped_replica_stops_accepting_and_the_others_keep_serving);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_identity_service() {
    // Arrange
    let app = TestIdentity::spawn(Backend::Sqlite).await;
    let mut client = ServerReflectionClient::new(channel(&app).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };

    // Act
    let mut responses = client
        .server_reflection_info(tokio_stream::once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().expect("a response");

    // Assert
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a list of services, got {response:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&SERVICE_NAME), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

async fn a_restart_keeps_accounts_sessions_and_signing_keys(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let account = app.create_account(EMAIL, PASSWORD).await;
    let session = app.sign_in(EMAIL, PASSWORD).await;
    let keys_before = signing_keys(&app).await;
    let restarted = app.spawn_replica().await;
    app.stop().await;

    // Act
    let got = restarted
        .client
        .clone()
        .get_account(pb::GetAccountRequest {
            account_id: account.id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .account
        .unwrap();
    let keys_after = signing_keys(&restarted).await;

    // Assert
    assert_eq!(got, account);
    assert_eq!(keys_after, keys_before);
    restarted
        .client
        .clone()
        .list_sessions(bearer(
            pb::ListSessionsRequest::default(),
            &session.access_token,
        ))
        .await
        .unwrap();
    restarted
        .client
        .clone()
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: session.refresh_token,
            client_info: None,
        })
        .await
        .unwrap();
    restarted.sign_in(EMAIL, PASSWORD).await;
}
backend_test!(a_restart_keeps_accounts_sessions_and_signing_keys);

async fn a_token_issued_by_one_replica_is_accepted_by_another(backend: Backend) {
    // Arrange
    let app = TestIdentity::spawn(backend).await;
    let replica = app.spawn_replica().await;
    app.create_account(EMAIL, PASSWORD).await;
    let session = app.sign_in(EMAIL, PASSWORD).await;

    // Act
    let listed = replica
        .client
        .clone()
        .list_sessions(bearer(
            pb::ListSessionsRequest::default(),
            &session.access_token,
        ))
        .await
        .unwrap()
        .into_inner();

    // Assert
    assert_eq!(listed.sessions.len(), 1);
    assert_eq!(listed.sessions[0].session_id, session.session_id);
    assert!(listed.sessions[0].current);
    assert_eq!(signing_keys(&replica).await, signing_keys(&app).await);
    let refreshed = replica
        .client
        .clone()
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: session.refresh_token.clone(),
            client_info: None,
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    // A page token from one replica is honoured by the other.
    app.sign_in(EMAIL, PASSWORD).await;
    let first = replica
        .client
        .clone()
        .list_sessions(bearer(
            pb::ListSessionsRequest {
                page_size: 1,
                page_token: String::new(),
            },
            &refreshed.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let second = app
        .client
        .clone()
        .list_sessions(bearer(
            pb::ListSessionsRequest {
                page_size: 1,
                page_token: first.next_page_token,
            },
            &refreshed.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.sessions.len(), 1);
    assert_eq!(second.sessions[0].session_id, session.session_id);
}
backend_test!(a_token_issued_by_one_replica_is_accepted_by_another);
