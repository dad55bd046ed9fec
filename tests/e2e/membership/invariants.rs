//! The workspace's rules: the owner is always an active Tenant Admin, there
//! is always one, and ownership moves only to an active admin; also under
//! concurrent changes (PostgreSQL is what matters in production).

use recapp_proto::membership::v1 as pb;
use recapp_tests::{Backend, backend_test, membership::TestSystem};
use tonic::Code;
use uuid::Uuid;

use super::calls::{
    Op, assert_refused, assert_rules_hold, change_role, code_reason, disable, emails, get_member,
    get_workspace, invite, is_clear_refusal, members, mv, race, refusal, remove, transfer, wins,
};

const ADMIN: i32 = pb::Role::TenantAdmin as i32;
const USER: i32 = pb::Role::User as i32;

async fn the_owner_cannot_be_demoted_disabled_or_removed_even_by_another_admin(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;
    let c = &system.client;
    let o = owner.account_id.as_str();

    // Act
    let demoted = change_role(c, &admin, &ws.id, o, USER).await;
    let disabled = disable(c, &admin, &ws.id, o).await;
    let removed = remove(c, &admin, &ws.id, o).await;
    let self_disabled = disable(c, &owner, &ws.id, o).await;
    let self_removed = remove(c, &owner, &ws.id, o).await;

    // Assert
    assert_refused(demoted, Code::FailedPrecondition, "OWNER_PROTECTED");
    assert_refused(disabled, Code::FailedPrecondition, "OWNER_PROTECTED");
    assert_refused(removed, Code::FailedPrecondition, "OWNER_PROTECTED");
    assert_refused(self_disabled, Code::FailedPrecondition, "OWNER_PROTECTED");
    assert_refused(self_removed, Code::FailedPrecondition, "OWNER_PROTECTED");
    let card = get_member(c, &admin, &ws.id, o).await.unwrap();
    assert_eq!(card.role, ADMIN);
    assert_eq!(card.status, pb::MemberStatus::Active as i32);
    assert!(card.is_owner);
    assert_rules_hold(&system, &owner, &ws.id).await;
}
backend_test!(the_owner_cannot_be_demoted_disabled_or_removed_even_by_another_admin);

async fn only_the_owner_can_transfer_ownership(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;
    let other = system
        .member(&owner, &ws.id, "other@example.com", pb::Role::TenantAdmin)
        .await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    let c = &system.client;

    // Act
    let to_self = transfer(c, &admin, &ws.id, &admin.account_id).await;
    let to_other = transfer(c, &admin, &ws.id, &other.account_id).await;
    let by_user = transfer(c, &user, &ws.id, &user.account_id).await;

    // Assert
    assert_refused(to_self, Code::PermissionDenied, "NOT_OWNER");
    assert_refused(to_other, Code::PermissionDenied, "NOT_OWNER");
    assert_refused(by_user, Code::PermissionDenied, "NOT_OWNER");
    let now = get_workspace(c, &owner, &ws.id).await.unwrap();
    assert_eq!(now.owner_account_id, owner.account_id);
}
backend_test!(only_the_owner_can_transfer_ownership);

async fn ownership_moves_only_to_an_active_admin(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let user = system
        .member(&owner, &ws.id, "user@example.com", pb::Role::User)
        .await;
    let disabled_admin = system
        .member(&owner, &ws.id, "off@example.com", pb::Role::TenantAdmin)
        .await;
    disable(&system.client, &owner, &ws.id, &disabled_admin.account_id)
        .await
        .unwrap();
    let stranger = system.person("stranger@example.com").await;
    let c = &system.client;

    // Act
    let to_user = transfer(c, &owner, &ws.id, &user.account_id).await;
    let to_disabled = transfer(c, &owner, &ws.id, &disabled_admin.account_id).await;
    let to_stranger = transfer(c, &owner, &ws.id, &stranger.account_id).await;
    let to_nobody = transfer(c, &owner, &ws.id, &Uuid::now_v7().to_string()).await;

    // Assert
    assert_refused(to_user, Code::FailedPrecondition, "TARGET_NOT_ACTIVE_ADMIN");
    assert_refused(
        to_disabled,
        Code::FailedPrecondition,
        "TARGET_NOT_ACTIVE_ADMIN",
    );
    assert_refused(to_stranger, Code::NotFound, "MEMBER_NOT_FOUND");
    assert_refused(to_nobody, Code::NotFound, "MEMBER_NOT_FOUND");
    let now = get_workspace(c, &owner, &ws.id).await.unwrap();
    assert_eq!(now.owner_account_id, owner.account_id);
    assert_rules_hold(&system, &owner, &ws.id).await;
}
backend_test!(ownership_moves_only_to_an_active_admin);

