//! Who may do what: CheckPermission and ListPermissions, Require MFA,
//! tenant isolation, tokens, and what service principals may call.

use chrono::Duration;
use recapp_proto::{identity::v1 as ipb, membership::v1 as pb};
use recapp_tests::{
    Backend, backend_test,
    identity::{bearer, reason},
    membership::{MembershipClient, Person, TestSystem, as_service},
};
use tonic::{Code, Request};
use uuid::Uuid;

use super::calls::{
    Reply, assert_refused, change_role, disable, enable, get_member, get_workspace, invite, join,
    list_page, members, remove, require_mfa, transfer,
};

const ADMIN: i32 = pb::Role::TenantAdmin as i32;
const USER: i32 = pb::Role::User as i32;

async fn check(
    client: &MembershipClient,
    request: Request<pb::CheckPermissionRequest>,
) -> Reply<pb::CheckPermissionResponse> {
    client
        .clone()
        .check_permission(request)
        .await
        .map(|r| r.into_inner())
}

fn ask(
    workspace_id: &str,
    account_id: &str,
    permission: pb::Permission,
    second_factor: bool,
) -> pb::CheckPermissionRequest {
    pb::CheckPermissionRequest {
        workspace_id: workspace_id.into(),
        account_id: account_id.into(),
        permission: permission as i32,
        second_factor,
    }
}

/// A service asks whether `who` may do `permission` in the workspace.
async fn service_check(
    system: &TestSystem,
    workspace_id: &str,
    who: &Person,
    permission: pb::Permission,
    second_factor: bool,
) -> pb::CheckPermissionResponse {
    check(
        &system.client,
        as_service(ask(
            workspace_id,
            &who.account_id,
            permission,
            second_factor,
        )),
    )
    .await
    .unwrap_or_else(|e| panic!("check_permission: {e:?}"))
}

fn allowed(r: &pb::CheckPermissionResponse) -> bool {
    r.allowed && r.denial_reason.is_empty()
}

fn denied(r: &pb::CheckPermissionResponse, why: &str) -> bool {
    !r.allowed && r.denial_reason == why
}

async fn a_service_is_told_an_admin_may_manage_users(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;

    // Act
    let for_admin =
        service_check(&system, &ws.id, &admin, pb::Permission::ManageUsers, false).await;
    let for_owner = service_check(
        &system,
        &ws.id,
        &owner,
        pb::Permission::ManageIntegrations,
        false,
    )
    .await;

    // Assert
    assert!(allowed(&for_admin), "{for_admin:?}");
    assert!(allowed(&for_owner), "{for_owner:?}");
}
backend_test!(a_service_is_told_an_admin_may_manage_users);

async fn a_service_is_told_a_user_may_view_the_dashboard_but_not_manage_integrations(
    backend: Backend,
) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;

    // Act
    let dashboard =
        service_check(&system, &ws.id, &user, pb::Permission::ViewDashboard, false).await;
    let read = service_check(
        &system,
        &ws.id,
        &user,
        pb::Permission::ReadIntegrations,
        false,
    )
    .await;
    let manage = service_check(
        &system,
        &ws.id,
        &user,
        pb::Permission::ManageIntegrations,
        false,
    )
    .await;
    let users = service_check(&system, &ws.id, &user, pb::Permission::ManageUsers, false).await;

    // Assert
    assert!(allowed(&dashboard), "{dashboard:?}");
    assert!(allowed(&read), "{read:?}");
    assert!(denied(&manage, "ROLE"), "{manage:?}");
    assert!(denied(&users, "ROLE"), "{users:?}");
}
backend_test!(a_service_is_told_a_user_may_view_the_dashboard_but_not_manage_integrations);

async fn a_service_is_told_a_non_member_is_not_a_member(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let stranger = system.person("stranger@example.com").await;

    // Act
    let stranger_here = service_check(
        &system,
        &ws.id,
        &stranger,
        pb::Permission::ViewDashboard,
        false,
    )
    .await;
    let owner_elsewhere = service_check(
        &system,
        &Uuid::now_v7().to_string(),
        &owner,
        pb::Permission::ViewDashboard,
        false,
    )
    .await;

    // Assert
    assert!(denied(&stranger_here, "NOT_MEMBER"), "{stranger_here:?}");
    assert!(
        denied(&owner_elsewhere, "NOT_MEMBER"),
        "{owner_elsewhere:?}"
    );
}
backend_test!(a_service_is_told_a_non_member_is_not_a_member);

