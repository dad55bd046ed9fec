//! Invitation emails through a real SMTP server: what they say, that they
//! survive the server being down or refusing for a while, that each goes
//! out exactly once (also with two replicas), and request-id idempotency.

use std::{collections::HashSet, time::Duration};

use chrono::{DateTime, Utc};
use membership_service::outbox;
use recapp_proto::membership::v1 as pb;
use recapp_tests::{
    Backend, backend_test, eventually,
    identity::{bearer, reason},
    membership::{MembershipClient, Person, TestSystem, invitation_token},
    smtp::{ReceivedMail, SmtpSink},
};
use sea_orm::{Database, EntityTrait};
use tonic::{Code, Response, Status};
use uuid::Uuid;

/// Long enough for a relay polling every 50 ms to have sent a duplicate.
const SETTLE: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------- helpers

fn time(ts: &Option<prost_types::Timestamp>) -> DateTime<Utc> {
    let ts = ts.as_ref().expect("a timestamp");
    DateTime::from_timestamp(ts.seconds, u32::try_from(ts.nanos).unwrap_or(0))
        .expect("a valid timestamp")
}

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

async fn invite_with(
    client: &MembershipClient,
    admin: &Person,
    workspace_id: &str,
    email: &str,
    request_id: &str,
) -> Result<Response<pb::InviteMemberResponse>, Status> {
    client
        .clone()
        .invite_member(bearer(
            pb::InviteMemberRequest {
                workspace_id: workspace_id.into(),
                email: email.into(),
                role: pb::Role::User as i32,
                request_id: request_id.into(),
            },
            &admin.access_token,
        ))
        .await
}

async fn pending(system: &TestSystem, admin: &Person, workspace_id: &str) -> Vec<pb::Invitation> {
    system
        .client
        .clone()
        .list_invitations(bearer(
            pb::ListInvitationsRequest {
                workspace_id: workspace_id.into(),
                status: pb::InvitationStatus::Pending as i32,
                page_size: 200,
                page_token: String::new(),
            },
            &admin.access_token,
        ))
        .await
        .unwrap_or_else(|e| panic!("list_invitations: {e:?}"))
        .into_inner()
        .invitations
}

fn recipients(mails: &[ReceivedMail]) -> Vec<String> {
    let mut all: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    all.sort();
    all
}

fn message_ids(mails: &[ReceivedMail]) -> HashSet<String> {
    mails
        .iter()
        .map(|m| m.header("Message-ID").expect("a Message-ID"))
        .collect()
}

/// How the email words the expiry.
fn expiry_text(expire_time: &Option<prost_types::Timestamp>) -> String {
    time(expire_time)
        .format("%-d %B %Y at %H:%M UTC")
        .to_string()
}

// ---------------------------------------------------------------- content

