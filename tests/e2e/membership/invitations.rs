//! Invitations end to end: invite, list, preview, accept, resend, cancel,
//! expiry on the injected clock, and every refusal of the contract.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use membership_service::{outbox, store};
use recapp_proto::membership::v1 as pb;
use recapp_tests::{
    Backend, backend_test,
    identity::{bearer, reason},
    membership::{PASSWORD, Person, TestSystem, invitation_token},
};
use sea_orm::{Database, DatabaseConnection, EntityTrait, PaginatorTrait};
use tokio::sync::Barrier;
use tonic::{Code, Response, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

const DEFAULT_LIFETIME: chrono::Duration = chrono::Duration::days(7);

// ---------------------------------------------------------------- helpers

#[track_caller]
fn refusal<T: std::fmt::Debug>(result: Result<Response<T>, Status>) -> Status {
    match result {
        Ok(response) => panic!("expected a refusal, got {:?}", response.into_inner()),
        Err(status) => status,
    }
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(
    result: Result<Response<T>, Status>,
    code: Code,
    expected_reason: &str,
) -> Status {
    let status = refusal(result);
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(&status), expected_reason, "{status:?}");
    status
}

fn time(ts: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let ts = ts.as_ref().expect("a timestamp");
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))
        .expect("a valid timestamp")
}

/// The service keeps milliseconds.
fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn retry_delay(status: &Status) -> Duration {
    status
        .get_error_details()
        .retry_info()
        .and_then(|info| info.retry_delay)
        .unwrap_or_else(|| panic!("no RetryInfo in {status:?}"))
}