async fn a_disabled_member_is_denied_on_the_very_next_check(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;
    let before = service_check(&system, &ws.id, &admin, pb::Permission::ManageUsers, false).await;
    assert!(allowed(&before), "{before:?}");

    // Act
    disable(&system.client, &owner, &ws.id, &admin.account_id)
        .await
        .unwrap();
    let next = service_check(&system, &ws.id, &admin, pb::Permission::ManageUsers, false).await;
    let view = service_check(&system, &ws.id, &admin, pb::Permission::ViewDashboard, true).await;
    enable(&system.client, &owner, &ws.id, &admin.account_id)
        .await
        .unwrap();
    let after = service_check(&system, &ws.id, &admin, pb::Permission::ManageUsers, false).await;

    // Assert
    assert!(denied(&next, "MEMBER_DISABLED"), "{next:?}");
    assert!(denied(&view, "MEMBER_DISABLED"), "{view:?}");
    assert!(allowed(&after), "{after:?}");
}
backend_test!(a_disabled_member_is_denied_on_the_very_next_check);

async fn a_check_follows_a_role_change_on_the_very_next_call(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;

    // Act
    change_role(&system.client, &owner, &ws.id, &user.account_id, ADMIN)
        .await
        .unwrap();
    let promoted =
        service_check(&system, &ws.id, &user, pb::Permission::ManageApiKeys, false).await;
    remove(&system.client, &owner, &ws.id, &user.account_id)
        .await
        .unwrap();
    let removed = service_check(&system, &ws.id, &user, pb::Permission::ViewDashboard, false).await;

    // Assert
    assert!(allowed(&promoted), "{promoted:?}");
    assert!(denied(&removed, "NOT_MEMBER"), "{removed:?}");
}
backend_test!(a_check_follows_a_role_change_on_the_very_next_call);