async fn after_a_transfer_the_old_owner_can_be_demoted_and_the_new_one_cannot(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let old = system.person("old@example.com").await;
    let ws = system.workspace(&old, "Acme MSP").await;
    let new = system
        .member(&old, &ws.id, "new@example.com", pb::Role::TenantAdmin)
        .await;
    let c = &system.client;

    // Act
    let moved = transfer(c, &old, &ws.id, &new.account_id).await.unwrap();
    let new_protected = change_role(c, &old, &ws.id, &new.account_id, USER).await;
    let back = transfer(c, &old, &ws.id, &old.account_id).await;
    let old_demoted = change_role(c, &new, &ws.id, &old.account_id, USER).await;

    // Assert
    assert_eq!(moved.owner_account_id, new.account_id);
    assert_refused(new_protected, Code::FailedPrecondition, "OWNER_PROTECTED");
    assert_refused(back, Code::PermissionDenied, "NOT_OWNER");
    let demoted = old_demoted.unwrap();
    assert_eq!(demoted.role, USER);
    assert!(!demoted.is_owner);
    let cards = members(&system, &new, &ws.id, pb::MemberStatus::Active).await;
    let new_card = cards
        .iter()
        .find(|m| m.account_id == new.account_id)
        .unwrap();
    assert!(new_card.is_owner);
    assert_eq!(new_card.role, ADMIN);
    assert_refused(
        invite(c, &old, &ws.id, "x@example.com", USER).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_rules_hold(&system, &new, &ws.id).await;
}
backend_test!(after_a_transfer_the_old_owner_can_be_demoted_and_the_new_one_cannot);

async fn an_owner_and_an_admin_demoting_each_other_at_once_leave_the_owner_in_charge(
    backend: Backend,
) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let owner = system.person("owner@example.com").await;
    let ws = system.workspace(&owner, "Acme MSP").await;
    let admin = system
        .member(&owner, &ws.id, "admin@example.com", pb::Role::TenantAdmin)
        .await;

    for round in 0..5 {
        // Act
        let replies = race(
            &system,
            &ws.id,
            vec![
                mv(&owner, Op::Demote, &admin),
                mv(&admin, Op::Demote, &owner),
            ],
        )
        .await;

        // Assert
        assert_eq!(wins(&replies), 1, "round {round}: {replies:?}");
        assert!(replies[0].is_ok(), "round {round}: the owner's call wins");
        let lost = refusal(&replies[1], "the admin demoting the owner");
        let (code, reason) = code_reason(&lost);
        assert!(
            (code, reason.as_str()) == (Code::FailedPrecondition, "OWNER_PROTECTED")
                || (code, reason.as_str()) == (Code::PermissionDenied, "PERMISSION_DENIED"),
            "round {round}: {lost:?}"
        );
        let a = get_member(&system.client, &owner, &ws.id, &admin.account_id)
            .await
            .unwrap();
        assert_eq!(a.role, USER);
        assert_rules_hold(&system, &owner, &ws.id).await;
        assert_eq!(
            get_workspace(&system.client, &owner, &ws.id)
                .await
                .unwrap()
                .owner_account_id,
            owner.account_id
        );

        // Reset for the next round.
        change_role(&system.client, &owner, &ws.id, &admin.account_id, ADMIN)
            .await
            .unwrap();
    }
}
backend_test!(an_owner_and_an_admin_demoting_each_other_at_once_leave_the_owner_in_charge);

