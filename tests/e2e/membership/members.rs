//! The Users page: role changes, disable, enable, remove, the member list
//! and its cards, and what a User may not do.

use std::collections::HashSet;

use chrono::Duration;
use recapp_proto::membership::v1 as pb;
use recapp_tests::{
    Backend, backend_test,
    identity::bearer,
    membership::{Person, TestSystem},
};
use tonic::Code;
use uuid::Uuid;

use super::calls::{
    assert_refused, change_role, disable, emails, enable, get_member, get_workspace, invite, join,
    list_page, members, remove, require_mfa,
};

const ADMIN: i32 = pb::Role::TenantAdmin as i32;
const USER: i32 = pb::Role::User as i32;

async fn a_user_promoted_to_admin_can_invite_on_the_very_next_call(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    assert_refused(
        invite(&system.client, &user, &ws.id, "first@example.com", USER).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );

    // Act
    let card = change_role(&system.client, &owner, &ws.id, &user.account_id, ADMIN)
        .await
        .unwrap();
    let invited = invite(&system.client, &user, &ws.id, "next@example.com", USER).await;

    // Assert
    assert_eq!(card.role, ADMIN);
    assert_eq!(invited.unwrap().email, "next@example.com");
    let seen = get_workspace(&system.client, &user, &ws.id).await.unwrap();
    assert_eq!(seen.caller_role, ADMIN);
}
backend_test!(a_user_promoted_to_admin_can_invite_on_the_very_next_call);

async fn an_admin_demoted_to_user_is_refused_invite_on_the_very_next_call(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;
    invite(&system.client, &admin, &ws.id, "first@example.com", USER)
        .await
        .unwrap();

    // Act
    let card = change_role(&system.client, &owner, &ws.id, &admin.account_id, USER)
        .await
        .unwrap();
    let refused = invite(&system.client, &admin, &ws.id, "second@example.com", USER).await;

    // Assert
    assert_eq!(card.role, USER);
    assert_refused(refused, Code::PermissionDenied, "PERMISSION_DENIED");
    let seen = get_workspace(&system.client, &admin, &ws.id).await.unwrap();
    assert_eq!(seen.caller_role, USER);
}
backend_test!(an_admin_demoted_to_user_is_refused_invite_on_the_very_next_call);

async fn nobody_can_change_their_own_role(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;

    // Act
    let owner_demotes_self =
        change_role(&system.client, &owner, &ws.id, &owner.account_id, USER).await;
    let admin_demotes_self =
        change_role(&system.client, &admin, &ws.id, &admin.account_id, USER).await;
    let admin_keeps_self =
        change_role(&system.client, &admin, &ws.id, &admin.account_id, ADMIN).await;

    // Assert
    for refused in [owner_demotes_self, admin_demotes_self, admin_keeps_self] {
        assert_refused(refused, Code::FailedPrecondition, "SELF_ROLE_CHANGE");
    }
    let card = get_member(&system.client, &owner, &ws.id, &admin.account_id)
        .await
        .unwrap();
    assert_eq!(card.role, ADMIN);
}
backend_test!(nobody_can_change_their_own_role);

async fn a_disabled_member_moves_to_the_disabled_tab_and_is_refused_on_the_very_next_call(
    backend: Backend,
) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    get_workspace(&system.client, &user, &ws.id).await.unwrap();

    // Act
    let card = disable(&system.client, &owner, &ws.id, &user.account_id)
        .await
        .unwrap();
    let next_get = get_workspace(&system.client, &user, &ws.id).await;
    let next_list = list_page(
        &system.client,
        &user,
        &ws.id,
        pb::MemberStatus::Active,
        0,
        "",
    )
    .await;

    // Assert
    assert_eq!(card.status, pb::MemberStatus::Disabled as i32);
    assert_refused(next_get, Code::PermissionDenied, "MEMBER_DISABLED");
    assert_refused(next_list, Code::PermissionDenied, "MEMBER_DISABLED");
    let active = members(&system, &owner, &ws.id, pb::MemberStatus::Active).await;
    let disabled = members(&system, &owner, &ws.id, pb::MemberStatus::Disabled).await;
    assert_eq!(emails(&active), ["owner@example.com"]);
    assert_eq!(emails(&disabled), ["user@example.com"]);
    assert_eq!(disabled[0].status, pb::MemberStatus::Disabled as i32);
    let listed = system
        .client
        .clone()
        .list_workspaces(bearer(
            pb::ListWorkspacesRequest {
                page_size: 0,
                page_token: String::new(),
            },
            &user.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.workspaces.is_empty(), "{listed:?}");
}
backend_test!(a_disabled_member_moves_to_the_disabled_tab_and_is_refused_on_the_very_next_call);

