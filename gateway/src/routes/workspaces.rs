//! Workspaces, their settings and permissions, members, invitations and the
//! audit log. Every rule is membership's: these handlers only translate.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::HeaderMap,
};
use http::StatusCode;
use recapp_proto::membership::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, rfc3339};
use crate::{
    context::{AppState, Client, Person, request_id},
    error::{ApiError, ErrorBody},
};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    TenantAdmin,
    User,
}

impl Role {
    fn from_pb(role: i32) -> Option<Role> {
        match pb::Role::try_from(role).ok()? {
            pb::Role::TenantAdmin => Some(Role::TenantAdmin),
            pb::Role::User => Some(Role::User),
            pb::Role::Unspecified => None,
        }
    }

    fn to_pb(self) -> i32 {
        match self {
            Role::TenantAdmin => pb::Role::TenantAdmin as i32,
            Role::User => pb::Role::User as i32,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub owner_account_id: String,
    /// "Require MFA for all users".
    pub require_mfa: bool,
    /// How long invitation links stay valid, in hours.
    pub invitation_lifetime_hours: i64,
    pub created_at: String,
    /// The caller's role here.
    pub role: Option<Role>,
}

impl From<pb::Workspace> for Workspace {
    fn from(w: pb::Workspace) -> Self {
        let settings = w.settings.unwrap_or_default();
        Workspace {
            id: w.id,
            name: w.name,
            owner_account_id: w.owner_account_id,
            require_mfa: settings.require_mfa,
            invitation_lifetime_hours: settings
                .invitation_lifetime
                .map(|d| d.seconds / 3600)
                .unwrap_or(0),
            created_at: rfc3339(w.create_time),
            role: Role::from_pb(w.caller_role),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceList {
    pub workspaces: Vec<Workspace>,
    pub next_page_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateWorkspaceRequest {
    /// 1 to 100 characters.
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct SettingsUpdate {
    /// Turn "Require MFA for all users" on or off.
    #[serde(default)]
    pub require_mfa: Option<bool>,
    /// 1 to 720 hours.
    #[serde(default)]
    pub invitation_lifetime_hours: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Active,
    Disabled,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    pub account_id: String,
    pub email: String,
    pub display_name: String,
    pub role: Option<Role>,
    pub status: MemberStatus,
    pub joined_at: String,
    pub mfa_enrolled: bool,
    pub is_owner: bool,
}

impl From<pb::Member> for Member {
    fn from(m: pb::Member) -> Self {
        Member {
            status: if m.status == pb::MemberStatus::Disabled as i32 {
                MemberStatus::Disabled
            } else {
                MemberStatus::Active
            },
            role: Role::from_pb(m.role),
            account_id: m.account_id,
            email: m.email,
            display_name: m.display_name,
            joined_at: rfc3339(m.join_time),
            mfa_enrolled: m.mfa_enrolled,
            is_owner: m.is_owner,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<Member>,
    pub next_page_token: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct MemberQuery {
    /// `active` (default) or `disabled`: the Users page tabs.
    pub status: Option<String>,
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Deserialize, IntoParams)]
pub struct PageQuery {
    pub page_size: Option<i32>,
    pub page_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ChangeRoleRequest {
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Cancelled,
    Expired,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    pub id: String,
    pub email: String,
    pub role: Option<Role>,
    pub status: InvitationStatus,
    /// When the current link was sent.
    pub sent_at: String,
    pub expires_at: String,
    pub invited_by_email: String,
}

impl From<pb::Invitation> for Invitation {
    fn from(i: pb::Invitation) -> Self {
        let status = match pb::InvitationStatus::try_from(i.status) {
            Ok(pb::InvitationStatus::Accepted) => InvitationStatus::Accepted,
            Ok(pb::InvitationStatus::Cancelled) => InvitationStatus::Cancelled,
            Ok(pb::InvitationStatus::Expired) => InvitationStatus::Expired,
            _ => InvitationStatus::Pending,
        };
        Invitation {
            id: i.id,
            email: i.email,
            role: Role::from_pb(i.role),
            status,
            sent_at: rfc3339(i.send_time),
            expires_at: rfc3339(i.expire_time),
            invited_by_email: i.invited_by_email,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    pub invitations: Vec<Invitation>,
    pub next_page_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct InviteRequest {
    pub email: String,
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationPreview {
    pub workspace_name: String,
    pub email: String,
    pub role: Option<Role>,
    pub expires_at: String,
    pub invited_by_email: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub workspace: Workspace,
    pub member: Member,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Permissions {
    pub role: Option<Role>,
    /// e.g. `manage_users`, `view_reports`.
    pub permissions: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    /// Account id of the actor, or `service:<name>`.
    pub actor: String,
    pub actor_email: String,
    /// e.g. `member.role_changed`.
    pub action: String,
    /// e.g. `account/<id>`.
    pub target: String,
    pub before: String,
    pub after: String,
    pub time: String,
    pub client_ip: String,
    pub trace_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventList {
    pub events: Vec<AuditEvent>,
    pub next_page_token: Option<String>,
}

fn next(token: String) -> Option<String> {
    (!token.is_empty()).then_some(token)
}

fn member_of(member: Option<pb::Member>) -> Result<Json<Member>, ApiError> {
    Ok(Json(member.ok_or_else(|| missing("member"))?.into()))
}

fn invitation_of(invitation: Option<pb::Invitation>) -> Result<Json<Invitation>, ApiError> {
    Ok(Json(
        invitation.ok_or_else(|| missing("invitation"))?.into(),
    ))
}

fn missing(what: &str) -> ApiError {
    ApiError::internal(&anyhow::anyhow!(
        "the membership service returned no {what}"
    ))
}

#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces", params(PageQuery),
    responses((status = 200, body = WorkspaceList), (status = 401, body = ErrorBody)))]
pub async fn list_workspaces(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    Query(q): Query<PageQuery>,
) -> Result<Json<WorkspaceList>, ApiError> {
    let r = app
        .membership()
        .list_workspaces(app.request(
            pb::ListWorkspacesRequest {
                page_size: q.page_size.unwrap_or(0),
                page_token: q.page_token.unwrap_or_default(),
            },
            Some(&person),
            &client,
        ))
        .await?
        .into_inner();
    Ok(Json(WorkspaceList {
        workspaces: r.workspaces.into_iter().map(Into::into).collect(),
        next_page_token: next(r.next_page_token),
    }))
}

#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces",
    request_body = CreateWorkspaceRequest,
    responses((status = 201, body = Workspace), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn create_workspace(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateWorkspaceRequest>,
) -> Result<(StatusCode, Json<Workspace>), ApiError> {
    let w = app
        .membership()
        .create_workspace(app.request(
            pb::CreateWorkspaceRequest {
                name: body.name,
                owner_account_id: String::new(),
                request_id: request_id(&headers),
            },
            Some(&person),
            &client,
        ))
        .await?
        .into_inner()
        .workspace
        .ok_or_else(|| missing("workspace"))?;
    Ok((StatusCode::CREATED, Json(w.into())))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}", tag = "workspaces",
    params(("workspace_id" = String, Path)),
    responses((status = 200, body = Workspace), (status = 404, body = ErrorBody)))]
pub async fn get_workspace(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    Path(workspace_id): Path<String>,
) -> Result<Json<Workspace>, ApiError> {
    let w = app
        .membership()
        .get_workspace(app.request(
            pb::GetWorkspaceRequest { workspace_id },
            Some(&person),
            &client,
        ))
        .await?
        .into_inner()
        .workspace
        .ok_or_else(|| missing("workspace"))?;
    Ok(Json(w.into()))
}

#[utoipa::path(patch, path = "/api/v1/workspaces/{workspace_id}/settings", tag = "workspaces",
    params(("workspace_id" = String, Path)), request_body = SettingsUpdate,
    responses((status = 200, body = Workspace),
        (status = 400, description = "MFA_ENROLLMENT_REQUIRED (an admin without TOTP turning MFA on), INVALID_ARGUMENT", body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn update_settings(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    headers: HeaderMap,
    Path(workspace_id): Path<String>,
    ApiJson(body): ApiJson<SettingsUpdate>,
) -> Result<Json<Workspace>, ApiError> {
    let invitation_lifetime = body
        .invitation_lifetime_hours
        .map(|hours| prost_types::Duration {
            seconds: hours.saturating_mul(3600),
            nanos: 0,
        });
    let w = app
        .membership()
        .update_workspace_settings(app.request(
            pb::UpdateWorkspaceSettingsRequest {
                workspace_id,
                require_mfa: body.require_mfa,
                invitation_lifetime,
                request_id: request_id(&headers),
            },
            Some(&person),
            &client,
        ))
        .await?
        .into_inner()
        .workspace
        .ok_or_else(|| missing("workspace"))?;
    Ok(Json(w.into()))
}

fn permission_name(p: i32) -> Option<String> {
    let name = pb::Permission::try_from(p).ok()?.as_str_name();
    name.strip_prefix("PERMISSION_")
        .filter(|n| *n != "UNSPECIFIED")
        .map(str::to_ascii_lowercase)
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/permissions", tag = "workspaces",
    params(("workspace_id" = String, Path)),
    responses((status = 200, description = "The caller's role and permissions", body = Permissions),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn permissions(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    Path(workspace_id): Path<String>,
) -> Result<Json<Permissions>, ApiError> {
    let r = app
        .membership()
        .list_permissions(app.request(
            pb::ListPermissionsRequest { workspace_id },
            Some(&person),
            &client,
        ))
        .await?
        .into_inner();
    Ok(Json(Permissions {
        role: Role::from_pb(r.role),
        permissions: r
            .permissions
            .into_iter()
            .filter_map(permission_name)
            .collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/members", tag = "members",
    params(("workspace_id" = String, Path), MemberQuery),
    responses((status = 200, body = MemberList), (status = 400, body = ErrorBody),
        (status = 403, description = "PERMISSION_DENIED, MEMBER_DISABLED", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list_members(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    Path(workspace_id): Path<String>,
    Query(q): Query<MemberQuery>,
) -> Result<Json<MemberList>, ApiError> {
    let status = match q.status.as_deref() {
        None | Some("active") => pb::MemberStatus::Active,
        Some("disabled") => pb::MemberStatus::Disabled,
        Some(_) => {
            return Err(ApiError::invalid(
                "INVALID_ARGUMENT",
                "status must be active or disabled.",
            ));
        }
    };
    let r = app
        .membership()
        .list_members(app.request(
            pb::ListMembersRequest {
                workspace_id,
                status: status as i32,
                page_size: q.page_size.unwrap_or(0),
                page_token: q.page_token.unwrap_or_default(),
            },
            Some(&person),
            &client,
        ))
        .await?
        .into_inner();
    Ok(Json(MemberList {
        members: r.members.into_iter().map(Into::into).collect(),
        next_page_token: next(r.next_page_token),
    }))
}

#[utoipa::path(patch, path = "/api/v1/workspaces/{workspace_id}/members/{account_id}", tag = "members",
    params(("workspace_id" = String, Path), ("account_id" = String, Path)), request_body = ChangeRoleRequest,
    responses((status = 200, body = Member),
        (status = 400, description = "LAST_ADMIN, OWNER_PROTECTED, SELF_ROLE_CHANGE", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn change_role(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    headers: HeaderMap,
    Path((workspace_id, account_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ChangeRoleRequest>,
) -> Result<Json<Member>, ApiError> {
    let request = app.request(
        pb::ChangeMemberRoleRequest {
            workspace_id,
            account_id,
            role: body.role.to_pb(),
            request_id: request_id(&headers),
        },
        Some(&person),
        &client,
    );
    member_of(
        app.membership()
            .change_member_role(request)
            .await?
            .into_inner()
            .member,
    )
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/members/{account_id}/disable", tag = "members",
    params(("workspace_id" = String, Path), ("account_id" = String, Path)),
    responses((status = 200, body = Member),
        (status = 400, description = "LAST_ADMIN, OWNER_PROTECTED", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_member(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    headers: HeaderMap,
    Path((workspace_id, account_id)): Path<(String, String)>,
) -> Result<Json<Member>, ApiError> {
    let request = app.request(
        pb::DisableMemberRequest {
            workspace_id,
            account_id,
            request_id: request_id(&headers),
        },
        Some(&person),
        &client,
    );
    member_of(
        app.membership()
            .disable_member(request)
            .await?
            .into_inner()
            .member,
    )
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/members/{account_id}/enable", tag = "members",
    params(("workspace_id" = String, Path), ("account_id" = String, Path)),
    responses((status = 200, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_member(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    headers: HeaderMap,
    Path((workspace_id, account_id)): Path<(String, String)>,
) -> Result<Json<Member>, ApiError> {
    let request = app.request(
        pb::EnableMemberRequest {
            workspace_id,
            account_id,
            request_id: request_id(&headers),
        },
        Some(&person),
        &client,
    );
    member_of(
        app.membership()
            .enable_member(request)
            .await?
            .into_inner()
            .member,
    )
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace_id}/members/{account_id}", tag = "members",
    params(("workspace_id" = String, Path), ("account_id" = String, Path)),
    responses((status = 204, description = "Removed for good"),
        (status = 400, description = "LAST_ADMIN, OWNER_PROTECTED", body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_member(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    headers: HeaderMap,
    Path((workspace_id, account_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.membership()
        .remove_member(app.request(
            pb::RemoveMemberRequest {
                workspace_id,
                account_id,
                request_id: request_id(&headers),
            },
            Some(&person),
            &client,
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/invitations", tag = "invitations",
    params(("workspace_id" = String, Path), PageQuery),
    responses((status = 200, description = "Pending invitations, newest first", body = InvitationList),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_invitations(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    Path(workspace_id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<InvitationList>, ApiError> {
    let r = app
        .membership()
        .list_invitations(app.request(
            pb::ListInvitationsRequest {
                workspace_id,
                status: pb::InvitationStatus::Pending as i32,
                page_size: q.page_size.unwrap_or(0),
                page_token: q.page_token.unwrap_or_default(),
            },
            Some(&person),
            &client,
        ))
        .await?
        .into_inner();
    Ok(Json(InvitationList {
        invitations: r.invitations.into_iter().map(Into::into).collect(),
        next_page_token: next(r.next_page_token),
    }))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/invitations", tag = "invitations",
    params(("workspace_id" = String, Path)), request_body = InviteRequest,
    responses((status = 201, body = Invitation),
        (status = 400, description = "INVALID_EMAIL, MEMBER_DISABLED_REENABLE", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "ALREADY_MEMBER, INVITATION_PENDING", body = ErrorBody)))]
pub async fn invite(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    headers: HeaderMap,
    Path(workspace_id): Path<String>,
    ApiJson(body): ApiJson<InviteRequest>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let i = app
        .membership()
        .invite_member(app.request(
            pb::InviteMemberRequest {
                workspace_id,
                email: body.email,
                role: body.role.to_pb(),
                request_id: request_id(&headers),
            },
            Some(&person),
            &client,
        ))
        .await?
        .into_inner()
        .invitation
        .ok_or_else(|| missing("invitation"))?;
    Ok((StatusCode::CREATED, Json(i.into())))
}

#[utoipa::path(post, path = "/api/v1/workspaces/{workspace_id}/invitations/{invitation_id}/resend", tag = "invitations",
    params(("workspace_id" = String, Path), ("invitation_id" = String, Path)),
    responses((status = 200, description = "A new link and expiry were sent", body = Invitation),
        (status = 400, description = "INVITATION_NOT_PENDING", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "RESEND_TOO_SOON, RESEND_LIMIT", body = ErrorBody)))]
pub async fn resend_invitation(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    headers: HeaderMap,
    Path((workspace_id, invitation_id)): Path<(String, String)>,
) -> Result<Json<Invitation>, ApiError> {
    let request = app.request(
        pb::ResendInvitationRequest {
            workspace_id,
            invitation_id,
            request_id: request_id(&headers),
        },
        Some(&person),
        &client,
    );
    invitation_of(
        app.membership()
            .resend_invitation(request)
            .await?
            .into_inner()
            .invitation,
    )
}

#[utoipa::path(delete, path = "/api/v1/workspaces/{workspace_id}/invitations/{invitation_id}", tag = "invitations",
    params(("workspace_id" = String, Path), ("invitation_id" = String, Path)),
    responses((status = 200, description = "Cancelled", body = Invitation),
        (status = 400, description = "INVITATION_NOT_PENDING", body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn cancel_invitation(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    headers: HeaderMap,
    Path((workspace_id, invitation_id)): Path<(String, String)>,
) -> Result<Json<Invitation>, ApiError> {
    let request = app.request(
        pb::CancelInvitationRequest {
            workspace_id,
            invitation_id,
            request_id: request_id(&headers),
        },
        Some(&person),
        &client,
    );
    invitation_of(
        app.membership()
            .cancel_invitation(request)
            .await?
            .into_inner()
            .invitation,
    )
}

#[utoipa::path(get, path = "/api/v1/invitations/{token}", tag = "invitations",
    params(("token" = String, Path, description = "The token from the link /invite/<token>")),
    responses((status = 200, description = "What accepting means; nothing is consumed", body = InvitationPreview),
        (status = 400, description = "INVITATION_EXPIRED, INVITATION_CANCELLED, INVITATION_USED", body = ErrorBody),
        (status = 404, description = "INVITATION_INVALID", body = ErrorBody)))]
pub async fn preview_invitation(
    State(app): State<AppState>,
    client: Client,
    Path(token): Path<String>,
) -> Result<Json<InvitationPreview>, ApiError> {
    let p = app
        .membership()
        .preview_invitation(app.request(pb::PreviewInvitationRequest { token }, None, &client))
        .await?
        .into_inner();
    Ok(Json(InvitationPreview {
        workspace_name: p.workspace_name,
        email: p.email,
        role: Role::from_pb(p.role),
        expires_at: rfc3339(p.expire_time),
        invited_by_email: p.invited_by_email,
    }))
}

#[utoipa::path(post, path = "/api/v1/invitations/{token}/accept", tag = "invitations",
    params(("token" = String, Path)),
    responses((status = 200, description = "Joined the workspace", body = Accepted),
        (status = 400, description = "INVITATION_EXPIRED, INVITATION_CANCELLED, INVITATION_USED", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "INVITATION_EMAIL_MISMATCH", body = ErrorBody),
        (status = 404, description = "INVITATION_INVALID", body = ErrorBody),
        (status = 409, description = "ALREADY_MEMBER", body = ErrorBody)))]
pub async fn accept_invitation(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    let r = app
        .membership()
        .accept_invitation(app.request(
            pb::AcceptInvitationRequest {
                token,
                request_id: request_id(&headers),
            },
            Some(&person),
            &client,
        ))
        .await?
        .into_inner();
    Ok(Json(Accepted {
        workspace: r.workspace.ok_or_else(|| missing("workspace"))?.into(),
        member: r.member.ok_or_else(|| missing("member"))?.into(),
    }))
}

#[utoipa::path(get, path = "/api/v1/workspaces/{workspace_id}/audit-events", tag = "workspaces",
    params(("workspace_id" = String, Path), PageQuery),
    responses((status = 200, description = "Newest first", body = AuditEventList),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn audit_events(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    Path(workspace_id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Json<AuditEventList>, ApiError> {
    let r = app
        .membership()
        .list_audit_events(app.request(
            pb::ListAuditEventsRequest {
                workspace_id,
                action: String::new(),
                actor: String::new(),
                page_size: q.page_size.unwrap_or(0),
                page_token: q.page_token.unwrap_or_default(),
            },
            Some(&person),
            &client,
        ))
        .await?
        .into_inner();
    Ok(Json(AuditEventList {
        events: r
            .events
            .into_iter()
            .map(|e| AuditEvent {
                id: e.id,
                actor: e.actor,
                actor_email: e.actor_email,
                action: e.action,
                target: e.target,
                before: e.before,
                after: e.after,
                time: rfc3339(e.create_time),
                client_ip: e.client_ip,
                trace_id: e.trace_id,
            })
            .collect(),
        next_page_token: next(r.next_page_token),
    }))
}
