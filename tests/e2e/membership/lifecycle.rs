use recapp_proto::membership::v1 as pb;
use recapp_tests::{Backend, backend_test, identity::bearer, membership::TestSystem};

async fn an_invited_user_accepts_and_appears_under_active(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;

    // Act
    let (invitation, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let newcomer = system.person("new@example.com").await;
    let accepted = system
        .client
        .clone()
        .accept_invitation(bearer(
            pb::AcceptInvitationRequest {
                token,
                request_id: String::new(),
            },
            &newcomer.access_token,
        ))
        .await
        .unwrap()
        .into_inner();

    // Assert
    assert_eq!(invitation.status, pb::InvitationStatus::Pending as i32);
    let member = accepted.member.unwrap();
    assert_eq!(member.email, "new@example.com");
    assert_eq!(member.role, pb::Role::User as i32);
    let active = system
        .client
        .clone()
        .list_members(bearer(
            pb::ListMembersRequest {
                workspace_id: ws.id.clone(),
                status: 0,
                page_size: 0,
                page_token: String::new(),
            },
            &owner.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let emails: Vec<_> = active.members.iter().map(|m| m.email.as_str()).collect();
    assert_eq!(emails.len(), 2);
    assert!(emails.contains(&"owner@example.com") && emails.contains(&"new@example.com"));
    let owner_card = active
        .members
        .iter()
        .find(|m| m.email == "owner@example.com")
        .unwrap();
    assert!(owner_card.is_owner);
    assert_eq!(owner_card.role, pb::Role::TenantAdmin as i32);
}
backend_test!(an_invited_user_accepts_and_appears_under_active);