async fn an_enabled_member_is_back_under_active_and_gets_in_again(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;
    disable(&system.client, &owner, &ws.id, &admin.account_id)
        .await
        .unwrap();
    assert_refused(
        get_workspace(&system.client, &admin, &ws.id).await,
        Code::PermissionDenied,
        "MEMBER_DISABLED",
    );

    // Act
    let card = enable(&system.client, &owner, &ws.id, &admin.account_id)
        .await
        .unwrap();
    let next = get_workspace(&system.client, &admin, &ws.id).await;

    // Assert
    assert_eq!(card.status, pb::MemberStatus::Active as i32);
    assert_eq!(card.role, ADMIN, "the role survives a disable");
    assert_eq!(next.unwrap().caller_role, ADMIN);
    let active = members(&system, &owner, &ws.id, pb::MemberStatus::Active).await;
    let disabled = members(&system, &owner, &ws.id, pb::MemberStatus::Disabled).await;
    assert_eq!(emails(&active), ["admin@example.com", "owner@example.com"]);
    assert!(disabled.is_empty());
    invite(&system.client, &admin, &ws.id, "new@example.com", USER)
        .await
        .unwrap();
}
backend_test!(an_enabled_member_is_back_under_active_and_gets_in_again);

async fn a_removed_member_gets_not_found_and_needs_a_new_invitation(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;

    // Act
    remove(&system.client, &owner, &ws.id, &user.account_id)
        .await
        .unwrap();
    let next_get = get_workspace(&system.client, &user, &ws.id).await;
    let next_list = list_page(
        &system.client,
        &user,
        &ws.id,
        pb::MemberStatus::Active,
        0,
        "",
    )
    .await;

    // Assert
    assert_refused(next_get, Code::NotFound, "WORKSPACE_NOT_FOUND");
    assert_refused(next_list, Code::NotFound, "WORKSPACE_NOT_FOUND");
    assert_refused(
        get_member(&system.client, &owner, &ws.id, &user.account_id).await,
        Code::NotFound,
        "MEMBER_NOT_FOUND",
    );
    assert_refused(
        enable(&system.client, &owner, &ws.id, &user.account_id).await,
        Code::NotFound,
        "MEMBER_NOT_FOUND",
    );
    let active = members(&system, &owner, &ws.id, pb::MemberStatus::Active).await;
    let disabled = members(&system, &owner, &ws.id, pb::MemberStatus::Disabled).await;
    assert_eq!(emails(&active), ["owner@example.com"]);
    assert!(disabled.is_empty());

    // A new invitation brings them back, with the role it names.
    let rejoined = join(&system, &owner, &ws.id, &user, pb::Role::TenantAdmin).await;
    assert_eq!(rejoined.role, ADMIN);
    assert_eq!(
        get_workspace(&system.client, &user, &ws.id)
            .await
            .unwrap()
            .caller_role,
        ADMIN
    );
}
backend_test!(a_removed_member_gets_not_found_and_needs_a_new_invitation);

