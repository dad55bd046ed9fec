//! The fixes of issue 3's follow-up: permission checks batched on
//! PostgreSQL stay exact and fresh across replicas, the MFA refusal follows
//! identity's current enrollment, request ids execute once under
//! concurrency, expired invitations cannot be cancelled, and only the owner
//! may transfer ownership.

use std::{sync::Arc, time::Duration};

use sea_orm::ConnectionTrait;

use recapp_proto::membership::v1 as pb;
use recapp_tests::{
    Backend, backend_test,
    identity::bearer,
    membership::{MembershipClient, Person, TestSystem, as_service},
};
use tokio::sync::Barrier;
use tonic::Code;

use super::calls::{
    Reply, assert_refused, change_role, disable, get_workspace, join, remove, require_mfa, transfer,
};

async fn check(
    client: &MembershipClient,
    workspace_id: &str,
    account_id: &str,
    permission: pb::Permission,
) -> pb::CheckPermissionResponse {
    client
        .clone()
        .check_permission(as_service(pb::CheckPermissionRequest {
            workspace_id: workspace_id.into(),
            account_id: account_id.into(),
            permission: permission as i32,
            second_factor: false,
        }))
        .await
        .unwrap_or_else(|e| panic!("check_permission: {e:?}"))
        .into_inner()
}

async fn changes_on_one_replica_are_seen_by_the_next_check_on_another(backend: Backend) {
    // Arrange: replica B has answered for each member once already.
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let disabled = system
        .member(&owner, &ws.id, "disabled@example.com", pb::Role::User)
        .await;
    let demoted = system
        .member(&owner, &ws.id, "demoted@example.com", pb::Role::TenantAdmin)
        .await;
    let removed = system
        .member(&owner, &ws.id, "removed@example.com", pb::Role::User)
        .await;
    let (_, b, stop_b) = system.replica().await;
    let view = pb::Permission::ViewDashboard;
    let manage = pb::Permission::ManageUsers;
    assert!(check(&b, &ws.id, &disabled.account_id, view).await.allowed);
    assert!(check(&b, &ws.id, &demoted.account_id, manage).await.allowed);
    assert!(check(&b, &ws.id, &removed.account_id, view).await.allowed);

    // Act: each change on replica A, then at once the next check on B.
    let a = &system.client;
    disable(a, &owner, &ws.id, &disabled.account_id)
        .await
        .unwrap();
    let after_disable = check(&b, &ws.id, &disabled.account_id, view).await;
    change_role(
        a,
        &owner,
        &ws.id,
        &demoted.account_id,
        pb::Role::User as i32,
    )
    .await
    .unwrap();
    let after_demote = check(&b, &ws.id, &demoted.account_id, manage).await;
    remove(a, &owner, &ws.id, &removed.account_id)
        .await
        .unwrap();
    let after_remove = check(&b, &ws.id, &removed.account_id, view).await;

    // Assert
    assert!(!after_disable.allowed);
    assert_eq!(after_disable.denial_reason, "MEMBER_DISABLED");
    assert!(!after_demote.allowed);
    assert_eq!(after_demote.denial_reason, "ROLE");
    assert!(!after_remove.allowed);
    assert_eq!(after_remove.denial_reason, "NOT_MEMBER");
    stop_b.stop();
}
backend_test!(changes_on_one_replica_are_seen_by_the_next_check_on_another);

async fn many_concurrent_checks_each_get_their_own_answer(backend: Backend) {
    // Arrange: an admin, a user, a disabled user and a stranger.
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    let off = system
        .member(&owner, &ws.id, "off@example.com", pb::Role::User)
        .await;
    disable(&system.client, &owner, &ws.id, &off.account_id)
        .await
        .unwrap();
    let stranger = uuid::Uuid::new_v4().to_string();
    let cases: Vec<(String, pb::Permission, bool, &str)> = vec![
        (
            owner.account_id.clone(),
            pb::Permission::ManageUsers,
            true,
            "",
        ),
        (
            user.account_id.clone(),
            pb::Permission::ViewDashboard,
            true,
            "",
        ),
        (
            user.account_id.clone(),
            pb::Permission::ManageUsers,
            false,
            "ROLE",
        ),
        (
            off.account_id.clone(),
            pb::Permission::ViewDashboard,
            false,
            "MEMBER_DISABLED",
        ),
        (stranger, pb::Permission::ViewDashboard, false, "NOT_MEMBER"),
    ];

    // Act: 200 checks at once over 4 connections (batched on PostgreSQL).
    let clients = [
        system.new_client().await,
        system.new_client().await,
        system.new_client().await,
        system.new_client().await,
    ];
    let barrier = Arc::new(Barrier::new(200));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = clients[i % clients.len()].clone();
        let (account, permission, allowed, why) = cases[i % cases.len()].clone();
        let (barrier, workspace_id) = (barrier.clone(), ws.id.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let got = check(&client, &workspace_id, &account, permission).await;
            (got, allowed, why)
        }));
    }

    // Assert
    for task in tasks {
        let (got, allowed, why) = task.await.unwrap();
        assert_eq!(got.allowed, allowed, "{got:?}");
        assert_eq!(got.denial_reason, why, "{got:?}");
    }
}
backend_test!(many_concurrent_checks_each_get_their_own_answer);