async fn twenty_parallel_changes_leave_the_owner_an_active_admin(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let o = system.person("owner@example.com").await;
    let ws = system.workspace(&o, "Acme MSP").await;
    let mut a = Vec::new();
    for i in 0..8 {
        a.push(
            system
                .member(
                    &o,
                    &ws.id,
                    &format!("a{i}@example.com"),
                    pb::Role::TenantAdmin,
                )
                .await,
        );
    }
    // The owner's changes each land whatever the order; every attack on the
    // owner fails whatever the order (OWNER_PROTECTED, or the attacker has
    // lost the right).
    let owner_moves = vec![
        mv(&o, Op::Demote, &a[0]),
        mv(&o, Op::Demote, &a[1]),
        mv(&o, Op::Disable, &a[1]),
        mv(&o, Op::Disable, &a[2]),
        mv(&o, Op::Demote, &a[2]),
        mv(&o, Op::Disable, &a[3]),
        mv(&o, Op::Demote, &a[3]),
        mv(&o, Op::Remove, &a[4]),
        mv(&o, Op::Remove, &a[5]),
        mv(&o, Op::Demote, &a[6]),
        mv(&o, Op::Disable, &a[7]),
        mv(&o, Op::Demote, &a[7]),
    ];
    let attacks = vec![
        mv(&a[6], Op::Demote, &o),
        mv(&a[6], Op::Disable, &o),
        mv(&a[6], Op::Remove, &o),
        mv(&a[7], Op::Demote, &o),
        mv(&a[7], Op::Disable, &o),
        mv(&a[7], Op::Remove, &o),
        mv(&a[0], Op::Demote, &o),
        mv(&a[4], Op::Remove, &o),
    ];
    let owner_count = owner_moves.len();
    let mut moves = owner_moves;
    moves.extend(attacks);
    assert_eq!(moves.len(), 20);

    // Act
    let replies = race(&system, &ws.id, moves).await;

    // Assert
    assert_eq!(wins(&replies), owner_count, "{replies:?}");
    for (i, reply) in replies.iter().enumerate() {
        if i < owner_count {
            assert!(reply.is_ok(), "owner move {i}: {reply:?}");
        } else {
            let status = refusal(reply, "an attack on the owner");
            assert!(is_clear_refusal(&status), "attack {i}: {status:?}");
        }
    }
    assert_rules_hold(&system, &o, &ws.id).await;
    let active = members(&system, &o, &ws.id, pb::MemberStatus::Active).await;
    let disabled = members(&system, &o, &ws.id, pb::MemberStatus::Disabled).await;
    assert_eq!(
        emails(&active),
        ["a0@example.com", "a6@example.com", "owner@example.com"]
    );
    assert_eq!(
        emails(&disabled),
        [
            "a1@example.com",
            "a2@example.com",
            "a3@example.com",
            "a7@example.com"
        ]
    );
    let admins: Vec<&pb::Member> = active.iter().filter(|m| m.role == ADMIN).collect();
    assert_eq!(admins.len(), 1);
    assert_eq!(admins[0].account_id, o.account_id);
    assert!(disabled.iter().all(|m| m.role == USER), "{disabled:?}");
}
backend_test!(twenty_parallel_changes_leave_the_owner_an_active_admin);

async fn a_demote_racing_a_remove_of_the_same_member_ends_with_the_member_removed(
    backend: Backend,
) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let o = system.person("owner@example.com").await;
    let ws = system.workspace(&o, "Acme MSP").await;
    let b = system
        .member(&o, &ws.id, "b@example.com", pb::Role::TenantAdmin)
        .await;
    let mut targets = Vec::new();
    for i in 0..3 {
        targets.push(
            system
                .member(
                    &o,
                    &ws.id,
                    &format!("x{i}@example.com"),
                    pb::Role::TenantAdmin,
                )
                .await,
        );
    }
    let mut moves = Vec::new();
    for x in &targets {
        moves.push(mv(&o, Op::Remove, x));
        moves.push(mv(&b, Op::Demote, x));
    }

    // Act
    let replies = race(&system, &ws.id, moves).await;

    // Assert
    for (i, pair) in replies.chunks(2).enumerate() {
        assert!(pair[0].is_ok(), "remove of x{i}: {:?}", pair[0]);
        if let Err(status) = &pair[1] {
            assert_eq!(
                code_reason(status),
                (Code::NotFound, "MEMBER_NOT_FOUND".to_owned()),
                "demote of x{i}"
            );
        }
    }
    for x in &targets {
        assert_refused(
            get_member(&system.client, &o, &ws.id, &x.account_id).await,
            Code::NotFound,
            "MEMBER_NOT_FOUND",
        );
        assert_refused(
            get_workspace(&system.client, x, &ws.id).await,
            Code::NotFound,
            "WORKSPACE_NOT_FOUND",
        );
    }
    let active = members(&system, &o, &ws.id, pb::MemberStatus::Active).await;
    assert_eq!(emails(&active), ["b@example.com", "owner@example.com"]);
    assert!(
        members(&system, &o, &ws.id, pb::MemberStatus::Disabled)
            .await
            .is_empty()
    );
    assert_rules_hold(&system, &o, &ws.id).await;
}
backend_test!(a_demote_racing_a_remove_of_the_same_member_ends_with_the_member_removed);

