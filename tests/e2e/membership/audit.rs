//! The workspace audit log: one event per change with who, what, where and
//! a hash chain that an edited or deleted row breaks; filters, paging and
//! who may read it.

use std::time::Duration;

use membership_service::service::verify_chain;
use recapp_proto::membership::v1 as pb;
use recapp_tests::{
    Backend, backend_test,
    identity::{bearer, reason},
    membership::{PASSWORD, Person, TestSystem, as_service, invitation_token},
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use tonic::{Code, Request, Response, Status, metadata::MetadataValue};
use uuid::Uuid;

// ---------------------------------------------------------------- helpers

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    result: Result<Response<T>, Status>,
    code: Code,
    expected_reason: &str,
) {
    match result {
        Ok(response) => panic!("expected a refusal, got {:?}", response.into_inner()),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(reason(&status), expected_reason, "{status:?}");
        }
    }
}

struct Query<'a> {
    action: &'a str,
    actor: &'a str,
    page_size: i32,
    page_token: &'a str,
}

const ALL: Query<'static> = Query {
    action: "",
    actor: "",
    page_size: 200,
    page_token: "",
};

async fn list(
    system: &TestSystem,
    reader: &Person,
    workspace_id: &str,
    query: Query<'_>,
) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
    system
        .client
        .clone()
        .list_audit_events(bearer(
            pb::ListAuditEventsRequest {
                workspace_id: workspace_id.into(),
                action: query.action.into(),
                actor: query.actor.into(),
                page_size: query.page_size,
                page_token: query.page_token.into(),
            },
            &reader.access_token,
        ))
        .await
}

async fn events(system: &TestSystem, reader: &Person, workspace_id: &str) -> Vec<pb::AuditEvent> {
    list(system, reader, workspace_id, ALL)
        .await
        .unwrap_or_else(|e| panic!("list_audit_events: {e:?}"))
        .into_inner()
        .events
}

fn actions(events: &[pb::AuditEvent]) -> Vec<&str> {
    events.iter().map(|e| e.action.as_str()).collect()
}

async fn change_role(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    account_id: &str,
    role: pb::Role,
) -> Result<Response<pb::ChangeMemberRoleResponse>, Status> {
    system
        .client
        .clone()
        .change_member_role(bearer(
            pb::ChangeMemberRoleRequest {
                workspace_id: workspace_id.into(),
                account_id: account_id.into(),
                role: role as i32,
                request_id: String::new(),
            },
            &admin.access_token,
        ))
        .await
}

async fn disable(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    account_id: &str,
) -> Result<Response<pb::DisableMemberResponse>, Status> {
    system
        .client
        .clone()
        .disable_member(bearer(
            pb::DisableMemberRequest {
                workspace_id: workspace_id.into(),
                account_id: account_id.into(),
                request_id: String::new(),
            },
            &admin.access_token,
        ))
        .await
}

async fn enable(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    account_id: &str,
) -> Result<Response<pb::EnableMemberResponse>, Status> {
    system
        .client
        .clone()
        .enable_member(bearer(
            pb::EnableMemberRequest {
                workspace_id: workspace_id.into(),
                account_id: account_id.into(),
                request_id: String::new(),
            },
            &admin.access_token,
        ))
        .await
}

async fn remove(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    account_id: &str,
) -> Result<Response<pb::RemoveMemberResponse>, Status> {
    system
        .client
        .clone()
        .remove_member(bearer(
            pb::RemoveMemberRequest {
                workspace_id: workspace_id.into(),
                account_id: account_id.into(),
                request_id: String::new(),
            },
            &admin.access_token,
        ))
        .await
}

async fn set_lifetime(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    seconds: i64,
) -> Result<Response<pb::UpdateWorkspaceSettingsResponse>, Status> {
    system
        .client
        .clone()
        .update_workspace_settings(bearer(
            pb::UpdateWorkspaceSettingsRequest {
                workspace_id: workspace_id.into(),
                require_mfa: None,
                invitation_lifetime: Some(prost_types::Duration { seconds, nanos: 0 }),
                request_id: String::new(),
            },
            &admin.access_token,
        ))
        .await
}