async fn the_invitation_email_names_the_workspace_inviter_role_link_and_expiry(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("ann@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;

    // Act
    let (user_invitation, user_token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let (admin_invitation, admin_token) = system
        .invite(&owner, &ws.id, "boss@example.com", pb::Role::TenantAdmin)
        .await;
    let mails = system.mail.messages();
    let previewed = system
        .client
        .clone()
        .preview_invitation(pb::PreviewInvitationRequest {
            token: user_token.clone(),
        })
        .await;

    // Assert
    assert_eq!(mails.len(), 2);
    for (mail, to, role, token, invitation) in [
        (
            &mails[0],
            "new@example.com",
            "User",
            &user_token,
            &user_invitation,
        ),
        (
            &mails[1],
            "boss@example.com",
            "Admin",
            &admin_token,
            &admin_invitation,
        ),
    ] {
        assert_eq!(mail.to, vec![to.to_owned()]);
        assert_eq!(mail.from, "no-reply@recapp.test");
        assert!(mail.header("To").unwrap().contains(to), "{mail:?}");
        assert!(
            mail.header("From")
                .unwrap()
                .contains("no-reply@recapp.test")
        );
        let subject = mail.header("Subject").unwrap();
        assert!(subject.contains("Acme MSP"), "{subject}");
        assert!(subject.contains("ann@example.com"), "{subject}");
        assert!(mail.header("Message-ID").is_some());
        let link = format!("https://recapp.test/invite/{token}");
        assert_eq!(token.len(), 43, "{token}");
        let expiry = expiry_text(&invitation.expire_time);
        let text = mail.text_body().expect("a text part");
        let html = mail.html_body().expect("an html part");
        for body in [&text, &html] {
            assert!(body.contains("Acme MSP"), "{body}");
            assert!(body.contains("ann@example.com"), "{body}");
            assert!(body.contains(&format!("as {role}.")), "{body}");
            assert!(body.contains(&link), "{body}");
            assert!(body.contains(&expiry), "{expiry} in {body}");
        }
        assert!(html.contains(&format!(r#"href="{link}""#)), "{html}");
    }
    assert_ne!(user_token, admin_token);
    assert_eq!(previewed.unwrap().into_inner().email, "new@example.com");
}
backend_test!(the_invitation_email_names_the_workspace_inviter_role_link_and_expiry);

async fn a_resent_invitation_email_carries_the_new_link_and_says_the_old_one_is_dead(
    backend: Backend,
) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("ann@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (invitation, old_token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    system
        .identity
        .clock
        .advance(chrono::Duration::hours(1) + chrono::Duration::minutes(1));
    let owner = Person {
        access_token: system
            .identity
            .sign_in("ann@example.com", recapp_tests::membership::PASSWORD)
            .await
            .access_token,
        ..owner
    };

    // Act
    let resent = system
        .client
        .clone()
        .resend_invitation(bearer(
            pb::ResendInvitationRequest {
                workspace_id: ws.id.clone(),
                invitation_id: invitation.id.clone(),
                request_id: String::new(),
            },
            &owner.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .invitation
        .unwrap();
    let mails = system.mail.wait_for(2, Duration::from_secs(10)).await;

    // Assert
    assert_eq!(mails.len(), 2);
    let mail = &mails[1];
    assert_eq!(mail.to, vec!["new@example.com".to_owned()]);
    let text = mail.text_body().unwrap();
    let html = mail.html_body().unwrap();
    let new_token = invitation_token(&text);
    assert_ne!(new_token, old_token);
    let subject = mail.header("Subject").unwrap();
    assert!(subject.contains("Acme MSP"), "{subject}");
    for body in [&text, &html] {
        assert!(
            body.contains(&format!("https://recapp.test/invite/{new_token}")),
            "{body}"
        );
        assert!(!body.contains(&old_token));
        assert!(body.contains(&expiry_text(&resent.expire_time)), "{body}");
        assert!(
            body.contains("earlier invitation link no longer works"),
            "{body}"
        );
    }
    assert_ne!(
        mail.header("Message-ID"),
        mails[0].header("Message-ID"),
        "a new email, not a retry of the first"
    );
}
backend_test!(a_resent_invitation_email_carries_the_new_link_and_says_the_old_one_is_dead);

// ---------------------------------------------------------------- delivery

async fn an_invitation_succeeds_while_smtp_is_down_and_its_email_arrives_once_smtp_is_back(
    backend: Backend,
) {
    // Arrange
    let mut system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let addr = system.mail.addr;
    system.mail.stop().await;

    // Act
    let invited = invite_with(&system.client, &owner, &ws.id, "new@example.com", "").await;
    // A few failed attempts (connection refused) happen meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let listed = pending(&system, &owner, &ws.id).await;
    system.mail = SmtpSink::start_on(addr).await;
    let arrived = system.mail.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(SETTLE).await;

    // Assert
    let invitation = invited.unwrap().into_inner().invitation.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, invitation.id);
    assert_eq!(arrived.len(), 1, "the email arrives once SMTP is back");
    assert_eq!(arrived[0].to, vec!["new@example.com".to_owned()]);
    assert_eq!(system.mail.messages().len(), 1, "and only once");
    let token = invitation_token(&arrived[0].text_body().unwrap());
    let previewed = system
        .client
        .clone()
        .preview_invitation(pb::PreviewInvitationRequest { token })
        .await;
    assert!(previewed.is_ok(), "{previewed:?}");
}
backend_test!(an_invitation_succeeds_while_smtp_is_down_and_its_email_arrives_once_smtp_is_back);

async fn temporary_smtp_refusals_are_retried_and_the_email_arrives_exactly_once(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    system.mail.reject_next(2, 451);

    // Act
    let (_, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    tokio::time::sleep(SETTLE).await;

    // Assert
    let mails = system.mail.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["new@example.com".to_owned()]);
    assert_eq!(token.len(), 43);
    let db = Database::connect(&system.database.url).await.unwrap();
    let rows = outbox::entity::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].status, outbox::entity::Status::Sent);
    assert_eq!(rows[0].attempts, 2, "two refusals, then the delivery");
}
backend_test!(temporary_smtp_refusals_are_retried_and_the_email_arrives_exactly_once);

async fn a_permanently_refused_email_is_not_retried_and_the_invitation_stays_pending(
    backend: Backend,
) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    system.mail.reject_next(1, 550);
    let db = Database::connect(&system.database.url).await.unwrap();

    // Act
    let invited = invite_with(&system.client, &owner, &ws.id, "new@example.com", "").await;
    let failed = eventually(Duration::from_secs(10), || async {
        outbox::entity::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .iter()
            .any(|r| r.status == outbox::entity::Status::Failed)
    })
    .await;
    tokio::time::sleep(SETTLE).await;

    // Assert
    assert!(invited.is_ok(), "{invited:?}");
    assert!(failed, "the outbox row is marked failed");
    assert!(system.mail.messages().is_empty());
    let rows = outbox::entity::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].attempts, 1);
    assert!(!rows[0].last_error.as_deref().unwrap_or("").is_empty());
    assert_eq!(pending(&system, &owner, &ws.id).await.len(), 1);
}
backend_test!(a_permanently_refused_email_is_not_retried_and_the_invitation_stays_pending);

async fn five_invitations_send_five_emails_and_never_a_duplicate(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let expected: Vec<String> = (0..5).map(|n| format!("user{n}@example.com")).collect();

    // Act
    for email in &expected {
        invite_with(&system.client, &owner, &ws.id, email, "")
            .await
            .unwrap();
    }
    let arrived = system.mail.wait_for(5, Duration::from_secs(10)).await;
    tokio::time::sleep(SETTLE).await;
    let settled = system.mail.messages();

    // Assert
    assert_eq!(arrived.len(), 5);
    assert_eq!(settled.len(), 5, "nothing more after waiting");
    assert_eq!(recipients(&settled), expected);
    assert_eq!(message_ids(&settled).len(), 5);
    let tokens: HashSet<String> = settled
        .iter()
        .map(|m| invitation_token(&m.text_body().unwrap()))
        .collect();
    assert_eq!(tokens.len(), 5);
}
backend_test!(five_invitations_send_five_emails_and_never_a_duplicate);

async fn two_replicas_send_each_of_twenty_invitations_exactly_once(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (_, replica, replica_stop) = system.replica().await;
    let expected: Vec<String> = {
        let mut all: Vec<String> = (0..20).map(|n| format!("user{n:02}@example.com")).collect();
        all.sort();
        all
    };

    // Act
    let calls = expected.iter().enumerate().map(|(n, email)| {
        let client = if n % 2 == 0 {
            system.client.clone()
        } else {
            replica.clone()
        };
        let owner = owner.clone();
        let ws_id = ws.id.clone();
        let email = email.clone();
        async move { invite_with(&client, &owner, &ws_id, &email, "").await }
    });
    let results = futures::future::join_all(calls).await;
    let arrived = system.mail.wait_for(20, Duration::from_secs(30)).await;
    tokio::time::sleep(SETTLE).await;
    let settled = system.mail.messages();
    replica_stop.stop();

    // Assert
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(arrived.len(), 20);
    assert_eq!(settled.len(), 20, "no email went out twice");
    assert_eq!(recipients(&settled), expected);
    assert_eq!(message_ids(&settled).len(), 20);
}
backend_test!(two_replicas_send_each_of_twenty_invitations_exactly_once);

// ---------------------------------------------------------------- idempotency

async fn a_retried_invite_with_the_same_request_id_returns_the_same_invitation_and_sends_one_email(
    backend: Backend,
) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let request_id = Uuid::new_v4().to_string();

    // Act
    let first = invite_with(
        &system.client,
        &owner,
        &ws.id,
        "new@example.com",
        &request_id,
    )
    .await
    .unwrap()
    .into_inner();
    let retried = invite_with(
        &system.client,
        &owner,
        &ws.id,
        "new@example.com",
        &request_id,
    )
    .await
    .unwrap()
    .into_inner();
    system.mail.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(SETTLE).await;

    // Assert
    assert_eq!(first, retried);
    assert_eq!(system.mail.messages().len(), 1);
    let listed = pending(&system, &owner, &ws.id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, first.invitation.unwrap().id);
}
backend_test!(
    a_retried_invite_with_the_same_request_id_returns_the_same_invitation_and_sends_one_email
);