async fn invite(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    email: &str,
    role: i32,
) -> Result<Response<pb::InviteMemberResponse>, Status> {
    system
        .client
        .clone()
        .invite_member(bearer(
            pb::InviteMemberRequest {
                workspace_id: workspace_id.into(),
                email: email.into(),
                role,
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

async fn preview(
    system: &TestSystem,
    token: &str,
) -> Result<Response<pb::PreviewInvitationResponse>, Status> {
    system
        .client
        .clone()
        .preview_invitation(pb::PreviewInvitationRequest {
            token: token.into(),
        })
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

async fn list_invitations(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    status: pb::InvitationStatus,
    page_size: i32,
    page_token: &str,
) -> Result<Response<pb::ListInvitationsResponse>, Status> {
    system
        .client
        .clone()
        .list_invitations(bearer(
            pb::ListInvitationsRequest {
                workspace_id: workspace_id.into(),
                status: status as i32,
                page_size,
                page_token: page_token.into(),
            },
            &admin.access_token,
        ))
        .await
}

async fn invitations(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    status: pb::InvitationStatus,
) -> Vec<pb::Invitation> {
    list_invitations(system, admin, workspace_id, status, 200, "")
        .await
        .unwrap_or_else(|e| panic!("list_invitations: {e:?}"))
        .into_inner()
        .invitations
}

async fn members(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    status: pb::MemberStatus,
) -> Vec<pb::Member> {
    system
        .client
        .clone()
        .list_members(bearer(
            pb::ListMembersRequest {
                workspace_id: workspace_id.into(),
                status: status as i32,
                page_size: 200,
                page_token: String::new(),
            },
            &admin.access_token,
        ))
        .await
        .unwrap_or_else(|e| panic!("list_members: {e:?}"))
        .into_inner()
        .members
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

/// A fresh access token at the (advanced) test clock.
async fn signed_in_again(system: &TestSystem, person: &Person) -> Person {
    let session = system.identity.sign_in(&person.email, PASSWORD).await;
    Person {
        access_token: session.access_token,
        ..person.clone()
    }
}

async fn database(system: &TestSystem) -> DatabaseConnection {
    Database::connect(&system.database.url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the membership database: {e}"))
}

/// What a refused call must not leave behind.
#[derive(Debug, PartialEq, Eq)]
struct Written {
    invitations: u64,
    outbox: u64,
    audit_events: u64,
    memberships: u64,
    emails: usize,
}

async fn written(system: &TestSystem, db: &DatabaseConnection) -> Written {
    Written {
        invitations: store::invitation::Entity::find().count(db).await.unwrap(),
        outbox: outbox::entity::Entity::find().count(db).await.unwrap(),
        audit_events: store::audit_event::Entity::find().count(db).await.unwrap(),
        memberships: store::membership::Entity::find().count(db).await.unwrap(),
        emails: system.mail.messages().len(),
    }
}

// ---------------------------------------------------------------- lifecycle

async fn an_invitation_is_listed_as_pending_until_it_is_accepted(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;

    // Act
    let (invitation, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let pending_before = invitations(&system, &owner, &ws.id, pb::InvitationStatus::Pending).await;
    let newcomer = system.person("new@example.com").await;
    let accepted = accept(&system, &newcomer, &token)
        .await
        .unwrap()
        .into_inner();
    let pending_after = invitations(&system, &owner, &ws.id, pb::InvitationStatus::Pending).await;
    let accepted_list = invitations(&system, &owner, &ws.id, pb::InvitationStatus::Accepted).await;

    // Assert
    assert_eq!(pending_before.len(), 1);
    let card = &pending_before[0];
    assert_eq!(card.id, invitation.id);
    assert_eq!(card.workspace_id, ws.id);
    assert_eq!(card.email, "new@example.com");
    assert_eq!(card.role, pb::Role::User as i32);
    assert_eq!(card.status, pb::InvitationStatus::Pending as i32);
    assert_eq!(millis(time(&card.send_time)), millis(system.identity.now()));
    assert_eq!(
        time(&card.expire_time),
        time(&card.send_time) + DEFAULT_LIFETIME
    );
    assert_eq!(card.invited_by_email, "owner@example.com");
    assert_eq!(card.invited_by_account_id, owner.account_id);
    assert_eq!(time(&card.create_time), time(&card.send_time));

    assert!(pending_after.is_empty(), "{pending_after:?}");
    assert_eq!(accepted_list.len(), 1);
    assert_eq!(accepted_list[0].id, invitation.id);
    assert_eq!(
        accepted_list[0].status,
        pb::InvitationStatus::Accepted as i32
    );

    let member = accepted.member.unwrap();
    assert_eq!(member.account_id, newcomer.account_id);
    assert_eq!(member.role, pb::Role::User as i32);
    assert_eq!(member.status, pb::MemberStatus::Active as i32);
    assert_eq!(accepted.workspace.unwrap().id, ws.id);
    let active = members(&system, &owner, &ws.id, pb::MemberStatus::Active).await;
    let card = active
        .iter()
        .find(|m| m.email == "new@example.com")
        .expect("the newcomer is an active member");
    assert_eq!(card.role, pb::Role::User as i32);
    assert!(!card.is_owner);
}
backend_test!(an_invitation_is_listed_as_pending_until_it_is_accepted);

async fn an_invitation_for_an_admin_makes_a_tenant_admin(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;

    // Act
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;
    let invited_by_admin = invite(
        &system,
        &admin,
        &ws.id,
        "third@example.com",
        pb::Role::User as i32,
    )
    .await;

    // Assert
    let active = members(&system, &owner, &ws.id, pb::MemberStatus::Active).await;
    let card = active
        .iter()
        .find(|m| m.account_id == admin.account_id)
        .unwrap();
    assert_eq!(card.role, pb::Role::TenantAdmin as i32);
    let invitation = invited_by_admin.unwrap().into_inner().invitation.unwrap();
    assert_eq!(invitation.invited_by_email, "admin@example.com");
}
backend_test!(an_invitation_for_an_admin_makes_a_tenant_admin);

async fn a_preview_shows_the_offer_and_consumes_nothing(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (invitation, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::TenantAdmin)
        .await;

    // Act
    let first = preview(&system, &token).await.unwrap().into_inner();
    let second = preview(&system, &token).await.unwrap().into_inner();
    let newcomer = system.person("new@example.com").await;
    let accepted = accept(&system, &newcomer, &token).await;

    // Assert
    assert_eq!(first, second);
    assert_eq!(first.workspace_name, "Acme MSP");
    assert_eq!(first.email, "new@example.com");
    assert_eq!(first.role, pb::Role::TenantAdmin as i32);
    assert_eq!(first.expire_time, invitation.expire_time);
    assert_eq!(first.invited_by_email, "owner@example.com");
    let member = accepted.unwrap().into_inner().member.unwrap();
    assert_eq!(member.role, pb::Role::TenantAdmin as i32);
}
backend_test!(a_preview_shows_the_offer_and_consumes_nothing);

async fn an_invitation_expires_after_seven_days_and_the_address_can_be_invited_again(
    backend: Backend,
) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (invitation, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let newcomer = system.person("new@example.com").await;

    // Act
    system
        .identity
        .clock
        .advance(DEFAULT_LIFETIME - chrono::Duration::seconds(1));
    let just_before = preview(&system, &token).await;
    system.identity.clock.advance(chrono::Duration::seconds(1));
    let owner = signed_in_again(&system, &owner).await;
    let newcomer = signed_in_again(&system, &newcomer).await;
    let previewed = preview(&system, &token).await;
    let accepted = accept(&system, &newcomer, &token).await;
    let pending = invitations(&system, &owner, &ws.id, pb::InvitationStatus::Pending).await;
    let expired = invitations(&system, &owner, &ws.id, pb::InvitationStatus::Expired).await;
    let (again, new_token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let accepted_again = accept(&system, &newcomer, &new_token).await;

    // Assert
    assert!(just_before.is_ok(), "{just_before:?}");
    assert_refused(previewed, Code::FailedPrecondition, "INVITATION_EXPIRED");
    assert_refused(accepted, Code::FailedPrecondition, "INVITATION_EXPIRED");
    assert!(pending.is_empty(), "{pending:?}");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id, invitation.id);
    assert_eq!(expired[0].status, pb::InvitationStatus::Expired as i32);
    assert_ne!(again.id, invitation.id);
    assert_eq!(
        millis(time(&again.send_time)),
        millis(system.identity.now())
    );
    assert_eq!(
        time(&again.expire_time),
        time(&again.send_time) + DEFAULT_LIFETIME
    );
    assert!(accepted_again.is_ok(), "{accepted_again:?}");
}
backend_test!(an_invitation_expires_after_seven_days_and_the_address_can_be_invited_again);

async fn a_custom_invitation_lifetime_applies_to_new_invitations(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (earlier, earlier_token) = system
        .invite(&owner, &ws.id, "early@example.com", pb::Role::User)
        .await;

    // Act
    let updated = system
        .client
        .clone()
        .update_workspace_settings(bearer(
            pb::UpdateWorkspaceSettingsRequest {
                workspace_id: ws.id.clone(),
                require_mfa: None,
                invitation_lifetime: Some(prost_types::Duration {
                    seconds: 2 * 3600,
                    nanos: 0,
                }),
                request_id: String::new(),
            },
            &owner.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .workspace
        .unwrap();
    let (later, later_token) = system
        .invite(&owner, &ws.id, "late@example.com", pb::Role::User)
        .await;
    system.identity.clock.advance(chrono::Duration::hours(2));
    let later_preview = preview(&system, &later_token).await;
    let earlier_preview = preview(&system, &earlier_token).await;

    // Assert
    assert_eq!(
        updated.settings.unwrap().invitation_lifetime,
        Some(prost_types::Duration {
            seconds: 7200,
            nanos: 0
        })
    );
    assert_eq!(
        time(&later.expire_time) - time(&later.send_time),
        chrono::Duration::hours(2)
    );
    assert_eq!(
        time(&earlier.expire_time) - time(&earlier.send_time),
        DEFAULT_LIFETIME
    );
    assert_refused(
        later_preview,
        Code::FailedPrecondition,
        "INVITATION_EXPIRED",
    );
    assert!(earlier_preview.is_ok(), "{earlier_preview:?}");
}
backend_test!(a_custom_invitation_lifetime_applies_to_new_invitations);

async fn invitation_lifetimes_outside_one_hour_to_thirty_days_are_refused(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let set = |seconds: i64| {
        let mut client = system.client.clone();
        let request = bearer(
            pb::UpdateWorkspaceSettingsRequest {
                workspace_id: ws.id.clone(),
                require_mfa: None,
                invitation_lifetime: Some(prost_types::Duration { seconds, nanos: 0 }),
                request_id: String::new(),
            },
            &owner.access_token,
        );
        async move { client.update_workspace_settings(request).await }
    };

    // Act
    let too_short = set(59 * 60).await;
    let too_long = set(31 * 24 * 3600).await;
    let negative = set(-3600).await;
    let unchanged = system
        .client
        .clone()
        .get_workspace(bearer(
            pb::GetWorkspaceRequest {
                workspace_id: ws.id.clone(),
            },
            &owner.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .workspace
        .unwrap();
    let one_hour = set(3600).await;
    let thirty_days = set(30 * 24 * 3600).await;

    // Assert
    for refused in [too_short, too_long, negative] {
        assert_refused(
            refused,
            Code::InvalidArgument,
            "INVALID_INVITATION_LIFETIME",
        );
    }
    assert_eq!(
        unchanged
            .settings
            .unwrap()
            .invitation_lifetime
            .unwrap()
            .seconds,
        7 * 24 * 3600
    );
    assert!(one_hour.is_ok(), "{one_hour:?}");
    assert!(thirty_days.is_ok(), "{thirty_days:?}");
}
backend_test!(invitation_lifetimes_outside_one_hour_to_thirty_days_are_refused);

// ---------------------------------------------------------------- resend

async fn a_resend_kills_the_old_link_and_sends_a_new_one_with_a_new_expiry(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (invitation, old_token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let newcomer = system.person("new@example.com").await;

    // Act
    system.identity.clock.advance(chrono::Duration::seconds(61));
    let resent = resend(&system, &owner, &ws.id, &invitation.id)
        .await
        .unwrap()
        .into_inner()
        .invitation
        .unwrap();
    let mails = system.mail.wait_for(2, Duration::from_secs(10)).await;
    let new_token = invitation_token(&mails[1].text_body().unwrap());
    let old_preview = preview(&system, &old_token).await;
    let old_accept = accept(&system, &newcomer, &old_token).await;
    let pending = invitations(&system, &owner, &ws.id, pb::InvitationStatus::Pending).await;
    let new_accept = accept(&system, &newcomer, &new_token).await;

    // Assert
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1].to, vec!["new@example.com".to_owned()]);
    assert_ne!(new_token, old_token);
    assert_refused(old_preview, Code::NotFound, "INVITATION_INVALID");
    assert_refused(old_accept, Code::NotFound, "INVITATION_INVALID");
    assert_eq!(resent.id, invitation.id);
    assert_eq!(resent.status, pb::InvitationStatus::Pending as i32);
    assert_eq!(
        millis(time(&resent.send_time)),
        millis(system.identity.now())
    );
    assert_eq!(
        time(&resent.expire_time),
        time(&invitation.expire_time) + chrono::Duration::seconds(61)
    );
    assert_eq!(resent.create_time, invitation.create_time);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].send_time, resent.send_time);
    assert_eq!(pending[0].expire_time, resent.expire_time);
    assert!(new_accept.is_ok(), "{new_accept:?}");
}
backend_test!(a_resend_kills_the_old_link_and_sends_a_new_one_with_a_new_expiry);

async fn a_resend_within_the_cooldown_is_refused_with_a_wait_that_suffices(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (invitation, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let db = database(&system).await;
    let before = written(&system, &db).await;

    // Act
    let at_once = resend(&system, &owner, &ws.id, &invitation.id).await;
    system
        .identity
        .clock
        .advance(chrono::Duration::milliseconds(30_500));
    let half_way = resend(&system, &owner, &ws.id, &invitation.id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_refusals = written(&system, &db).await;
    let still_valid = preview(&system, &token).await;
    let half_way = assert_refused(half_way, Code::ResourceExhausted, "RESEND_TOO_SOON");
    let wait = retry_delay(&half_way);
    system
        .identity
        .clock
        .advance(chrono::Duration::from_std(wait).unwrap());
    let after_the_wait = resend(&system, &owner, &ws.id, &invitation.id).await;

    // Assert
    let at_once = assert_refused(at_once, Code::ResourceExhausted, "RESEND_TOO_SOON");
    assert_eq!(retry_delay(&at_once), Duration::from_secs(60));
    assert_eq!(wait, Duration::from_secs(30), "29.5 s left, rounded up");
    assert_eq!(after_refusals, before);
    assert!(still_valid.is_ok(), "{still_valid:?}");
    assert!(after_the_wait.is_ok(), "{after_the_wait:?}");
}
backend_test!(a_resend_within_the_cooldown_is_refused_with_a_wait_that_suffices);

async fn a_workspace_may_send_only_its_hourly_share_of_invitation_emails(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn_with(backend, |settings| {
        settings.policy.invitations_per_hour = 3;
    })
    .await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (first, _) = system
        .invite(&owner, &ws.id, "a@example.com", pb::Role::User)
        .await;
    system.identity.clock.advance(chrono::Duration::minutes(10));
    let owner = signed_in_again(&system, &owner).await;
    system
        .invite(&owner, &ws.id, "b@example.com", pb::Role::User)
        .await;
    system
        .invite(&owner, &ws.id, "c@example.com", pb::Role::User)
        .await;
    let db = database(&system).await;
    let before = written(&system, &db).await;

    // Act
    let fourth = invite(&system, &owner, &ws.id, "d@example.com", 2).await;
    system.identity.clock.advance(chrono::Duration::seconds(61));
    let resent = resend(&system, &owner, &ws.id, &first.id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_refusals = written(&system, &db).await;
    let fourth = assert_refused(fourth, Code::ResourceExhausted, "RESEND_LIMIT");
    let wait = retry_delay(&fourth);
    // The first email leaves the hour 50 minutes after the fourth try.
    system
        .identity
        .clock
        .advance(chrono::Duration::from_std(wait).unwrap() - chrono::Duration::seconds(61));
    let owner = signed_in_again(&system, &owner).await;
    let after_the_wait = invite(&system, &owner, &ws.id, "d@example.com", 2).await;

    // Assert
    assert_refused(resent, Code::ResourceExhausted, "RESEND_LIMIT");
    assert_eq!(wait, Duration::from_secs(50 * 60));
    assert_eq!(after_refusals, before);
    assert!(after_the_wait.is_ok(), "{after_the_wait:?}");
}
backend_test!(a_workspace_may_send_only_its_hourly_share_of_invitation_emails);

// ---------------------------------------------------------------- cancel

async fn a_cancelled_invitation_ends_at_once(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (invitation, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let newcomer = system.person("new@example.com").await;

    // Act
    let cancelled = cancel(&system, &owner, &ws.id, &invitation.id)
        .await
        .unwrap()
        .into_inner()
        .invitation
        .unwrap();
    let accepted = accept(&system, &newcomer, &token).await;
    let previewed = preview(&system, &token).await;
    let cancelled_twice = cancel(&system, &owner, &ws.id, &invitation.id).await;
    system.identity.clock.advance(chrono::Duration::seconds(61));
    let resent = resend(&system, &owner, &ws.id, &invitation.id).await;
    let pending = invitations(&system, &owner, &ws.id, pb::InvitationStatus::Pending).await;
    let cancelled_list =
        invitations(&system, &owner, &ws.id, pb::InvitationStatus::Cancelled).await;
    let active = members(&system, &owner, &ws.id, pb::MemberStatus::Active).await;

    // Assert
    assert_eq!(cancelled.status, pb::InvitationStatus::Cancelled as i32);
    assert_refused(accepted, Code::FailedPrecondition, "INVITATION_CANCELLED");
    assert_refused(previewed, Code::FailedPrecondition, "INVITATION_CANCELLED");
    assert_refused(
        cancelled_twice,
        Code::FailedPrecondition,
        "INVITATION_NOT_PENDING",
    );
    assert_refused(resent, Code::FailedPrecondition, "INVITATION_NOT_PENDING");
    assert!(pending.is_empty(), "{pending:?}");
    assert_eq!(cancelled_list.len(), 1);
    assert_eq!(cancelled_list[0].id, invitation.id);
    assert_eq!(active.len(), 1, "{active:?}");
}
backend_test!(a_cancelled_invitation_ends_at_once);

async fn an_address_can_be_invited_again_after_its_invitation_was_cancelled(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (invitation, _) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    cancel(&system, &owner, &ws.id, &invitation.id)
        .await
        .unwrap();

    // Act
    let (again, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::TenantAdmin)
        .await;
    let newcomer = system.person("new@example.com").await;
    let accepted = accept(&system, &newcomer, &token).await;

    // Assert
    assert_ne!(again.id, invitation.id);
    let member = accepted.unwrap().into_inner().member.unwrap();
    assert_eq!(member.role, pb::Role::TenantAdmin as i32);
}
backend_test!(an_address_can_be_invited_again_after_its_invitation_was_cancelled);

// ---------------------------------------------------------------- accept

async fn only_the_invited_address_can_accept_and_the_link_stays_usable_for_it(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (_, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let stranger = system.person("stranger@example.com").await;
    let db = database(&system).await;
    let before = written(&system, &db).await;

    // Act
    let by_stranger = accept(&system, &stranger, &token).await;
    let after_refusal = written(&system, &db).await;
    let newcomer = system.person("new@example.com").await;
    let by_invitee = accept(&system, &newcomer, &token).await;

    // Assert
    assert_refused(
        by_stranger,
        Code::PermissionDenied,
        "INVITATION_EMAIL_MISMATCH",
    );
    assert_eq!(after_refusal, before);
    assert!(by_invitee.is_ok(), "{by_invitee:?}");
    let active = members(&system, &owner, &ws.id, pb::MemberStatus::Active).await;
    assert!(active.iter().all(|m| m.email != "stranger@example.com"));
}
backend_test!(only_the_invited_address_can_accept_and_the_link_stays_usable_for_it);

async fn the_invited_address_matches_whatever_its_letter_case(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;

    // Act
    let (invitation, token) = system
        .invite(&owner, &ws.id, "New@Example.com", pb::Role::User)
        .await;
    let same_address_other_case = invite(&system, &owner, &ws.id, "NEW@EXAMPLE.COM", 2).await;
    let newcomer = system.person("new@example.com").await;
    let accepted = accept(&system, &newcomer, &token).await;

    // Assert
    assert_eq!(invitation.email, "new@example.com");
    assert_eq!(system.mail.messages()[0].to, vec!["new@example.com"]);
    assert_refused(
        same_address_other_case,
        Code::AlreadyExists,
        "INVITATION_PENDING",
    );
    let member = accepted.unwrap().into_inner().member.unwrap();
    assert_eq!(member.email, "new@example.com");
}
backend_test!(the_invited_address_matches_whatever_its_letter_case);

async fn an_invitation_can_be_accepted_only_once(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (_, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let newcomer = system.person("new@example.com").await;

    // Act
    let first = accept(&system, &newcomer, &token).await;
    let second = accept(&system, &newcomer, &token).await;
    let previewed = preview(&system, &token).await;

    // Assert
    assert!(first.is_ok(), "{first:?}");
    assert_refused(second, Code::FailedPrecondition, "INVITATION_USED");
    assert_refused(previewed, Code::FailedPrecondition, "INVITATION_USED");
}
backend_test!(an_invitation_can_be_accepted_only_once);

async fn concurrent_accepts_by_the_same_person_make_exactly_one_membership(backend: Backend) {
    const CALLERS: usize = 8;
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (_, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let newcomer = system.person("new@example.com").await;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let mut client = system.new_client().await;
        let barrier = barrier.clone();
        let request = bearer(
            pb::AcceptInvitationRequest {
                token: token.clone(),
                request_id: String::new(),
            },
            &newcomer.access_token,
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            client.accept_invitation(request).await
        }));
    }

    // Act
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();

    // Assert
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    for loser in results.into_iter().filter(|r| r.is_err()) {
        assert_refused(loser, Code::FailedPrecondition, "INVITATION_USED");
    }
    let active = members(&system, &owner, &ws.id, pb::MemberStatus::Active).await;
    let memberships = active
        .iter()
        .filter(|m| m.account_id == newcomer.account_id)
        .count();
    assert_eq!(memberships, 1);
    let actions = audit_actions(&system, &owner, &ws.id).await;
    let accepted_events = actions
        .iter()
        .filter(|a| *a == "invitation.accepted")
        .count();
    assert_eq!(accepted_events, 1, "{actions:?}");
}
backend_test!(concurrent_accepts_by_the_same_person_make_exactly_one_membership);

// ---------------------------------------------------------------- refusals

async fn only_one_invitation_may_be_pending_per_address(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let db = database(&system).await;
    let before = written(&system, &db).await;

    // Act
    let second = invite(
        &system,
        &owner,
        &ws.id,
        "new@example.com",
        pb::Role::TenantAdmin as i32,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Assert
    assert_refused(second, Code::AlreadyExists, "INVITATION_PENDING");
    assert_eq!(written(&system, &db).await, before);
    let pending = invitations(&system, &owner, &ws.id, pb::InvitationStatus::Pending).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].role, pb::Role::User as i32);
}
backend_test!(only_one_invitation_may_be_pending_per_address);

async fn inviting_an_active_member_is_refused(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    system
        .member(&owner, &ws.id, "member@example.com", pb::Role::User)
        .await;
    let db = database(&system).await;
    let before = written(&system, &db).await;

    // Act
    let member = invite(&system, &owner, &ws.id, "Member@Example.com", 2).await;
    let the_owner = invite(&system, &owner, &ws.id, "owner@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Assert
    assert_refused(member, Code::AlreadyExists, "ALREADY_MEMBER");
    assert_refused(the_owner, Code::AlreadyExists, "ALREADY_MEMBER");
    assert_eq!(written(&system, &db).await, before);
}
backend_test!(inviting_an_active_member_is_refused);

async fn inviting_a_disabled_member_asks_to_re_enable_them(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let member = system
        .member(&owner, &ws.id, "member@example.com", pb::Role::User)
        .await;
    system
        .client
        .clone()
        .disable_member(bearer(
            pb::DisableMemberRequest {
                workspace_id: ws.id.clone(),
                account_id: member.account_id.clone(),
                request_id: String::new(),
            },
            &owner.access_token,
        ))
        .await
        .unwrap();
    let db = database(&system).await;
    let before = written(&system, &db).await;

    // Act
    let invited = invite(&system, &owner, &ws.id, "member@example.com", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Assert
    assert_refused(
        invited,
        Code::FailedPrecondition,
        "MEMBER_DISABLED_REENABLE",
    );
    assert_eq!(written(&system, &db).await, before);
}
backend_test!(inviting_a_disabled_member_asks_to_re_enable_them);

async fn a_removed_member_can_be_invited_back(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let member = system
        .member(&owner, &ws.id, "member@example.com", pb::Role::User)
        .await;
    system
        .client
        .clone()
        .remove_member(bearer(
            pb::RemoveMemberRequest {
                workspace_id: ws.id.clone(),
                account_id: member.account_id.clone(),
                request_id: String::new(),
            },
            &owner.access_token,
        ))
        .await
        .unwrap();

    // Act
    let (_, token) = system
        .invite(&owner, &ws.id, "member@example.com", pb::Role::User)
        .await;
    let accepted = accept(&system, &member, &token).await;

    // Assert
    assert!(accepted.is_ok(), "{accepted:?}");
}
backend_test!(a_removed_member_can_be_invited_back);

async fn another_workspaces_invitation_is_not_found_exactly_like_an_unknown_id(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let alice = system.person("alice@example.com").await;
    let bob = system.person("bob@example.com").await;
    let ours = system.workspace(&alice, "Alice MSP").await;
    let theirs = system.workspace(&bob, "Bob MSP").await;
    let (their_invitation, their_token) = system
        .invite(&bob, &theirs.id, "new@example.com", pb::Role::User)
        .await;
    system.identity.clock.advance(chrono::Duration::seconds(61));
    let unknown = Uuid::now_v7().to_string();

    // Act
    let resend_theirs = refusal(resend(&system, &alice, &ours.id, &their_invitation.id).await);
    let resend_unknown = refusal(resend(&system, &alice, &ours.id, &unknown).await);
    let cancel_theirs = refusal(cancel(&system, &alice, &ours.id, &their_invitation.id).await);
    let cancel_unknown = refusal(cancel(&system, &alice, &ours.id, &unknown).await);
    let in_their_workspace = cancel(&system, &alice, &theirs.id, &their_invitation.id).await;
    let still_pending = preview(&system, &their_token).await;

    // Assert
    for (theirs, unknown) in [
        (&resend_theirs, &resend_unknown),
        (&cancel_theirs, &cancel_unknown),
    ] {
        assert_eq!(theirs.code(), Code::NotFound);
        assert_eq!(reason(theirs), "INVITATION_NOT_FOUND");
        assert_eq!(theirs.code(), unknown.code());
        assert_eq!(reason(theirs), reason(unknown));
        assert_eq!(theirs.message(), unknown.message());
    }
    assert_refused(in_their_workspace, Code::NotFound, "WORKSPACE_NOT_FOUND");
    assert!(still_pending.is_ok(), "{still_pending:?}");
}
backend_test!(another_workspaces_invitation_is_not_found_exactly_like_an_unknown_id);

async fn a_user_cannot_manage_invitations(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (invitation, _) = system
        .invite(&owner, &ws.id, "pending@example.com", pb::Role::User)
        .await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    system.identity.clock.advance(chrono::Duration::seconds(61));
    let db = database(&system).await;
    let before = written(&system, &db).await;

    // Act
    let invited = invite(&system, &user, &ws.id, "friend@example.com", 2).await;
    let as_admin = invite(&system, &user, &ws.id, "friend@example.com", 1).await;
    let resent = resend(&system, &user, &ws.id, &invitation.id).await;
    let cancelled = cancel(&system, &user, &ws.id, &invitation.id).await;
    let listed =
        list_invitations(&system, &user, &ws.id, pb::InvitationStatus::Pending, 0, "").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Assert
    assert_refused(invited, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_refused(as_admin, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_refused(resent, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_refused(cancelled, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_refused(listed, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_eq!(written(&system, &db).await, before);
}
backend_test!(a_user_cannot_manage_invitations);

async fn malformed_input_is_refused_with_its_own_reason_and_writes_nothing(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let newcomer = system.person("new@example.com").await;
    let db = database(&system).await;
    let before = written(&system, &db).await;
    let well_formed_unknown_token = "A".repeat(43);

    // Act
    let mut bad_emails = Vec::new();
    for email in [
        "",
        "not-an-email",
        "two@@example.com",
        "spaces in@example.com",
        "new@example.com\r\nBcc: x@example.com",
        "@example.com",
    ] {
        bad_emails.push((email, invite(&system, &owner, &ws.id, email, 2).await));
    }
    let too_long = invite(
        &system,
        &owner,
        &ws.id,
        &format!("{}@example.com", "a".repeat(2000)),
        2,
    )
    .await;
    let unspecified_role = invite(&system, &owner, &ws.id, "new@example.com", 0).await;
    let unknown_role = invite(&system, &owner, &ws.id, "new@example.com", 99).await;
    let bad_workspace = invite(&system, &owner, "not-a-uuid", "new@example.com", 2).await;
    let mut bad_tokens = Vec::new();
    for token in ["", "garbage", "!!!!", well_formed_unknown_token.as_str()] {
        bad_tokens.push((
            token,
            preview(&system, token).await.map(|_| ()),
            accept(&system, &newcomer, token).await.map(|_| ()),
        ));
    }
    let bad_page_token = list_invitations(
        &system,
        &owner,
        &ws.id,
        pb::InvitationStatus::Pending,
        10,
        "garbage",
    )
    .await;
    let negative_page_size = list_invitations(
        &system,
        &owner,
        &ws.id,
        pb::InvitationStatus::Pending,
        -1,
        "",
    )
    .await;
    let bad_status = system
        .client
        .clone()
        .list_invitations(bearer(
            pb::ListInvitationsRequest {
                workspace_id: ws.id.clone(),
                status: 42,
                page_size: 0,
                page_token: String::new(),
            },
            &owner.access_token,
        ))
        .await;
    let bad_invitation_id = resend(&system, &owner, &ws.id, "not-a-uuid").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Assert
    for (email, result) in bad_emails {
        let status = refusal(result);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{email:?}: {status:?}"
        );
        assert_eq!(reason(&status), "INVALID_EMAIL", "{email:?}: {status:?}");
    }
    assert_refused(too_long, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_refused(unspecified_role, Code::InvalidArgument, "INVALID_ROLE");
    assert_refused(unknown_role, Code::InvalidArgument, "INVALID_ROLE");
    assert_refused(bad_workspace, Code::InvalidArgument, "INVALID_ARGUMENT");
    for (token, previewed, accepted) in bad_tokens {
        for result in [previewed, accepted] {
            let status = result.expect_err(token);
            assert_eq!(status.code(), Code::NotFound, "{token:?}: {status:?}");
            assert_eq!(reason(&status), "INVITATION_INVALID", "{token:?}");
        }
    }
    assert_refused(bad_page_token, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    assert_refused(
        negative_page_size,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_refused(bad_status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_refused(bad_invitation_id, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(written(&system, &db).await, before);
}
backend_test!(malformed_input_is_refused_with_its_own_reason_and_writes_nothing);

async fn pending_invitations_are_listed_newest_first_page_by_page(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let mut invited = Vec::new();
    for n in 0..5 {
        let (invitation, _) = system
            .invite(
                &owner,
                &ws.id,
                &format!("user{n}@example.com"),
                pb::Role::User,
            )
            .await;
        invited.push(invitation.id);
    }
    let other_list = list_invitations(
        &system,
        &owner,
        &ws.id,
        pb::InvitationStatus::Pending,
        2,
        "",
    )
    .await
    .unwrap()
    .into_inner()
    .next_page_token;

    // Act
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = list_invitations(
            &system,
            &owner,
            &ws.id,
            pb::InvitationStatus::Pending,
            2,
            &page_token,
        )
        .await
        .unwrap()
        .into_inner();
        pages += 1;
        assert!(page.invitations.len() <= 2);
        seen.extend(page.invitations.into_iter().map(|i| i.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let token_for_another_status = list_invitations(
        &system,
        &owner,
        &ws.id,
        pb::InvitationStatus::Accepted,
        2,
        &other_list,
    )
    .await;

    // Assert
    invited.reverse();
    assert_eq!(seen, invited);
    assert_eq!(pages, 3);
    assert_refused(
        token_for_another_status,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
}
backend_test!(pending_invitations_are_listed_newest_first_page_by_page);

async fn concurrent_invitations_to_one_address_make_exactly_one_pending_invitation(
    backend: Backend,
) {
    const CALLERS: usize = 8;
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let mut client = system.new_client().await;
        let barrier = barrier.clone();
        let request = bearer(
            pb::InviteMemberRequest {
                workspace_id: ws.id.clone(),
                email: "new@example.com".into(),
                role: pb::Role::User as i32,
                request_id: String::new(),
            },
            &owner.access_token,
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            client.invite_member(request).await
        }));
    }

    // Act
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    system.mail.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Assert
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    for loser in results.into_iter().filter(|r| r.is_err()) {
        assert_refused(loser, Code::AlreadyExists, "INVITATION_PENDING");
    }
    assert_eq!(
        invitations(&system, &owner, &ws.id, pb::InvitationStatus::Pending)
            .await
            .len(),
        1
    );
    assert_eq!(system.mail.messages().len(), 1);
    let invited_events = audit_actions(&system, &owner, &ws.id)
        .await
        .into_iter()
        .filter(|a| a == "member.invited")
        .count();
    assert_eq!(invited_events, 1);
}
backend_test!(concurrent_invitations_to_one_address_make_exactly_one_pending_invitation);

async fn concurrent_resends_send_exactly_one_new_email(backend: Backend) {
    const CALLERS: usize = 8;
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (invitation, _) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    system.identity.clock.advance(chrono::Duration::seconds(61));
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let mut client = system.new_client().await;
        let barrier = barrier.clone();
        let request = bearer(
            pb::ResendInvitationRequest {
                workspace_id: ws.id.clone(),
                invitation_id: invitation.id.clone(),
                request_id: String::new(),
            },
            &owner.access_token,
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            client.resend_invitation(request).await
        }));
    }

    // Act
    let results: Vec<_> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let mails = system.mail.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Assert
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    for loser in results.into_iter().filter(|r| r.is_err()) {
        assert_refused(loser, Code::ResourceExhausted, "RESEND_TOO_SOON");
    }
    assert_eq!(mails.len(), 2);
    assert_eq!(system.mail.messages().len(), 2);
    let token = invitation_token(&mails[1].text_body().unwrap());
    assert!(preview(&system, &token).await.is_ok());
}
backend_test!(concurrent_resends_send_exactly_one_new_email);