async fn two_admins_demoting_and_removing_each_other_at_once_leave_exactly_one_winner(
    backend: Backend,
) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let o = system.person("owner@example.com").await;
    let ws = system.workspace(&o, "Acme MSP").await;
    let mut pairs = Vec::new();
    for i in 0..3 {
        let a = system
            .member(
                &o,
                &ws.id,
                &format!("a{i}@example.com"),
                pb::Role::TenantAdmin,
            )
            .await;
        let b = system
            .member(
                &o,
                &ws.id,
                &format!("b{i}@example.com"),
                pb::Role::TenantAdmin,
            )
            .await;
        pairs.push((a, b));
    }
    let mut moves = Vec::new();
    for (a, b) in &pairs {
        moves.push(mv(a, Op::Demote, b));
        moves.push(mv(b, Op::Remove, a));
    }

    // Act
    let replies = race(&system, &ws.id, moves).await;

    // Assert
    for (i, (reply, (a, b))) in replies.chunks(2).zip(&pairs).enumerate() {
        assert_eq!(wins(reply), 1, "pair {i}: {reply:?}");
        let a_card = get_member(&system.client, &o, &ws.id, &a.account_id).await;
        let b_card = get_member(&system.client, &o, &ws.id, &b.account_id)
            .await
            .unwrap();
        if reply[0].is_ok() {
            // a demoted b first: b, now a User, may not remove anyone.
            assert_eq!(
                code_reason(&refusal(&reply[1], "b removing a")),
                (Code::PermissionDenied, "PERMISSION_DENIED".to_owned())
            );
            assert_eq!(a_card.unwrap().role, ADMIN);
            assert_eq!(b_card.role, USER);
        } else {
            // b removed a first: a is no member any more.
            assert_eq!(
                code_reason(&refusal(&reply[0], "a demoting b")),
                (Code::NotFound, "WORKSPACE_NOT_FOUND".to_owned())
            );
            assert_refused(a_card, Code::NotFound, "MEMBER_NOT_FOUND");
            assert_eq!(b_card.role, ADMIN);
        }
    }
    assert_rules_hold(&system, &o, &ws.id).await;
}
backend_test!(two_admins_demoting_and_removing_each_other_at_once_leave_exactly_one_winner);