async fn a_new_request_id_for_a_pending_address_is_refused_as_pending(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let first_id = Uuid::new_v4().to_string();
    invite_with(&system.client, &owner, &ws.id, "new@example.com", &first_id)
        .await
        .unwrap();

    // Act
    let second_id = Uuid::new_v4().to_string();
    let second = invite_with(
        &system.client,
        &owner,
        &ws.id,
        "new@example.com",
        &second_id,
    )
    .await;
    system.mail.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(SETTLE).await;

    // Assert
    assert_refused(second, Code::AlreadyExists, "INVITATION_PENDING");
    assert_eq!(system.mail.messages().len(), 1);
}
backend_test!(a_new_request_id_for_a_pending_address_is_refused_as_pending);

async fn a_request_id_reused_for_another_method_is_refused(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let request_id = Uuid::new_v4().to_string();
    let invitation = invite_with(
        &system.client,
        &owner,
        &ws.id,
        "new@example.com",
        &request_id,
    )
    .await
    .unwrap()
    .into_inner()
    .invitation
    .unwrap();

    // Act
    let cancelled = system
        .client
        .clone()
        .cancel_invitation(bearer(
            pb::CancelInvitationRequest {
                workspace_id: ws.id.clone(),
                invitation_id: invitation.id.clone(),
                request_id: request_id.clone(),
            },
            &owner.access_token,
        ))
        .await;
    let settings = system
        .client
        .clone()
        .update_workspace_settings(bearer(
            pb::UpdateWorkspaceSettingsRequest {
                workspace_id: ws.id.clone(),
                require_mfa: None,
                invitation_lifetime: Some(prost_types::Duration {
                    seconds: 7200,
                    nanos: 0,
                }),
                request_id: request_id.clone(),
            },
            &owner.access_token,
        ))
        .await;
    let malformed = invite_with(
        &system.client,
        &owner,
        &ws.id,
        "other@example.com",
        "not a request id!",
    )
    .await;

    // Assert
    assert_refused(cancelled, Code::AlreadyExists, "REQUEST_ID_REUSED");
    assert_refused(settings, Code::AlreadyExists, "REQUEST_ID_REUSED");
    assert_refused(malformed, Code::InvalidArgument, "INVALID_ARGUMENT");
    let listed = pending(&system, &owner, &ws.id).await;
    assert_eq!(listed.len(), 1, "the invitation was not cancelled");
    assert_eq!(listed[0].id, invitation.id);
}
backend_test!(a_request_id_reused_for_another_method_is_refused);