/// The check connections PostgreSQL sees for the test's database.
async fn check_connections(db: &sea_orm::DatabaseConnection, terminate: bool) -> i64 {
    let sql = format!(
        "SELECT count({}) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = '{}'",
        if terminate {
            "pg_terminate_backend(pid)"
        } else {
            "*"
        },
        membership_service::service::CHECK_CONNECTION_NAME,
    );
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            sql,
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no row"));
    row.try_get::<i64>("", "n")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// PostgreSQL only: the checks hold their own connections there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_survive_the_database_dropping_their_connections() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    // Arrange: checks have been answered, so their connections are open.
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    let view = pb::Permission::ViewDashboard;
    for _ in 0..4 {
        assert!(
            check(&system.client, &ws.id, &user.account_id, view)
                .await
                .allowed
        );
    }
    let database = system.database.clone();
    let db = sea_orm::Database::connect(&database.url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(check_connections(&db, false).await >= 1);

    // Act: the server ends every check connection (as a restart or a
    // failover would), then checks arrive, at once and one by one.
    let terminated = check_connections(&db, true).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (client, ws_id, account) = (
            system.client.clone(),
            ws.id.clone(),
            user.account_id.clone(),
        );
        tasks.push(tokio::spawn(async move {
            check(&client, &ws_id, &account, view).await
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let then = check(
        &system.client,
        &ws.id,
        &user.account_id,
        pb::Permission::ManageUsers,
    )
    .await;

    // Assert: nothing failed, every answer is right, and stopping the
    // service closes its check connections.
    assert!(terminated >= 1, "no check connection was open");
    assert!(answers.iter().all(|a| a.allowed), "{answers:?}");
    assert!(!then.allowed);
    assert_eq!(then.denial_reason, "ROLE");
    system.stop().await;
    let db = &db;
    let closed = recapp_tests::eventually(Duration::from_secs(10), move || async move {
        check_connections(db, false).await == 0
    })
    .await;
    assert!(closed, "check connections outlived the service");
}

async fn a_token_from_before_enrolling_totp_is_told_to_sign_in_with_the_code(backend: Backend) {
    // Arrange: `late` holds a token issued before enrolling TOTP; the
    // enrollment happened since (with another copy of the session).
    let system = TestSystem::spawn(backend).await;
    let mut owner = system.person("owner@example.com").await;
    system.begin_and_confirm_totp(&mut owner).await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let late = system.person("late@example.com").await;
    join(&system, &owner, &ws.id, &late, pb::Role::User).await;
    let plain = system.person("plain@example.com").await;
    join(&system, &owner, &ws.id, &plain, pb::Role::User).await;
    let old_token = late.clone();
    let mut enrolled = late.clone();
    system.begin_and_confirm_totp(&mut enrolled).await;
    require_mfa(&system.client, &owner, &ws.id, true)
        .await
        .unwrap();

    // Act
    let stale = get_workspace(&system.client, &old_token, &ws.id).await;
    let never_enrolled = get_workspace(&system.client, &plain, &ws.id).await;
    let with_code = get_workspace(&system.client, &enrolled, &ws.id).await;

    // Assert
    assert_refused(stale, Code::FailedPrecondition, "MFA_REQUIRED");
    assert_refused(
        never_enrolled,
        Code::FailedPrecondition,
        "MFA_ENROLLMENT_REQUIRED",
    );
    assert!(with_code.is_ok(), "{with_code:?}");
}
backend_test!(a_token_from_before_enrolling_totp_is_told_to_sign_in_with_the_code);

async fn invite_with_id(
    client: &MembershipClient,
    who: &Person,
    workspace_id: &str,
    email: &str,
    request_id: &str,
) -> Reply<pb::Invitation> {
    client
        .clone()
        .invite_member(bearer(
            pb::InviteMemberRequest {
                workspace_id: workspace_id.into(),
                email: email.into(),
                role: pb::Role::User as i32,
                request_id: request_id.into(),
            },
            &who.access_token,
        ))
        .await
        .map(|r| r.into_inner().invitation.expect("an invitation"))
}

async fn audit_actions(system: &TestSystem, admin: &Person, workspace_id: &str) -> Vec<String> {
    system
        .client
        .clone()
        .list_audit_events(bearer(
            pb::ListAuditEventsRequest {
                workspace_id: workspace_id.into(),
                action: String::new(),
                actor: String::new(),
                page_size: 200,
                page_token: String::new(),
            },
            &admin.access_token,
        ))
        .await
        .unwrap_or_else(|e| panic!("list_audit_events: {e:?}"))
        .into_inner()
        .events
        .into_iter()
        .map(|e| e.action)
        .collect()
}

async fn concurrent_retries_with_one_request_id_execute_once(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let before = audit_actions(&system, &owner, &ws.id).await.len();

    // Act: 8 retries of one InviteMember at once, each on its connection.
    let barrier = Arc::new(Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = system.new_client().await;
        let (barrier, owner, ws_id, request_id) = (
            barrier.clone(),
            owner.clone(),
            ws.id.clone(),
            request_id.clone(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            invite_with_id(&client, &owner, &ws_id, "new@example.com", &request_id).await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.push(task.await.unwrap());
    }

    // Assert: every retry got the one invitation; one event, one email.
    let first = replies[0].clone().unwrap_or_else(|e| panic!("{e:?}"));
    for reply in &replies {
        let invitation = reply.clone().unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(invitation.id, first.id);
    }
    let actions = audit_actions(&system, &owner, &ws.id).await;
    assert_eq!(actions.len(), before + 1, "{actions:?}");
    system.mail.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(system.mail.messages().len(), 1);
}
backend_test!(concurrent_retries_with_one_request_id_execute_once);

async fn a_failed_call_releases_its_request_id(backend: Backend) {
    // Arrange: a User's invite is refused.
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    let request_id = uuid::Uuid::new_v4().to_string();

    // Act
    let refused = invite_with_id(&system.client, &user, &ws.id, "x@example.com", &request_id).await;
    let again = invite_with_id(&system.client, &user, &ws.id, "x@example.com", &request_id).await;

    // Assert: the retry ran again (and was refused again, not stuck).
    assert_refused(refused, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_refused(again, Code::PermissionDenied, "PERMISSION_DENIED");
}
backend_test!(a_failed_call_releases_its_request_id);

async fn an_expired_invitation_cannot_be_cancelled(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (invitation, _) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    system.identity.clock.advance(chrono::Duration::days(8));
    let session = system
        .identity
        .sign_in(&owner.email, recapp_tests::membership::PASSWORD)
        .await;
    let owner = Person {
        access_token: session.access_token,
        ..owner
    };

    // Act
    let cancelled = system
        .client
        .clone()
        .cancel_invitation(bearer(
            pb::CancelInvitationRequest {
                workspace_id: ws.id.clone(),
                invitation_id: invitation.id.clone(),
                request_id: String::new(),
            },
            &owner.access_token,
        ))
        .await
        .map(|r| r.into_inner());

    // Assert
    assert_refused(
        cancelled,
        Code::FailedPrecondition,
        "INVITATION_NOT_PENDING",
    );
}
backend_test!(an_expired_invitation_cannot_be_cancelled);

async fn any_member_but_the_owner_is_told_not_owner(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;

    // Act
    let by_user = transfer(&system.client, &user, &ws.id, &admin.account_id).await;
    let by_admin = transfer(&system.client, &admin, &ws.id, &admin.account_id).await;

    // Assert
    assert_refused(by_user, Code::PermissionDenied, "NOT_OWNER");
    assert_refused(by_admin, Code::PermissionDenied, "NOT_OWNER");
}
backend_test!(any_member_but_the_owner_is_told_not_owner);
