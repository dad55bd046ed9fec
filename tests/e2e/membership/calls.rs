//! Thin wrappers over the membership RPCs for the member, invariant and
//! access tests: each takes the client to call on (so racing calls can use
//! their own connections) and returns the status on failure.

use std::sync::Arc;

use recapp_proto::membership::v1 as pb;
use recapp_tests::{
    identity::{bearer, reason},
    membership::{MembershipClient, Person, TestSystem},
};
use tokio::sync::Barrier;
use tonic::{Code, Status};

pub type Reply<T> = Result<T, Status>;

/// Asserts a call failed with `code` and the ErrorInfo `reason`.
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(result: Reply<T>, code: Code, expected: &str) {
    match result {
        Ok(value) => panic!("expected {code:?}/{expected}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(reason(&status), expected, "{status:?}");
        }
    }
}

pub async fn get_workspace(
    client: &MembershipClient,
    who: &Person,
    workspace_id: &str,
) -> Reply<pb::Workspace> {
    client
        .clone()
        .get_workspace(bearer(
            pb::GetWorkspaceRequest {
                workspace_id: workspace_id.into(),
            },
            &who.access_token,
        ))
        .await
        .map(|r| r.into_inner().workspace.expect("a workspace"))
}

pub async fn list_page(
    client: &MembershipClient,
    who: &Person,
    workspace_id: &str,
    status: pb::MemberStatus,
    page_size: i32,
    page_token: &str,
) -> Reply<pb::ListMembersResponse> {
    client
        .clone()
        .list_members(bearer(
            pb::ListMembersRequest {
                workspace_id: workspace_id.into(),
                status: status as i32,
                page_size,
                page_token: page_token.into(),
            },
            &who.access_token,
        ))
        .await
        .map(|r| r.into_inner())
}

/// Every member with `status` (all pages), as `who` sees them.
pub async fn members(
    system: &TestSystem,
    who: &Person,
    workspace_id: &str,
    status: pb::MemberStatus,
) -> Vec<pb::Member> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = list_page(&system.client, who, workspace_id, status, 200, &token)
            .await
            .unwrap_or_else(|e| panic!("list_members: {e:?}"));
        out.extend(page.members);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

/// The emails on a list, sorted.
pub fn emails(members: &[pb::Member]) -> Vec<String> {
    let mut out: Vec<String> = members.iter().map(|m| m.email.clone()).collect();
    out.sort();
    out
}

pub async fn get_member(
    client: &MembershipClient,
    who: &Person,
    workspace_id: &str,
    account_id: &str,
) -> Reply<pb::Member> {
    client
        .clone()
        .get_member(bearer(
            pb::GetMemberRequest {
                workspace_id: workspace_id.into(),
                account_id: account_id.into(),
            },
            &who.access_token,
        ))
        .await
        .map(|r| r.into_inner().member.expect("a member"))
}

pub async fn change_role(
    client: &MembershipClient,
    who: &Person,
    workspace_id: &str,
    account_id: &str,
    role: i32,
) -> Reply<pb::Member> {
    client
        .clone()
        .change_member_role(bearer(
            pb::ChangeMemberRoleRequest {
                workspace_id: workspace_id.into(),
                account_id: account_id.into(),
                role,
                request_id: String::new(),
            },
            &who.access_token,
        ))
        .await
        .map(|r| r.into_inner().member.expect("a member"))
}

pub async fn disable(
    client: &MembershipClient,
    who: &Person,
    workspace_id: &str,
    account_id: &str,
) -> Reply<pb::Member> {
    client
        .clone()
        .disable_member(bearer(
            pb::DisableMemberRequest {
                workspace_id: workspace_id.into(),
                account_id: account_id.into(),
                request_id: String::new(),
            },
            &who.access_token,
        ))
        .await
        .map(|r| r.into_inner().member.expect("a member"))
}

pub async fn enable(
    client: &MembershipClient,
    who: &Person,
    workspace_id: &str,
    account_id: &str,
) -> Reply<pb::Member> {
    client
        .clone()
        .enable_member(bearer(
            pb::EnableMemberRequest {
                workspace_id: workspace_id.into(),
                account_id: account_id.into(),
                request_id: String::new(),
            },
            &who.access_token,
        ))
        .await
        .map(|r| r.into_inner().member.expect("a member"))
}

pub async fn remove(
    client: &MembershipClient,
    who: &Person,
    workspace_id: &str,
    account_id: &str,
) -> Reply<()> {
    client
        .clone()
        .remove_member(bearer(
            pb::RemoveMemberRequest {
                workspace_id: workspace_id.into(),
                account_id: account_id.into(),
                request_id: String::new(),
            },
            &who.access_token,
        ))
        .await
        .map(|_| ())
}

pub async fn invite(
    client: &MembershipClient,
    who: &Person,
    workspace_id: &str,
    email: &str,
    role: i32,
) -> Reply<pb::Invitation> {
    client
        .clone()
        .invite_member(bearer(
            pb::InviteMemberRequest {
                workspace_id: workspace_id.into(),
                email: email.into(),
                role,
                request_id: String::new(),
            },
            &who.access_token,
        ))
        .await
        .map(|r| r.into_inner().invitation.expect("an invitation"))
}

pub async fn transfer(
    client: &MembershipClient,
    who: &Person,
    workspace_id: &str,
    new_owner: &str,
) -> Reply<pb::Workspace> {
    client
        .clone()
        .transfer_ownership(bearer(
            pb::TransferOwnershipRequest {
                workspace_id: workspace_id.into(),
                new_owner_account_id: new_owner.into(),
                request_id: String::new(),
            },
            &who.access_token,
        ))
        .await
        .map(|r| r.into_inner().workspace.expect("a workspace"))
}