async fn disabling_and_demoting_the_other_admins_at_once_leaves_only_the_owner_as_admin(
    backend: Backend,
) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let o = system.person("owner@example.com").await;
    let ws = system.workspace(&o, "Acme MSP").await;
    let a = system
        .member(&o, &ws.id, "a@example.com", pb::Role::TenantAdmin)
        .await;
    let b = system
        .member(&o, &ws.id, "b@example.com", pb::Role::TenantAdmin)
        .await;

    // Act
    let replies = race(
        &system,
        &ws.id,
        vec![
            mv(&o, Op::Disable, &a),
            mv(&o, Op::Demote, &b),
            mv(&a, Op::Demote, &o),
            mv(&b, Op::Disable, &o),
            mv(&a, Op::Disable, &b),
            mv(&b, Op::Demote, &a),
        ],
    )
    .await;

    // Assert
    assert!(replies[0].is_ok(), "{:?}", replies[0]);
    assert!(replies[1].is_ok(), "{:?}", replies[1]);
    for attack in &replies[2..4] {
        assert!(is_clear_refusal(&refusal(attack, "an attack on the owner")));
    }
    // a and b race each other and the owner: at most one of them lands.
    assert!(wins(&replies[4..]) <= 1, "{replies:?}");
    for cross in &replies[4..] {
        if let Err(status) = cross {
            assert!(is_clear_refusal(status), "{status:?}");
        }
    }
    let active = members(&system, &o, &ws.id, pb::MemberStatus::Active).await;
    let admins: Vec<&pb::Member> = active.iter().filter(|m| m.role == ADMIN).collect();
    assert_eq!(admins.len(), 1, "{active:?}");
    assert_eq!(admins[0].account_id, o.account_id);
    let a_card = get_member(&system.client, &o, &ws.id, &a.account_id)
        .await
        .unwrap();
    assert_eq!(a_card.status, pb::MemberStatus::Disabled as i32);
    let b_card = get_member(&system.client, &o, &ws.id, &b.account_id)
        .await
        .unwrap();
    assert_eq!(b_card.role, USER);
    assert_rules_hold(&system, &o, &ws.id).await;
}
backend_test!(disabling_and_demoting_the_other_admins_at_once_leaves_only_the_owner_as_admin);

async fn a_transfer_racing_a_demote_of_the_new_owner_has_exactly_one_winner(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let o = system.person("owner@example.com").await;
    let ws = system.workspace(&o, "Acme MSP").await;
    let a = system
        .member(&o, &ws.id, "a@example.com", pb::Role::TenantAdmin)
        .await;

    // Act
    let replies = race(
        &system,
        &ws.id,
        vec![mv(&o, Op::Transfer, &a), mv(&o, Op::Demote, &a)],
    )
    .await;

    // Assert
    assert_eq!(wins(&replies), 1, "{replies:?}");
    let now = get_workspace(&system.client, &a, &ws.id).await.unwrap();
    if replies[0].is_ok() {
        assert_eq!(
            code_reason(&refusal(&replies[1], "demote of the new owner")),
            (Code::FailedPrecondition, "OWNER_PROTECTED".to_owned())
        );
        assert_eq!(now.owner_account_id, a.account_id);
        assert_eq!(now.caller_role, ADMIN);
        assert_rules_hold(&system, &a, &ws.id).await;
    } else {
        assert_eq!(
            code_reason(&refusal(&replies[0], "transfer to a demoted admin")),
            (
                Code::FailedPrecondition,
                "TARGET_NOT_ACTIVE_ADMIN".to_owned()
            )
        );
        assert_eq!(now.owner_account_id, o.account_id);
        assert_eq!(now.caller_role, USER);
        assert_rules_hold(&system, &o, &ws.id).await;
    }
}
backend_test!(a_transfer_racing_a_demote_of_the_new_owner_has_exactly_one_winner);

async fn a_transfer_racing_the_new_owner_demoting_the_old_one_keeps_the_rules(backend: Backend) {
    // Arrange
    let system = TestSystem::spawn(backend).await;
    let o = system.person("owner@example.com").await;
    let ws = system.workspace(&o, "Acme MSP").await;
    let a = system
        .member(&o, &ws.id, "a@example.com", pb::Role::TenantAdmin)
        .await;

    // Act
    let replies = race(
        &system,
        &ws.id,
        vec![mv(&o, Op::Transfer, &a), mv(&a, Op::Demote, &o)],
    )
    .await;

    // Assert
    assert!(replies[0].is_ok(), "the transfer always lands: {replies:?}");
    let o_card = get_member(&system.client, &a, &ws.id, &o.account_id)
        .await
        .unwrap();
    match &replies[1] {
        Ok(()) => assert_eq!(o_card.role, USER),
        Err(status) => {
            assert_eq!(
                code_reason(status),
                (Code::FailedPrecondition, "OWNER_PROTECTED".to_owned())
            );
            assert_eq!(o_card.role, ADMIN);
        }
    }
    assert!(!o_card.is_owner);
    let now = get_workspace(&system.client, &a, &ws.id).await.unwrap();
    assert_eq!(now.owner_account_id, a.account_id);
    assert_rules_hold(&system, &a, &ws.id).await;
}
backend_test!(a_transfer_racing_the_new_owner_demoting_the_old_one_keeps_the_rules);