async fn a_user_sees_the_members_but_is_refused_every_admin_action(backend: Backend) {
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
    let peer = system
        .member(&owner, &ws.id, "peer@example.com", pb::Role::User)
        .await;
    disable(&system.client, &owner, &ws.id, &peer.account_id)
        .await
        .unwrap();
    let c = &system.client;

    // Act
    let listed = members(&system, &user, &ws.id, pb::MemberStatus::Active).await;
    let refusals = vec![
        (
            "ChangeMemberRole",
            change_role(c, &user, &ws.id, &admin.account_id, USER)
                .await
                .map(|_| ()),
        ),
        (
            "DisableMember",
            disable(c, &user, &ws.id, &admin.account_id)
                .await
                .map(|_| ()),
        ),
        (
            "EnableMember",
            enable(c, &user, &ws.id, &peer.account_id).await.map(|_| ()),
        ),
        (
            "RemoveMember",
            remove(c, &user, &ws.id, &admin.account_id).await,
        ),
        (
            "InviteMember",
            invite(c, &user, &ws.id, "new@example.com", USER)
                .await
                .map(|_| ()),
        ),
        (
            "ListInvitations",
            c.clone()
                .list_invitations(bearer(
                    pb::ListInvitationsRequest {
                        workspace_id: ws.id.clone(),
                        status: 0,
                        page_size: 0,
                        page_token: String::new(),
                    },
                    &user.access_token,
                ))
                .await
                .map(|_| ()),
        ),
        (
            "UpdateWorkspaceSettings",
            require_mfa(c, &user, &ws.id, false).await.map(|_| ()),
        ),
        (
            "ListAuditEvents",
            c.clone()
                .list_audit_events(bearer(
                    pb::ListAuditEventsRequest {
                        workspace_id: ws.id.clone(),
                        action: String::new(),
                        actor: String::new(),
                        page_size: 0,
                        page_token: String::new(),
                    },
                    &user.access_token,
                ))
                .await
                .map(|_| ()),
        ),
    ];

    // Assert
    assert_eq!(
        emails(&listed),
        ["admin@example.com", "owner@example.com", "user@example.com"]
    );
    for (rpc, refused) in refusals {
        let status = refused.expect_err(rpc);
        assert_eq!(status.code(), Code::PermissionDenied, "{rpc}: {status:?}");
        assert_eq!(
            recapp_tests::identity::reason(&status),
            "PERMISSION_DENIED",
            "{rpc}: {status:?}"
        );
    }
    // Nothing changed.
    let admin_card = get_member(c, &owner, &ws.id, &admin.account_id)
        .await
        .unwrap();
    assert_eq!(admin_card.role, ADMIN);
    assert_eq!(admin_card.status, pb::MemberStatus::Active as i32);
    let peer_card = get_member(c, &owner, &ws.id, &peer.account_id)
        .await
        .unwrap();
    assert_eq!(peer_card.status, pb::MemberStatus::Disabled as i32);
}
backend_test!(a_user_sees_the_members_but_is_refused_every_admin_action);

async fn list_members_pages_by_keyset_stably_without_duplicates_or_gaps(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    for i in 0..4 {
        system
            .member(&owner, &ws.id, &format!("m{i}@example.com"), pb::Role::User)
            .await;
    }
    let all = members(&system, &owner, &ws.id, pb::MemberStatus::Active).await;
    assert_eq!(all.len(), 5);

    // Act
    let walk = || async {
        let mut pages = Vec::new();
        let mut token = String::new();
        loop {
            let page = list_page(
                &system.client,
                &owner,
                &ws.id,
                pb::MemberStatus::Active,
                2,
                &token,
            )
            .await
            .unwrap();
            let ids: Vec<String> = page.members.iter().map(|m| m.account_id.clone()).collect();
            pages.push(ids);
            if page.next_page_token.is_empty() {
                return pages;
            }
            assert!(pages.len() < 10, "paging does not end");
            token = page.next_page_token;
        }
    };
    let first = walk().await;
    let second = walk().await;

    // Assert
    let sizes: Vec<usize> = first.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(first, second, "the same pages on a second walk");
    let flat: Vec<String> = first.concat();
    let unique: HashSet<&String> = flat.iter().collect();
    assert_eq!(unique.len(), 5, "no duplicates: {flat:?}");
    let everyone: HashSet<&String> = all.iter().map(|m| &m.account_id).collect();
    assert_eq!(unique, everyone, "complete");
    let in_list_order: Vec<String> = all.iter().map(|m| m.account_id.clone()).collect();
    assert_eq!(flat, in_list_order, "the order of the unpaged list");
}
backend_test!(list_members_pages_by_keyset_stably_without_duplicates_or_gaps);

async fn a_member_joining_mid_walk_is_neither_duplicated_nor_breaks_paging(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    for i in 0..4 {
        system
            .member(&owner, &ws.id, &format!("m{i}@example.com"), pb::Role::User)
            .await;
    }
    let page1 = list_page(
        &system.client,
        &owner,
        &ws.id,
        pb::MemberStatus::Active,
        2,
        "",
    )
    .await
    .unwrap();

    // Act
    system
        .member(&owner, &ws.id, "late@example.com", pb::Role::User)
        .await;
    let mut seen: Vec<String> = page1.members.iter().map(|m| m.account_id.clone()).collect();
    let mut token = page1.next_page_token;
    while !token.is_empty() {
        let page = list_page(
            &system.client,
            &owner,
            &ws.id,
            pb::MemberStatus::Active,
            2,
            &token,
        )
        .await
        .unwrap();
        seen.extend(page.members.iter().map(|m| m.account_id.clone()));
        token = page.next_page_token;
    }

    // Assert
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_by_key(|id| Uuid::parse_str(id).unwrap());
    assert_eq!(seen, sorted, "keyset order");
    assert!(seen.len() == 5 || seen.len() == 6, "{seen:?}");
}
backend_test!(a_member_joining_mid_walk_is_neither_duplicated_nor_breaks_paging);