async fn transfer(
    system: &TestSystem,
    owner: &Person,
    workspace_id: &str,
    new_owner: &str,
) -> Result<Response<pb::TransferOwnershipResponse>, Status> {
    system
        .client
        .clone()
        .transfer_ownership(bearer(
            pb::TransferOwnershipRequest {
                workspace_id: workspace_id.into(),
                new_owner_account_id: new_owner.into(),
                request_id: String::new(),
            },
            &owner.access_token,
        ))
        .await
}

async fn resend(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    invitation_id: &str,
) -> Result<Response<pb::ResendInvitationResponse>, Status> {
    system
        .client
        .clone()
        .resend_invitation(bearer(
            pb::ResendInvitationRequest {
                workspace_id: workspace_id.into(),
                invitation_id: invitation_id.into(),
                request_id: String::new(),
            },
            &admin.access_token,
        ))
        .await
}

async fn cancel(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    invitation_id: &str,
) -> Result<Response<pb::CancelInvitationResponse>, Status> {
    system
        .client
        .clone()
        .cancel_invitation(bearer(
            pb::CancelInvitationRequest {
                workspace_id: workspace_id.into(),
                invitation_id: invitation_id.into(),
                request_id: String::new(),
            },
            &admin.access_token,
        ))
        .await
}

async fn accept(
    system: &TestSystem,
    person: &Person,
    token: &str,
) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
    system
        .client
        .clone()
        .accept_invitation(bearer(
            pb::AcceptInvitationRequest {
                token: token.into(),
                request_id: String::new(),
            },
            &person.access_token,
        ))
        .await
}