async fn with_require_mfa_a_check_needs_the_second_factor(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person_with_mfa("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    let before = service_check(&system, &ws.id, &user, pb::Permission::ViewDashboard, false).await;
    assert!(allowed(&before), "{before:?}");
    require_mfa(&system.client, &owner, &ws.id, true)
        .await
        .unwrap();

    // Act
    let without = service_check(&system, &ws.id, &user, pb::Permission::ViewDashboard, false).await;
    let with = service_check(&system, &ws.id, &user, pb::Permission::ViewDashboard, true).await;
    let owner_with = service_check(
        &system,
        &ws.id,
        &owner,
        pb::Permission::ModifySettings,
        true,
    )
    .await;

    // Assert
    assert!(denied(&without, "MFA_REQUIRED"), "{without:?}");
    assert!(allowed(&with), "{with:?}");
    assert!(allowed(&owner_with), "{owner_with:?}");
}
backend_test!(with_require_mfa_a_check_needs_the_second_factor);

async fn a_check_needs_an_account_id_from_a_service_and_a_catalog_permission(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let c = &system.client;

    // Act
    let no_account = check(
        c,
        as_service(ask(&ws.id, "", pb::Permission::ViewDashboard, false)),
    )
    .await;
    let bad_account = check(
        c,
        as_service(ask(&ws.id, "nope", pb::Permission::ViewDashboard, false)),
    )
    .await;
    let unspecified = check(
        c,
        as_service(ask(
            &ws.id,
            &owner.account_id,
            pb::Permission::Unspecified,
            false,
        )),
    )
    .await;
    let mut unknown = ask(
        &ws.id,
        &owner.account_id,
        pb::Permission::Unspecified,
        false,
    );
    unknown.permission = 99;
    let unknown = check(c, as_service(unknown)).await;
    let bad_workspace = check(
        c,
        as_service(ask(
            "nope",
            &owner.account_id,
            pb::Permission::ViewDashboard,
            false,
        )),
    )
    .await;
    let person_unspecified = check(
        c,
        bearer(
            ask(&ws.id, "", pb::Permission::Unspecified, false),
            &owner.access_token,
        ),
    )
    .await;

    // Assert
    for refused in [
        no_account,
        bad_account,
        unspecified,
        unknown,
        bad_workspace,
        person_unspecified,
    ] {
        assert_refused(refused, Code::InvalidArgument, "INVALID_ARGUMENT");
    }
}
backend_test!(a_check_needs_an_account_id_from_a_service_and_a_catalog_permission);

async fn a_person_may_check_themselves_but_not_another_account(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    let c = &system.client;

    // Act
    let implicit = check(
        c,
        bearer(
            ask(&ws.id, "", pb::Permission::ViewReports, false),
            &user.access_token,
        ),
    )
    .await
    .unwrap();
    let explicit = check(
        c,
        bearer(
            ask(
                &ws.id,
                &user.account_id,
                pb::Permission::ConfigureRules,
                false,
            ),
            &user.access_token,
        ),
    )
    .await
    .unwrap();
    let other = check(
        c,
        bearer(
            ask(
                &ws.id,
                &owner.account_id,
                pb::Permission::ViewDashboard,
                false,
            ),
            &user.access_token,
        ),
    )
    .await;
    let admin_asks_about_user = check(
        c,
        bearer(
            ask(
                &ws.id,
                &user.account_id,
                pb::Permission::ViewDashboard,
                false,
            ),
            &owner.access_token,
        ),
    )
    .await;

    // Assert
    assert!(allowed(&implicit), "{implicit:?}");
    assert!(denied(&explicit, "ROLE"), "{explicit:?}");
    assert_eq!(other.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(
        admin_asks_about_user.unwrap_err().code(),
        Code::PermissionDenied
    );
}
backend_test!(a_person_may_check_themselves_but_not_another_account);

async fn list_permissions_gives_ten_to_an_admin_and_three_to_a_user(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    let list = |who: Person| {
        let client = system.client.clone();
        let ws = ws.id.clone();
        async move {
            client
                .clone()
                .list_permissions(bearer(
                    pb::ListPermissionsRequest { workspace_id: ws },
                    &who.access_token,
                ))
                .await
                .map(|r| r.into_inner())
        }
    };

    // Act
    let admin = list(owner.clone()).await.unwrap();
    let plain = list(user.clone()).await.unwrap();
    disable(&system.client, &owner, &ws.id, &user.account_id)
        .await
        .unwrap();
    let disabled = list(user.clone()).await;

    // Assert
    assert_eq!(admin.role, ADMIN);
    let mut got = admin.permissions.clone();
    got.sort();
    assert_eq!(got, (1..=10).collect::<Vec<i32>>());
    assert_eq!(plain.role, USER);
    let mut got = plain.permissions.clone();
    got.sort();
    assert_eq!(
        got,
        [
            pb::Permission::ViewDashboard as i32,
            pb::Permission::ViewReports as i32,
            pb::Permission::ReadIntegrations as i32,
        ]
    );
    assert_refused(disabled, Code::PermissionDenied, "MEMBER_DISABLED");
}
backend_test!(list_permissions_gives_ten_to_an_admin_and_three_to_a_user);

async fn an_admin_without_totp_cannot_require_mfa(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;

    // Act
    let refused = require_mfa(&system.client, &owner, &ws.id, true).await;

    // Assert
    assert_refused(refused, Code::FailedPrecondition, "MFA_ENROLLMENT_REQUIRED");
    let now = get_workspace(&system.client, &owner, &ws.id).await.unwrap();
    assert!(!now.settings.unwrap().require_mfa);
}
backend_test!(an_admin_without_totp_cannot_require_mfa);

async fn require_mfa_lets_in_only_second_factor_sign_ins_until_turned_off(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person_with_mfa("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let plain = system
        .member(&owner, &ws.id, "plain@example.com", pb::Role::User)
        .await;
    let secure = system.person_with_mfa("secure@example.com").await;
    join(&system, &owner, &ws.id, &secure, pb::Role::User).await;
    // `late` enrolls TOTP in one session; another session, begun with the
    // password only, then refreshes to a token that shows TOTP but no otp.
    let mut late = system.person("late@example.com").await;
    join(&system, &owner, &ws.id, &late, pb::Role::TenantAdmin).await;
    let other_session = system
        .identity
        .sign_in("late@example.com", recapp_tests::membership::PASSWORD)
        .await;
    system.begin_and_confirm_totp(&mut late).await;
    let refreshed = system
        .identity
        .client
        .clone()
        .refresh_session(ipb::RefreshSessionRequest {
            refresh_token: other_session.refresh_token,
            client_info: None,
        })
        .await
        .unwrap()
        .into_inner()
        .session
        .unwrap();
    let late_password_only = Person {
        access_token: refreshed.access_token,
        ..late.clone()
    };

    // Act
    let turned_on = require_mfa(&system.client, &owner, &ws.id, true)
        .await
        .unwrap();
    let plain_in = get_workspace(&system.client, &plain, &ws.id).await;
    let late_password_in = get_workspace(&system.client, &late_password_only, &ws.id).await;
    let late_otp_in = get_workspace(&system.client, &late, &ws.id).await;
    let secure_in = get_workspace(&system.client, &secure, &ws.id).await;
    let cards = members(&system, &owner, &ws.id, pb::MemberStatus::Active).await;

    // Assert
    assert!(turned_on.settings.unwrap().require_mfa);
    assert_refused(
        plain_in,
        Code::FailedPrecondition,
        "MFA_ENROLLMENT_REQUIRED",
    );
    assert_refused(late_password_in, Code::FailedPrecondition, "MFA_REQUIRED");
    assert_eq!(late_otp_in.unwrap().caller_role, ADMIN);
    assert_eq!(secure_in.unwrap().caller_role, USER);
    assert_refused(
        list_page(
            &system.client,
            &plain,
            &ws.id,
            pb::MemberStatus::Active,
            0,
            "",
        )
        .await,
        Code::FailedPrecondition,
        "MFA_ENROLLMENT_REQUIRED",
    );
    // Admins see who is not compliant.
    let enrolled = |email: &str| {
        cards
            .iter()
            .find(|m| m.email == email)
            .unwrap_or_else(|| panic!("no card for {email}"))
            .mfa_enrolled
    };
    assert!(enrolled("owner@example.com"));
    assert!(enrolled("secure@example.com"));
    assert!(enrolled("late@example.com"));
    assert!(!enrolled("plain@example.com"));
    // An admin signed in without otp cannot act as one.
    assert_refused(
        invite(
            &system.client,
            &late_password_only,
            &ws.id,
            "x@example.com",
            USER,
        )
        .await,
        Code::FailedPrecondition,
        "MFA_REQUIRED",
    );

    // Turning it off lets everyone in again.
    let turned_off = require_mfa(&system.client, &owner, &ws.id, false)
        .await
        .unwrap();
    assert!(!turned_off.settings.unwrap().require_mfa);
    assert_eq!(
        get_workspace(&system.client, &plain, &ws.id)
            .await
            .unwrap()
            .caller_role,
        USER
    );
    assert_eq!(
        get_workspace(&system.client, &late_password_only, &ws.id)
            .await
            .unwrap()
            .caller_role,
        ADMIN
    );
}
backend_test!(require_mfa_lets_in_only_second_factor_sign_ins_until_turned_off);

async fn an_admin_of_one_workspace_sees_nothing_of_another(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let one = system.person("one@example.com").await;
    let w1 = system.workspace(&one, "One").await;
    let two = system.person("two@example.com").await;
    let w2 = system.workspace(&two, "Two").await;
    let w2_user = system
        .member(&two, &w2.id, "user2@example.com", pb::Role::User)
        .await;
    let random = Uuid::now_v7().to_string();
    let c = &system.client;
    let target = w2_user.account_id.as_str();

    // Act
    let mut answers = Vec::new();
    for ws in [w2.id.as_str(), random.as_str()] {
        answers.push(vec![
            get_workspace(c, &one, ws).await.map(|_| ()),
            list_page(c, &one, ws, pb::MemberStatus::Active, 0, "")
                .await
                .map(|_| ()),
            get_member(c, &one, ws, target).await.map(|_| ()),
            change_role(c, &one, ws, target, ADMIN).await.map(|_| ()),
            disable(c, &one, ws, target).await.map(|_| ()),
            remove(c, &one, ws, target).await,
            invite(c, &one, ws, "spy@example.com", ADMIN)
                .await
                .map(|_| ()),
            require_mfa(c, &one, ws, false).await.map(|_| ()),
            transfer(c, &one, ws, target).await.map(|_| ()),
        ]);
    }

    // Assert
    let (real, fake) = (&answers[0], &answers[1]);
    for (i, (r, f)) in real.iter().zip(fake).enumerate() {
        let r = r.as_ref().expect_err("W2 is invisible from W1");
        let f = f.as_ref().expect_err("a random workspace does not exist");
        assert_eq!(r.code(), Code::NotFound, "call {i}: {r:?}");
        assert_eq!(reason(r), "WORKSPACE_NOT_FOUND", "call {i}: {r:?}");
        assert_eq!(
            (r.code(), reason(r), r.message()),
            (f.code(), reason(f), f.message()),
            "call {i}: W2 answers exactly as a workspace that does not exist"
        );
    }
    let card = get_member(c, &two, &w2.id, target).await.unwrap();
    assert_eq!(card.role, USER);
    assert_eq!(card.status, pb::MemberStatus::Active as i32);
    assert_eq!(
        get_workspace(c, &one, &w1.id).await.unwrap().caller_role,
        ADMIN
    );
}
backend_test!(an_admin_of_one_workspace_sees_nothing_of_another);

async fn a_member_id_of_another_workspace_is_member_not_found_to_an_admin(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let one = system.person("one@example.com").await;
    let w1 = system.workspace(&one, "One").await;
    let w1_member = system
        .member(&one, &w1.id, "user1@example.com", pb::Role::TenantAdmin)
        .await;
    let two = system.person("two@example.com").await;
    let w2 = system.workspace(&two, "Two").await;
    let w2_user = system
        .member(&two, &w2.id, "user2@example.com", pb::Role::User)
        .await;
    let c = &system.client;
    let id = w1_member.account_id.as_str();

    // Act
    let admin_get = get_member(c, &two, &w2.id, id).await;
    let admin_change = change_role(c, &two, &w2.id, id, USER).await;
    let admin_disable = disable(c, &two, &w2.id, id).await;
    let admin_remove = remove(c, &two, &w2.id, id).await;
    let user_change = change_role(c, &w2_user, &w2.id, id, USER).await;

    // Assert
    assert_refused(admin_get, Code::NotFound, "MEMBER_NOT_FOUND");
    assert_refused(admin_change, Code::NotFound, "MEMBER_NOT_FOUND");
    assert_refused(admin_disable, Code::NotFound, "MEMBER_NOT_FOUND");
    assert_refused(admin_remove, Code::NotFound, "MEMBER_NOT_FOUND");
    assert_refused(user_change, Code::PermissionDenied, "PERMISSION_DENIED");
    let card = get_member(c, &one, &w1.id, id).await.unwrap();
    assert_eq!(card.role, ADMIN);
    assert_eq!(card.status, pb::MemberStatus::Active as i32);
}
backend_test!(a_member_id_of_another_workspace_is_member_not_found_to_an_admin);

async fn missing_garbage_and_expired_tokens_are_unauthenticated(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let c = &system.client;
    let as_token = |token: &str| Person {
        access_token: token.to_owned(),
        ..owner.clone()
    };
    let mut tampered = owner.access_token.clone();
    let mid = tampered.rfind('.').unwrap() + 5;
    let flipped = if tampered.as_bytes()[mid] == b'A' {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(mid..mid + 1, flipped);

    // Act
    let missing = c
        .clone()
        .get_workspace(Request::new(pb::GetWorkspaceRequest {
            workspace_id: ws.id.clone(),
        }))
        .await;
    let empty = get_workspace(c, &as_token(""), &ws.id).await;
    let garbage = get_workspace(c, &as_token("garbage"), &ws.id).await;
    let jwt_shaped = get_workspace(c, &as_token("eyJhbGciOiJub25lIn0.e30."), &ws.id).await;
    let forged = get_workspace(c, &as_token(&tampered), &ws.id).await;
    let fresh = get_workspace(c, &owner, &ws.id).await;
    system.identity.clock.advance(Duration::seconds(301));
    let expired_get = get_workspace(c, &owner, &ws.id).await;
    let expired_list = list_page(c, &owner, &ws.id, pb::MemberStatus::Active, 0, "").await;
    let expired_check = check(
        c,
        bearer(
            ask(&ws.id, "", pb::Permission::ViewDashboard, false),
            &owner.access_token,
        ),
    )
    .await;

    // Assert
    assert_refused(missing, Code::Unauthenticated, "TOKEN_MISSING");
    assert_refused(empty, Code::Unauthenticated, "TOKEN_MISSING");
    assert_refused(garbage, Code::Unauthenticated, "TOKEN_INVALID");
    assert_refused(jwt_shaped, Code::Unauthenticated, "TOKEN_INVALID");
    assert_refused(forged, Code::Unauthenticated, "TOKEN_INVALID");
    assert!(fresh.is_ok(), "{fresh:?}");
    assert_refused(expired_get, Code::Unauthenticated, "TOKEN_EXPIRED");
    assert_refused(expired_list, Code::Unauthenticated, "TOKEN_EXPIRED");
    assert_refused(expired_check, Code::Unauthenticated, "TOKEN_EXPIRED");
}
backend_test!(missing_garbage_and_expired_tokens_are_unauthenticated);

async fn a_service_may_create_a_workspace_for_an_owner_but_not_list_its_members(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let c = &system.client;
    let create = |owner_account_id: &str| {
        as_service(pb::CreateWorkspaceRequest {
            name: "Provisioned MSP".into(),
            owner_account_id: owner_account_id.into(),
            request_id: String::new(),
        })
    };

    // Act
    let created = c
        .clone()
        .create_workspace(create(&owner.account_id))
        .await
        .unwrap()
        .into_inner()
        .workspace
        .unwrap();
    let listed = c
        .clone()
        .list_workspaces(bearer(
            pb::ListWorkspacesRequest {
                page_size: 0,
                page_token: String::new(),
            },
            &owner.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    let service_lists = c
        .clone()
        .list_members(as_service(pb::ListMembersRequest {
            workspace_id: created.id.clone(),
            status: 0,
            page_size: 0,
            page_token: String::new(),
        }))
        .await;
    let service_gets = c
        .clone()
        .get_workspace(as_service(pb::GetWorkspaceRequest {
            workspace_id: created.id.clone(),
        }))
        .await;
    let service_without_owner = c.clone().create_workspace(create("")).await;
    let service_unknown_owner = c
        .clone()
        .create_workspace(create(&Uuid::now_v7().to_string()))
        .await;
    let person_naming_owner = c
        .clone()
        .create_workspace(bearer(
            pb::CreateWorkspaceRequest {
                name: "Sneaky".into(),
                owner_account_id: owner.account_id.clone(),
                request_id: String::new(),
            },
            &owner.access_token,
        ))
        .await;

    // Assert
    assert_eq!(created.owner_account_id, owner.account_id);
    assert_eq!(created.name, "Provisioned MSP");
    assert_eq!(created.caller_role, pb::Role::Unspecified as i32);
    assert_eq!(listed.workspaces.len(), 1);
    assert_eq!(listed.workspaces[0].id, created.id);
    assert_eq!(listed.workspaces[0].caller_role, ADMIN);
    let cards = members(&system, &owner, &created.id, pb::MemberStatus::Active).await;
    assert_eq!(cards.len(), 1);
    assert!(cards[0].is_owner);
    assert_eq!(cards[0].role, ADMIN);
    assert_refused(service_lists, Code::PermissionDenied, "PEOPLE_ONLY");
    assert_refused(service_gets, Code::PermissionDenied, "PEOPLE_ONLY");
    assert_refused(
        service_without_owner,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_refused(
        service_unknown_owner,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    );
    assert_eq!(
        person_naming_owner.unwrap_err().code(),
        Code::PermissionDenied
    );
}
backend_test!(a_service_may_create_a_workspace_for_an_owner_but_not_list_its_members);