async fn a_garbage_or_foreign_page_token_is_refused_with_invalid_page_token(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    system
        .member(&owner, &ws.id, "a@example.com", pb::Role::User)
        .await;

    // Act
    let garbage = list_page(
        &system.client,
        &owner,
        &ws.id,
        pb::MemberStatus::Active,
        1,
        "not-a-page-token",
    )
    .await;
    let page = list_page(
        &system.client,
        &owner,
        &ws.id,
        pb::MemberStatus::Active,
        1,
        "",
    )
    .await
    .unwrap();
    let token = page.next_page_token;
    assert!(!token.is_empty());
    let tampered = {
        let mut token = token.clone();
        let mid = token.len() / 2;
        let flipped = if token.as_bytes()[mid] == b'A' {
            "B"
        } else {
            "A"
        };
        token.replace_range(mid..mid + 1, flipped);
        list_page(
            &system.client,
            &owner,
            &ws.id,
            pb::MemberStatus::Active,
            1,
            &token,
        )
        .await
    };
    let other_tab = list_page(
        &system.client,
        &owner,
        &ws.id,
        pb::MemberStatus::Disabled,
        1,
        &token,
    )
    .await;
    let other_ws = system.workspace(&owner, "Other MSP").await;
    let other_workspace = list_page(
        &system.client,
        &owner,
        &other_ws.id,
        pb::MemberStatus::Active,
        1,
        &token,
    )
    .await;
    let negative_size = list_page(
        &system.client,
        &owner,
        &ws.id,
        pb::MemberStatus::Active,
        -1,
        "",
    )
    .await;
    let unknown_status = pb::ListMembersRequest {
        workspace_id: ws.id.clone(),
        status: 7,
        page_size: 0,
        page_token: String::new(),
    };
    let unknown_status = system
        .client
        .clone()
        .list_members(bearer(unknown_status, &owner.access_token))
        .await;

    // Assert
    assert_refused(garbage, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    assert_refused(tampered, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    assert_refused(other_tab, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    assert_refused(other_workspace, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    assert_refused(negative_size, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_refused(unknown_status, Code::InvalidArgument, "INVALID_ARGUMENT");
}
backend_test!(a_garbage_or_foreign_page_token_is_refused_with_invalid_page_token);

async fn a_member_card_carries_email_role_status_join_time_mfa_and_owner(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    // Within the owner's access token lifetime (300 s).
    system.identity.clock.advance(Duration::seconds(120));
    let joined_at = system.identity.now().timestamp();
    let secure = system.person_with_mfa("secure@example.com").await;
    join(&system, &owner, &ws.id, &secure, pb::Role::User).await;
    let plain = system
        .member(&owner, &ws.id, "plain@example.com", pb::Role::TenantAdmin)
        .await;

    // Act
    let active = members(&system, &owner, &ws.id, pb::MemberStatus::Active).await;
    let got = get_member(&system.client, &owner, &ws.id, &secure.account_id)
        .await
        .unwrap();

    // Assert
    let card = |email: &str| {
        active
            .iter()
            .find(|m| m.email == email)
            .unwrap_or_else(|| panic!("no card for {email}: {active:?}"))
            .clone()
    };
    let o = card("owner@example.com");
    assert_eq!(o.account_id, owner.account_id);
    assert_eq!(o.workspace_id, ws.id);
    assert_eq!(o.role, ADMIN);
    assert_eq!(o.status, pb::MemberStatus::Active as i32);
    assert!(o.is_owner);
    assert!(!o.mfa_enrolled);
    assert_eq!(
        o.join_time.unwrap().seconds,
        ws.create_time.unwrap().seconds,
        "the owner joined when the workspace was created"
    );
    let s = card("secure@example.com");
    assert_eq!(s.account_id, secure.account_id);
    assert_eq!(s.role, USER);
    assert_eq!(s.status, pb::MemberStatus::Active as i32);
    assert!(s.mfa_enrolled);
    assert!(!s.is_owner);
    assert_eq!(s.join_time.unwrap().seconds, joined_at);
    assert_eq!(got, s, "GetMember shows the same card");
    let p = card("plain@example.com");
    assert_eq!(p.account_id, plain.account_id);
    assert_eq!(p.role, ADMIN);
    assert!(!p.mfa_enrolled);
    assert!(!p.is_owner);
}
backend_test!(a_member_card_carries_email_role_status_join_time_mfa_and_owner);

async fn an_unknown_or_unspecified_role_is_refused_with_invalid_role(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;

    // Act
    let mut refused = Vec::new();
    for role in [0, 3, 99, -1] {
        refused.push(change_role(&system.client, &owner, &ws.id, &user.account_id, role).await);
    }
    let invite_unspecified = invite(&system.client, &owner, &ws.id, "x@example.com", 0).await;
    let invite_unknown = invite(&system.client, &owner, &ws.id, "x@example.com", 99).await;

    // Assert
    for r in refused {
        assert_refused(r, Code::InvalidArgument, "INVALID_ROLE");
    }
    assert_refused(invite_unspecified, Code::InvalidArgument, "INVALID_ROLE");
    assert_refused(invite_unknown, Code::InvalidArgument, "INVALID_ROLE");
    let card = get_member(&system.client, &owner, &ws.id, &user.account_id)
        .await
        .unwrap();
    assert_eq!(card.role, USER);
}
backend_test!(an_unknown_or_unspecified_role_is_refused_with_invalid_role);

async fn malformed_ids_are_refused_with_invalid_argument(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let c = &system.client;
    let me = owner.account_id.as_str();

    // Act
    let mut results = Vec::new();
    for bad in ["", "not-a-uuid", "123", "'; DROP TABLE memberships; --"] {
        results.push((
            format!("GetWorkspace({bad})"),
            get_workspace(c, &owner, bad).await.map(|_| ()),
        ));
        results.push((
            format!("ListMembers({bad})"),
            list_page(c, &owner, bad, pb::MemberStatus::Active, 0, "")
                .await
                .map(|_| ()),
        ));
        results.push((
            format!("GetMember(ws={bad})"),
            get_member(c, &owner, bad, me).await.map(|_| ()),
        ));
        results.push((
            format!("GetMember(account={bad})"),
            get_member(c, &owner, &ws.id, bad).await.map(|_| ()),
        ));
        results.push((
            format!("ChangeMemberRole(account={bad})"),
            change_role(c, &owner, &ws.id, bad, USER).await.map(|_| ()),
        ));
        results.push((
            format!("DisableMember(account={bad})"),
            disable(c, &owner, &ws.id, bad).await.map(|_| ()),
        ));
        results.push((
            format!("EnableMember(ws={bad})"),
            enable(c, &owner, bad, me).await.map(|_| ()),
        ));
        results.push((
            format!("RemoveMember(account={bad})"),
            remove(c, &owner, &ws.id, bad).await,
        ));
    }

    // Assert
    for (call, result) in results {
        let status = result.expect_err(&call);
        assert_eq!(status.code(), Code::InvalidArgument, "{call}: {status:?}");
        assert_eq!(
            recapp_tests::identity::reason(&status),
            "INVALID_ARGUMENT",
            "{call}: {status:?}"
        );
    }
}
backend_test!(malformed_ids_are_refused_with_invalid_argument);

async fn actions_on_an_account_that_is_not_a_member_get_member_not_found(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let stranger: Person = system.person("stranger@example.com").await;
    let c = &system.client;

    // Act
    let mut results = Vec::new();
    for id in [stranger.account_id.clone(), Uuid::now_v7().to_string()] {
        results.push(get_member(c, &owner, &ws.id, &id).await.map(|_| ()));
        results.push(change_role(c, &owner, &ws.id, &id, ADMIN).await.map(|_| ()));
        results.push(disable(c, &owner, &ws.id, &id).await.map(|_| ()));
        results.push(enable(c, &owner, &ws.id, &id).await.map(|_| ()));
        results.push(remove(c, &owner, &ws.id, &id).await);
    }

    // Assert
    for r in results {
        assert_refused(r, Code::NotFound, "MEMBER_NOT_FOUND");
    }
    assert_refused(
        get_workspace(c, &stranger, &ws.id).await,
        Code::NotFound,
        "WORKSPACE_NOT_FOUND",
    );
}
backend_test!(actions_on_an_account_that_is_not_a_member_get_member_not_found);