pub async fn require_mfa(
    client: &MembershipClient,
    who: &Person,
    workspace_id: &str,
    on: bool,
) -> Reply<pb::Workspace> {
    client
        .clone()
        .update_workspace_settings(bearer(
            pb::UpdateWorkspaceSettingsRequest {
                workspace_id: workspace_id.into(),
                require_mfa: Some(on),
                invitation_lifetime: None,
                request_id: String::new(),
            },
            &who.access_token,
        ))
        .await
        .map(|r| r.into_inner().workspace.expect("a workspace"))
}

/// Invites an existing person's address and accepts with their token.
pub async fn join(
    system: &TestSystem,
    admin: &Person,
    workspace_id: &str,
    person: &Person,
    role: pb::Role,
) -> pb::Member {
    let (_, token) = system
        .invite(admin, workspace_id, &person.email, role)
        .await;
    system
        .client
        .clone()
        .accept_invitation(bearer(
            pb::AcceptInvitationRequest {
                token,
                request_id: String::new(),
            },
            &person.access_token,
        ))
        .await
        .unwrap_or_else(|e| panic!("accept_invitation: {e:?}"))
        .into_inner()
        .member
        .expect("a member")
}

/// A member change for the races.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Demote,
    Disable,
    Remove,
    Transfer,
}

/// One call of a race: `actor` does `op` to `target`.
#[derive(Debug, Clone)]
pub struct Move {
    pub actor: Person,
    pub op: Op,
    pub target: Person,
}

pub fn mv(actor: &Person, op: Op, target: &Person) -> Move {
    Move {
        actor: actor.clone(),
        op,
        target: target.clone(),
    }
}

async fn run(client: &MembershipClient, workspace_id: &str, m: &Move) -> Reply<()> {
    let target = m.target.account_id.as_str();
    match m.op {
        Op::Demote => change_role(
            client,
            &m.actor,
            workspace_id,
            target,
            pb::Role::User as i32,
        )
        .await
        .map(|_| ()),
        Op::Disable => disable(client, &m.actor, workspace_id, target)
            .await
            .map(|_| ()),
        Op::Remove => remove(client, &m.actor, workspace_id, target).await,
        Op::Transfer => transfer(client, &m.actor, workspace_id, target)
            .await
            .map(|_| ()),
    }
}

/// Runs all moves at once, each on its own connection, released together
/// by a barrier; the replies come back in the order of `moves`.
pub async fn race(system: &TestSystem, workspace_id: &str, moves: Vec<Move>) -> Vec<Reply<()>> {
    let barrier = Arc::new(Barrier::new(moves.len()));
    let mut tasks = Vec::with_capacity(moves.len());
    for m in moves {
        let client = system.new_client().await;
        let barrier = barrier.clone();
        let workspace_id = workspace_id.to_owned();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            run(&client, &workspace_id, &m).await
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for joined in futures::future::join_all(tasks).await {
        out.push(joined.unwrap_or_else(|e| panic!("a racing call panicked: {e}")));
    }
    out
}

/// The workspace's rules, read back through the API: at least one active
/// Tenant Admin, the owner among them, and exactly one card marked owner.
pub async fn assert_rules_hold(system: &TestSystem, viewer: &Person, workspace_id: &str) {
    let ws = get_workspace(&system.client, viewer, workspace_id)
        .await
        .unwrap_or_else(|e| panic!("get_workspace: {e:?}"));
    let active = members(system, viewer, workspace_id, pb::MemberStatus::Active).await;
    let admins: Vec<&pb::Member> = active
        .iter()
        .filter(|m| m.role == pb::Role::TenantAdmin as i32)
        .collect();
    assert!(!admins.is_empty(), "no active admin left: {active:?}");
    assert!(
        admins.iter().any(|m| m.account_id == ws.owner_account_id),
        "the owner {} is not an active admin: {active:?}",
        ws.owner_account_id
    );
    let disabled = members(system, viewer, workspace_id, pb::MemberStatus::Disabled).await;
    let owners: Vec<&pb::Member> = active
        .iter()
        .chain(disabled.iter())
        .filter(|m| m.is_owner)
        .collect();
    assert_eq!(owners.len(), 1, "{active:?} {disabled:?}");
    assert_eq!(owners[0].account_id, ws.owner_account_id);
}

/// The codes and reasons a refused member change may carry.
pub fn is_clear_refusal(status: &Status) -> bool {
    matches!(
        (status.code(), reason(status).as_str()),
        (Code::FailedPrecondition, "OWNER_PROTECTED")
            | (Code::FailedPrecondition, "LAST_ADMIN")
            | (Code::FailedPrecondition, "TARGET_NOT_ACTIVE_ADMIN")
            | (Code::PermissionDenied, "PERMISSION_DENIED")
            | (Code::PermissionDenied, "MEMBER_DISABLED")
            | (Code::PermissionDenied, "NOT_OWNER")
            | (Code::NotFound, "MEMBER_NOT_FOUND")
            | (Code::NotFound, "WORKSPACE_NOT_FOUND")
    )
}

/// Counts the successes in a race's replies.
pub fn wins(replies: &[Reply<()>]) -> usize {
    replies.iter().filter(|r| r.is_ok()).count()
}

/// The status of a refused call, or a panic naming the call.
#[track_caller]
pub fn refusal(reply: &Reply<()>, what: &str) -> Status {
    match reply {
        Ok(()) => panic!("{what} succeeded, expected a refusal"),
        Err(status) => status.clone(),
    }
}

/// The code and reason of a status.
pub fn code_reason(status: &Status) -> (Code, String) {
    (status.code(), reason(status))
}