async fn database(system: &TestSystem) -> DatabaseConnection {
    Database::connect(&system.database.url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the membership database: {e}"))
}

fn workspace_uuid(ws: &pb::Workspace) -> Uuid {
    Uuid::parse_str(&ws.id).unwrap()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A workspace with one of each change, by its owner (and one acceptance by
/// the newcomer). Returns the people and the workspace.
struct Scenario {
    system: TestSystem,
    owner: Person,
    admin: Person,
    ws: pb::Workspace,
    pending_invitation: pb::Invitation,
}

async fn scenario(backend: Backend) -> Scenario {
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;
    let (pending_invitation, _) = system
        .invite(&owner, &ws.id, "pending@example.com", pb::Role::User)
        .await;
    Scenario {
        system,
        owner,
        admin,
        ws,
        pending_invitation,
    }
}

// ---------------------------------------------------------------- tests

async fn every_change_leaves_exactly_one_event_listed_newest_first(backend: Backend) {
    // Arrange
    let Scenario {
        system,
        owner,
        admin,
        ws,
        pending_invitation,
    } = scenario(backend).await;
    let gone = system
        .member(&owner, &ws.id, "gone@example.com", pb::Role::User)
        .await;

    // Act
    change_role(&system, &owner, &ws.id, &admin.account_id, pb::Role::User)
        .await
        .unwrap();
    disable(&system, &owner, &ws.id, &admin.account_id)
        .await
        .unwrap();
    enable(&system, &owner, &ws.id, &admin.account_id)
        .await
        .unwrap();
    change_role(
        &system,
        &owner,
        &ws.id,
        &admin.account_id,
        pb::Role::TenantAdmin,
    )
    .await
    .unwrap();
    remove(&system, &owner, &ws.id, &gone.account_id)
        .await
        .unwrap();
    set_lifetime(&system, &owner, &ws.id, 2 * 3600)
        .await
        .unwrap();
    system.identity.clock.advance(chrono::Duration::seconds(61));
    resend(&system, &owner, &ws.id, &pending_invitation.id)
        .await
        .unwrap();
    cancel(&system, &owner, &ws.id, &pending_invitation.id)
        .await
        .unwrap();
    transfer(&system, &owner, &ws.id, &admin.account_id)
        .await
        .unwrap();
    let listed = events(&system, &owner, &ws.id).await;

    // Assert
    assert_eq!(
        actions(&listed),
        vec![
            "workspace.ownership_transferred",
            "invitation.cancelled",
            "invitation.resent",
            "workspace.settings_changed",
            "member.removed",
            "member.role_changed",
            "member.enabled",
            "member.disabled",
            "member.role_changed",
            "invitation.accepted",
            "member.invited",
            "member.invited",
            "invitation.accepted",
            "member.invited",
            "workspace.created",
        ]
    );
    let db = database(&system).await;
    assert_eq!(verify_chain(&db, workspace_uuid(&ws)).await.unwrap(), None);
}
backend_test!(every_change_leaves_exactly_one_event_listed_newest_first);

async fn a_change_that_changes_nothing_leaves_no_event(backend: Backend) {
    // Arrange
    let Scenario {
        system,
        owner,
        admin,
        ws,
        ..
    } = scenario(backend).await;
    let before = events(&system, &owner, &ws.id).await;

    // Act
    change_role(
        &system,
        &owner,
        &ws.id,
        &admin.account_id,
        pb::Role::TenantAdmin,
    )
    .await
    .unwrap();
    enable(&system, &owner, &ws.id, &admin.account_id)
        .await
        .unwrap();
    set_lifetime(&system, &owner, &ws.id, 7 * 24 * 3600)
        .await
        .unwrap();
    transfer(&system, &owner, &ws.id, &owner.account_id)
        .await
        .unwrap();

    // Assert
    assert_eq!(events(&system, &owner, &ws.id).await, before);
}
backend_test!(a_change_that_changes_nothing_leaves_no_event);

async fn each_event_records_the_actor_the_target_the_states_where_and_a_hash(backend: Backend) {
    // Arrange
    let Scenario {
        system,
        owner,
        admin,
        ws,
        pending_invitation,
    } = scenario(backend).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = bearer(
        pb::ChangeMemberRoleRequest {
            workspace_id: ws.id.clone(),
            account_id: admin.account_id.clone(),
            role: pb::Role::User as i32,
            request_id: String::new(),
        },
        &owner.access_token,
    );
    request.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(format!("00-{trace_id}-00f067aa0ba902b7-01")).unwrap(),
    );

    // Act
    system
        .client
        .clone()
        .change_member_role(request)
        .await
        .unwrap();
    let listed = events(&system, &owner, &ws.id).await;

    // Assert
    let [
        role_changed,
        invited_pending,
        accepted,
        invited_admin,
        created,
    ] = listed.as_slice()
    else {
        panic!("{:?}", actions(&listed));
    };
    for event in &listed {
        assert_eq!(event.workspace_id, ws.id);
        assert!(Uuid::parse_str(&event.id).is_ok(), "{event:?}");
        assert!(event.create_time.is_some(), "{event:?}");
        assert!(!event.client_ip.is_empty(), "{event:?}");
        assert!(is_hex(&event.trace_id, 32), "{event:?}");
        assert_ne!(event.trace_id, "0".repeat(32));
        assert!(is_hex(&event.hash, 64), "{event:?}");
    }
    let hashes: std::collections::HashSet<_> = listed.iter().map(|e| &e.hash).collect();
    assert_eq!(hashes.len(), listed.len());
    let traces: std::collections::HashSet<_> = listed.iter().map(|e| &e.trace_id).collect();
    assert_eq!(traces.len(), listed.len(), "one request, one trace");
    assert_eq!(
        role_changed.trace_id, trace_id,
        "the caller's trace continues"
    );

    for by_owner in [role_changed, invited_pending, invited_admin, created] {
        assert_eq!(by_owner.actor, owner.account_id);
        assert_eq!(by_owner.actor_email, "owner@example.com");
    }
    assert_eq!(accepted.actor, admin.account_id);
    assert_eq!(accepted.actor_email, "admin@example.com");

    assert_eq!(created.action, "workspace.created");
    assert_eq!(created.target, format!("workspace/{}", ws.id));
    assert_eq!(created.before, "");
    assert_eq!(json(&created.after)["name"], "Acme MSP");

    assert_eq!(invited_pending.action, "member.invited");
    assert_eq!(
        invited_pending.target,
        format!("invitation/{}", pending_invitation.id)
    );
    assert_eq!(invited_pending.before, "");
    let after = json(&invited_pending.after);
    assert_eq!(after["email"], "pending@example.com");
    assert_eq!(after["role"], "user");

    assert_eq!(accepted.action, "invitation.accepted");
    assert!(accepted.target.starts_with("invitation/"), "{accepted:?}");
    assert_eq!(json(&accepted.before)["status"], "pending");
    assert_eq!(json(&accepted.after)["status"], "accepted");
    assert_eq!(json(&accepted.after)["account"], admin.account_id.as_str());

    assert_eq!(role_changed.action, "member.role_changed");
    assert_eq!(role_changed.target, format!("account/{}", admin.account_id));
    assert_eq!(json(&role_changed.before)["role"], "tenant_admin");
    assert_eq!(json(&role_changed.after)["role"], "user");
    assert_eq!(json(&role_changed.after)["email"], "admin@example.com");
}
backend_test!(each_event_records_the_actor_the_target_the_states_where_and_a_hash);

async fn the_states_before_and_after_are_recorded_for_settings_removal_and_ownership(
    backend: Backend,
) {
    // Arrange
    let Scenario {
        system,
        owner,
        admin,
        ws,
        ..
    } = scenario(backend).await;
    let gone = system
        .member(&owner, &ws.id, "gone@example.com", pb::Role::User)
        .await;

    // Act
    set_lifetime(&system, &owner, &ws.id, 3600).await.unwrap();
    remove(&system, &owner, &ws.id, &gone.account_id)
        .await
        .unwrap();
    transfer(&system, &owner, &ws.id, &admin.account_id)
        .await
        .unwrap();
    let listed = events(&system, &owner, &ws.id).await;

    // Assert
    let [transferred, removed, settings, ..] = listed.as_slice() else {
        panic!("{:?}", actions(&listed));
    };
    assert_eq!(settings.action, "workspace.settings_changed");
    assert_eq!(settings.target, format!("workspace/{}", ws.id));
    assert_eq!(
        json(&settings.before)["invitation_lifetime_secs"],
        7 * 24 * 3600
    );
    assert_eq!(json(&settings.after)["invitation_lifetime_secs"], 3600);
    assert_eq!(removed.action, "member.removed");
    assert_eq!(removed.target, format!("account/{}", gone.account_id));
    assert_eq!(json(&removed.before)["role"], "user");
    assert_eq!(removed.after, "");
    assert_eq!(transferred.action, "workspace.ownership_transferred");
    assert_eq!(
        json(&transferred.before)["owner"],
        owner.account_id.as_str()
    );
    assert_eq!(json(&transferred.after)["owner"], admin.account_id.as_str());
    assert_eq!(transferred.actor, owner.account_id);
}
backend_test!(the_states_before_and_after_are_recorded_for_settings_removal_and_ownership);

async fn a_workspace_created_by_a_service_names_the_service_as_the_actor(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;

    // Act
    let ws = system
        .client
        .clone()
        .create_workspace(as_service(pb::CreateWorkspaceRequest {
            name: "Provisioned MSP".into(),
            owner_account_id: owner.account_id.clone(),
            request_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .workspace
        .unwrap();
    let listed = events(&system, &owner, &ws.id).await;

    // Assert
    assert_eq!(actions(&listed), vec!["workspace.created"]);
    assert_eq!(listed[0].actor, "service:suite");
    assert_eq!(listed[0].actor_email, "");
    assert_eq!(json(&listed[0].after)["owner"], owner.account_id.as_str());
}
backend_test!(a_workspace_created_by_a_service_names_the_service_as_the_actor);

async fn a_refused_change_leaves_no_event(backend: Backend) {
    // Arrange
    let Scenario {
        system,
        owner,
        admin,
        ws,
        ..
    } = scenario(backend).await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    let before = events(&system, &owner, &ws.id).await;

    // Act
    let demote_owner =
        change_role(&system, &admin, &ws.id, &owner.account_id, pb::Role::User).await;
    let demote_self = change_role(&system, &owner, &ws.id, &owner.account_id, pb::Role::User).await;
    let remove_owner = remove(&system, &admin, &ws.id, &owner.account_id).await;
    let not_owner = transfer(&system, &admin, &ws.id, &admin.account_id).await;
    let to_a_user = transfer(&system, &owner, &ws.id, &user.account_id).await;
    let user_invites = system
        .client
        .clone()
        .invite_member(bearer(
            pb::InviteMemberRequest {
                workspace_id: ws.id.clone(),
                email: "friend@example.com".into(),
                role: pb::Role::User as i32,
                request_id: String::new(),
            },
            &user.access_token,
        ))
        .await;
    let user_disables = disable(&system, &user, &ws.id, &admin.account_id).await;
    let bad_lifetime = set_lifetime(&system, &owner, &ws.id, 60).await;
    let after = events(&system, &owner, &ws.id).await;

    // Assert
    assert_refused(demote_owner, Code::FailedPrecondition, "OWNER_PROTECTED");
    assert_refused(demote_self, Code::FailedPrecondition, "SELF_ROLE_CHANGE");
    assert_refused(remove_owner, Code::FailedPrecondition, "OWNER_PROTECTED");
    assert_refused(not_owner, Code::PermissionDenied, "NOT_OWNER");
    assert_refused(
        to_a_user,
        Code::FailedPrecondition,
        "TARGET_NOT_ACTIVE_ADMIN",
    );
    assert_refused(user_invites, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_refused(user_disables, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_refused(
        bad_lifetime,
        Code::InvalidArgument,
        "INVALID_INVITATION_LIFETIME",
    );
    assert_eq!(after, before);
    let db = database(&system).await;
    assert_eq!(verify_chain(&db, workspace_uuid(&ws)).await.unwrap(), None);
}
backend_test!(a_refused_change_leaves_no_event);

async fn the_chain_verifies_per_workspace_and_an_edited_event_breaks_it(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let alice = system.person("alice@example.com").await;
    let bob = system.person("bob@example.com").await;
    let ours = system.workspace(&alice, "Alice MSP").await;
    let theirs = system.workspace(&bob, "Bob MSP").await;
    // Interleaved events of two workspaces: each has its own chain.
    for n in 0..3 {
        system
            .invite(
                &alice,
                &ours.id,
                &format!("a{n}@example.com"),
                pb::Role::User,
            )
            .await;
        system
            .invite(
                &bob,
                &theirs.id,
                &format!("b{n}@example.com"),
                pb::Role::User,
            )
            .await;
    }
    let db = database(&system).await;
    let intact_ours = verify_chain(&db, workspace_uuid(&ours)).await.unwrap();
    let intact_theirs = verify_chain(&db, workspace_uuid(&theirs)).await.unwrap();

    // Act
    db.execute_unprepared(
        "UPDATE audit_events SET \"after\" = '{}' WHERE seq = 2 \
         AND workspace_id = (SELECT id FROM workspaces WHERE name = 'Alice MSP')",
    )
    .await
    .unwrap();
    let edited = verify_chain(&db, workspace_uuid(&ours)).await.unwrap();
    let untouched = verify_chain(&db, workspace_uuid(&theirs)).await.unwrap();

    // Assert
    assert_eq!(intact_ours, None);
    assert_eq!(intact_theirs, None);
    assert_eq!(edited, Some(2));
    assert_eq!(untouched, None);
}
backend_test!(the_chain_verifies_per_workspace_and_an_edited_event_breaks_it);

async fn deleting_an_event_breaks_the_chain(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    for n in 0..3 {
        system
            .invite(&owner, &ws.id, &format!("u{n}@example.com"), pb::Role::User)
            .await;
    }
    let db = database(&system).await;
    let intact = verify_chain(&db, workspace_uuid(&ws)).await.unwrap();

    // Act
    db.execute_unprepared("DELETE FROM audit_events WHERE seq = 2")
        .await
        .unwrap();
    let broken = verify_chain(&db, workspace_uuid(&ws)).await.unwrap();

    // Assert
    assert_eq!(intact, None);
    let first_bad = broken.expect("a deleted event breaks the chain");
    assert!((2..=3).contains(&first_bad), "{first_bad}");
}
backend_test!(deleting_an_event_breaks_the_chain);

async fn deleting_the_newest_event_breaks_the_chain(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    for n in 0..2 {
        system
            .invite(&owner, &ws.id, &format!("u{n}@example.com"), pb::Role::User)
            .await;
    }
    let db = database(&system).await;

    // Act
    db.execute_unprepared("DELETE FROM audit_events WHERE seq = 3")
        .await
        .unwrap();
    let broken = verify_chain(&db, workspace_uuid(&ws)).await.unwrap();

    // Assert
    assert_eq!(broken, Some(3));
}
backend_test!(deleting_the_newest_event_breaks_the_chain);

async fn events_can_be_filtered_by_action_and_by_actor(backend: Backend) {
    // Arrange
    let Scenario {
        system,
        owner,
        admin,
        ws,
        ..
    } = scenario(backend).await;
    let (by_admin, _) = system
        .invite(&admin, &ws.id, "friend@example.com", pb::Role::User)
        .await;
    set_lifetime(&system, &admin, &ws.id, 3600).await.unwrap();

    // Act
    let invited = list(
        &system,
        &owner,
        &ws.id,
        Query {
            action: "member.invited",
            ..ALL
        },
    )
    .await
    .unwrap()
    .into_inner()
    .events;
    let admins = list(
        &system,
        &owner,
        &ws.id,
        Query {
            actor: &admin.account_id,
            ..ALL
        },
    )
    .await
    .unwrap()
    .into_inner()
    .events;
    let both = list(
        &system,
        &owner,
        &ws.id,
        Query {
            action: "member.invited",
            actor: &admin.account_id,
            ..ALL
        },
    )
    .await
    .unwrap()
    .into_inner()
    .events;
    let unknown = list(
        &system,
        &owner,
        &ws.id,
        Query {
            action: "no.such_action",
            ..ALL
        },
    )
    .await
    .unwrap()
    .into_inner()
    .events;

    // Assert
    assert_eq!(
        actions(&invited),
        vec!["member.invited", "member.invited", "member.invited"]
    );
    assert_eq!(
        actions(&admins),
        vec![
            "workspace.settings_changed",
            "member.invited",
            "invitation.accepted"
        ]
    );
    assert!(admins.iter().all(|e| e.actor == admin.account_id));
    assert_eq!(actions(&both), vec!["member.invited"]);
    assert_eq!(both[0].target, format!("invitation/{}", by_admin.id));
    assert!(unknown.is_empty());
}
backend_test!(events_can_be_filtered_by_action_and_by_actor);

async fn the_log_is_paged_newest_first_without_gaps_or_repeats(backend: Backend) {
    // Arrange
    let Scenario {
        system, owner, ws, ..
    } = scenario(backend).await;
    for n in 0..3 {
        system
            .invite(&owner, &ws.id, &format!("u{n}@example.com"), pb::Role::User)
            .await;
    }
    let everything = events(&system, &owner, &ws.id).await;

    // Act
    let mut paged = Vec::new();
    let mut page_token = String::new();
    let mut first_page_token = String::new();
    loop {
        let page = list(
            &system,
            &owner,
            &ws.id,
            Query {
                page_size: 2,
                page_token: &page_token,
                ..ALL
            },
        )
        .await
        .unwrap()
        .into_inner();
        assert!(page.events.len() <= 2);
        paged.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        if first_page_token.is_empty() {
            first_page_token = page.next_page_token.clone();
        }
        page_token = page.next_page_token;
    }
    let garbage = list(
        &system,
        &owner,
        &ws.id,
        Query {
            page_token: "garbage",
            ..ALL
        },
    )
    .await;
    let other_filter = list(
        &system,
        &owner,
        &ws.id,
        Query {
            action: "member.invited",
            page_size: 2,
            page_token: &first_page_token,
            ..ALL
        },
    )
    .await;
    let negative = list(
        &system,
        &owner,
        &ws.id,
        Query {
            page_size: -1,
            ..ALL
        },
    )
    .await;

    // Assert
    assert_eq!(everything.len(), 7);
    assert_eq!(paged, everything);
    assert_refused(garbage, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    assert_refused(other_filter, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    assert_refused(negative, Code::InvalidArgument, "INVALID_ARGUMENT");
}
backend_test!(the_log_is_paged_newest_first_without_gaps_or_repeats);

async fn only_tenant_admins_can_read_the_log(backend: Backend) {
    // Arrange
    let Scenario {
        system,
        owner,
        admin,
        ws,
        ..
    } = scenario(backend).await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    let stranger = system.person("stranger@example.com").await;

    // Act
    let by_user = list(&system, &user, &ws.id, ALL).await;
    let by_stranger = list(&system, &stranger, &ws.id, ALL).await;
    let anonymous = system
        .client
        .clone()
        .list_audit_events(Request::new(pb::ListAuditEventsRequest {
            workspace_id: ws.id.clone(),
            ..Default::default()
        }))
        .await;
    let by_admin = list(&system, &admin, &ws.id, ALL).await;

    // Assert
    assert_refused(by_user, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_refused(by_stranger, Code::NotFound, "WORKSPACE_NOT_FOUND");
    assert_refused(anonymous, Code::Unauthenticated, "TOKEN_MISSING");
    assert!(by_admin.is_ok(), "{by_admin:?}");
}
backend_test!(only_tenant_admins_can_read_the_log);

async fn no_event_holds_an_invitation_token_or_an_access_token(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (invitation, first_token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    system.identity.clock.advance(chrono::Duration::seconds(61));
    resend(&system, &owner, &ws.id, &invitation.id)
        .await
        .unwrap();
    let mails = system.mail.wait_for(2, Duration::from_secs(10)).await;
    let second_token = invitation_token(&mails[1].text_body().unwrap());
    let newcomer = system.person("new@example.com").await;

    // Act
    accept(&system, &newcomer, &second_token).await.unwrap();
    let listed = events(&system, &owner, &ws.id).await;

    // Assert
    assert_eq!(
        actions(&listed),
        vec![
            "invitation.accepted",
            "invitation.resent",
            "member.invited",
            "workspace.created"
        ]
    );
    let secrets = [
        first_token.as_str(),
        second_token.as_str(),
        owner.access_token.as_str(),
        newcomer.access_token.as_str(),
        PASSWORD,
    ];
    for event in &listed {
        let fields = [
            &event.actor,
            &event.actor_email,
            &event.action,
            &event.target,
            &event.before,
            &event.after,
            &event.client_ip,
            &event.trace_id,
            &event.hash,
        ];
        for secret in secrets {
            // A prefix catches a truncated copy too.
            let prefix = &secret[..16.min(secret.len())];
            for field in fields {
                assert!(!field.contains(prefix), "{secret:?} in {event:?}");
            }
        }
    }
}
backend_test!(no_event_holds_an_invitation_token_or_an_access_token);
