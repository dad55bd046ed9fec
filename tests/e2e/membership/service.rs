use std::time::Duration;

use recapp_proto::membership::v1 as pb;
use recapp_tests::{
    Backend, backend_test, eventually,
    identity::{bearer, reason},
    membership::TestSystem,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn health_reports_serving_once_the_database_answers(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", system.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);

    // Act
    let serving = eventually(Duration::from_secs(10), || {
        let mut health = health.clone();
        async move {
            let mut all = true;
            for service in ["", "recapp.membership.v1.MembershipService"] {
                let status = health
                    .check(HealthCheckRequest {
                        service: service.into(),
                    })
                    .await
                    .map(|r| r.into_inner().status)
                    .unwrap_or_default();
                all &= status == ServingStatus::Serving as i32;
            }
            all
        }
    })
    .await;

    // Assert
    assert!(serving, "health never reported SERVING");
    let unknown = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}
backend_test!(health_reports_serving_once_the_database_answers);

async fn tokens_still_verify_from_the_key_cache_while_identity_is_down(backend: Backend) {
    // Arrange: the owner's token has been verified once, so its key is cached.
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;

    // Act
    system.identity.stop_now();
    let mut down = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(system.identity.addr)
            .await
            .is_err()
        {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = system
        .client
        .clone()
        .get_workspace(bearer(
            pb::GetWorkspaceRequest {
                workspace_id: ws.id.clone(),
            },
            &owner.access_token,
        ))
        .await;

    // Assert
    assert!(down, "identity did not stop");
    let got = got.unwrap().into_inner().workspace.unwrap();
    assert_eq!(got.id, ws.id);
    // A token signed by an unknown key cannot be checked and is refused.
    let forged = {
        let key = recapp_access_token::SigningKey::from_bytes("unknown-key", &[9u8; 32]);
        let now = chrono::Utc::now().timestamp();
        key.sign(&recapp_access_token::Claims {
            iss: recapp_access_token::ISSUER.into(),
            sub: uuid::Uuid::new_v4(),
            email: "mallory@example.com".into(),
            sid: uuid::Uuid::new_v4(),
            amr: vec![
                recapp_access_token::AuthMethod::Pwd,
                recapp_access_token::AuthMethod::Otp,
            ],
            totp: true,
            iat: now,
            exp: now + 300,
            jti: uuid::Uuid::new_v4(),
        })
        .unwrap()
    };
    let refused = system
        .client
        .clone()
        .get_workspace(bearer(
            pb::GetWorkspaceRequest {
                workspace_id: ws.id.clone(),
            },
            &forged,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert_eq!(reason(&refused), "TOKEN_INVALID");
}
backend_test!(tokens_still_verify_from_the_key_cache_while_identity_is_down);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_membership_service() {
    use tokio_stream::StreamExt;
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let system = TestSystem::spawn(Backend::Sqlite).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", system.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"recapp.membership.v1.MembershipService"),
        "{names:?}"
    );
}