async fn the_same_request_id_from_another_admin_is_another_request(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;
    let request_id = Uuid::new_v4().to_string();
    let ours = invite_with(&system.client, &owner, &ws.id, "a@example.com", &request_id)
        .await
        .unwrap()
        .into_inner();

    // Act
    let theirs = invite_with(&system.client, &admin, &ws.id, "b@example.com", &request_id)
        .await
        .unwrap()
        .into_inner();
    system.mail.wait_for(3, Duration::from_secs(10)).await;

    // Assert
    let (ours, theirs) = (ours.invitation.unwrap(), theirs.invitation.unwrap());
    assert_ne!(ours.id, theirs.id);
    assert_eq!(theirs.email, "b@example.com");
    assert_eq!(system.mail.messages().len(), 3);
}
backend_test!(the_same_request_id_from_another_admin_is_another_request);

async fn a_retried_accept_with_the_same_request_id_returns_the_first_answer(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let (_, token) = system
        .invite(&owner, &ws.id, "new@example.com", pb::Role::User)
        .await;
    let newcomer = system.person("new@example.com").await;
    let request_id = Uuid::new_v4().to_string();
    let accept = || {
        let mut client = system.client.clone();
        let request = bearer(
            pb::AcceptInvitationRequest {
                token: token.clone(),
                request_id: request_id.clone(),
            },
            &newcomer.access_token,
        );
        async move { client.accept_invitation(request).await }
    };

    // Act
    let first = accept().await.unwrap().into_inner();
    let retried = accept().await.unwrap().into_inner();

    // Assert
    assert_eq!(first, retried);
    assert_eq!(first.member.unwrap().account_id, newcomer.account_id);
}
backend_test!(a_retried_accept_with_the_same_request_id_returns_the_first_answer);

async fn a_request_id_reused_with_other_contents_is_refused_and_invites_nobody(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let request_id = Uuid::new_v4().to_string();
    invite_with(&system.client, &owner, &ws.id, "a@example.com", &request_id)
        .await
        .unwrap();

    // Act
    let status = invite_with(&system.client, &owner, &ws.id, "b@example.com", &request_id)
        .await
        .unwrap_err();

    // Assert
    assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
    assert_eq!(recapp_tests::identity::reason(&status), "REQUEST_ID_REUSED");
    let pending = system
        .client
        .clone()
        .list_invitations(bearer(
            pb::ListInvitationsRequest {
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
    let emails: Vec<_> = pending
        .invitations
        .iter()
        .map(|i| i.email.as_str())
        .collect();
    assert_eq!(emails, ["a@example.com"]);
}
backend_test!(a_request_id_reused_with_other_contents_is_refused_and_invites_nobody);
