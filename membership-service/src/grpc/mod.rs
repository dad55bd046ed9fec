//! The gRPC edge: identifies the caller, translates proto <-> domain, calls
//! one use case and maps its errors. Mutations with a `request_id` are
//! idempotent (AIP-155).

mod convert;
mod idempotency;

use std::{sync::Arc, time::Duration};

use prost::Message;
use recapp_proto::membership::v1::{
    self as pb, membership_service_server::MembershipService as Api,
};
use recapp_service_kit::Clock;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    auth::{Authenticator, Caller},
    domain::{InvitationStatus, MemberStatus},
    error::MembershipError,
    service::{Membership, RequestContext, SettingsChange},
};
use convert::*;
use idempotency::Idempotency;

#[derive(Clone)]
pub struct MembershipGrpc {
    membership: Membership,
    auth: Authenticator,
    clock: Arc<dyn Clock>,
    idempotency: Idempotency,
}

type GrpcResult<T> = Result<Response<T>, Status>;

impl MembershipGrpc {
    pub fn new(membership: Membership, auth: Authenticator, clock: Arc<dyn Clock>) -> Self {
        let idempotency = Idempotency::new(membership.db().clone());
        Self {
            membership,
            auth,
            clock,
            idempotency,
        }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, MembershipError> {
        self.auth.caller(request.metadata(), self.clock.now()).await
    }

    /// A person, or a service principal for the few RPCs that allow one.
    async fn person<T>(&self, request: &Request<T>) -> Result<Caller, MembershipError> {
        let caller = self.caller(request).await?;
        caller.person()?;
        Ok(caller)
    }

    /// A refusal for a missing second factor names what the person must do
    /// from identity's current view of their authenticator app, not from
    /// the token's (which may predate an enrollment).
    async fn settle<T>(
        &self,
        caller: &Caller,
        result: Result<T, MembershipError>,
    ) -> Result<T, MembershipError> {
        match result {
            Err(e @ (MembershipError::MfaRequired | MembershipError::MfaEnrollmentRequired)) => {
                Err(self.membership.mfa_refusal(caller, e).await)
            }
            other => other,
        }
    }

    fn context<T>(&self, request: &Request<T>) -> RequestContext {
        // The client address is taken from metadata only when a trusted
        // service (the gateway) says so; otherwise it is the peer.
        let trusted = self.auth.from_trusted_service(request.metadata());
        let forwarded = request
            .metadata()
            .get("x-recapp-client-ip")
            .filter(|_| trusted)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 64)
            .map(str::to_owned);
        let peer = request
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        RequestContext {
            client_ip: forwarded.unwrap_or(peer),
            trace_id: recapp_telemetry::current_trace_id().unwrap_or_default(),
        }
    }
}

fn id(field: &'static str, value: &str) -> Result<Uuid, MembershipError> {
    Uuid::parse_str(value.trim())
        .map_err(|_| MembershipError::InvalidArgument(format!("{field} must be a UUID")))
}

#[tonic::async_trait]
impl Api for MembershipGrpc {
    async fn create_workspace(
        &self,
        request: Request<pb::CreateWorkspaceRequest>,
    ) -> GrpcResult<pb::CreateWorkspaceResponse> {
        let caller = self.caller(&request).await?;
        let ctx = self.context(&request);
        let req = request.into_inner();
        let owner = if req.owner_account_id.is_empty() {
            None
        } else {
            Some(id("owner_account_id", &req.owner_account_id)?)
        };
        let response = self
            .idempotency
            .run(
                &caller,
                &req.request_id,
                "CreateWorkspace",
                &req.encode_to_vec(),
                self.clock.now(),
                async {
                    let ws = self
                        .settle(
                            &caller,
                            self.membership
                                .create_workspace(&caller, &req.name, owner, &ctx, self.clock.now())
                                .await,
                        )
                        .await?;
                    Ok(pb::CreateWorkspaceResponse {
                        workspace: Some(workspace_pb(ws)),
                    })
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn get_workspace(
        &self,
        request: Request<pb::GetWorkspaceRequest>,
    ) -> GrpcResult<pb::GetWorkspaceResponse> {
        let caller = self.person(&request).await?;
        let ws = self
            .settle(
                &caller,
                self.membership
                    .get_workspace(
                        &caller,
                        id("workspace_id", &request.get_ref().workspace_id)?,
                    )
                    .await,
            )
            .await?;
        Ok(Response::new(pb::GetWorkspaceResponse {
            workspace: Some(workspace_pb(ws)),
        }))
    }

    async fn list_workspaces(
        &self,
        request: Request<pb::ListWorkspacesRequest>,
    ) -> GrpcResult<pb::ListWorkspacesResponse> {
        let caller = self.person(&request).await?;
        let req = request.get_ref();
        let (workspaces, next_page_token) = self
            .settle(
                &caller,
                self.membership
                    .list_workspaces(&caller, req.page_size, &req.page_token)
                    .await,
            )
            .await?;
        Ok(Response::new(pb::ListWorkspacesResponse {
            workspaces: workspaces.into_iter().map(workspace_pb).collect(),
            next_page_token,
        }))
    }

    async fn update_workspace_settings(
        &self,
        request: Request<pb::UpdateWorkspaceSettingsRequest>,
    ) -> GrpcResult<pb::UpdateWorkspaceSettingsResponse> {
        let caller = self.person(&request).await?;
        let ctx = self.context(&request);
        let req = request.into_inner();
        let workspace_id = id("workspace_id", &req.workspace_id)?;
        let lifetime = match &req.invitation_lifetime {
            None => None,
            Some(d) if d.seconds < 0 || d.nanos < 0 => {
                return Err(MembershipError::Invalid(
                    crate::domain::DomainError::InvalidInvitationLifetime,
                )
                .into());
            }
            Some(d) => Some(Duration::from_secs(d.seconds as u64)),
        };
        let response = self
            .idempotency
            .run(
                &caller,
                &req.request_id,
                "UpdateWorkspaceSettings",
                &req.encode_to_vec(),
                self.clock.now(),
                async {
                    let ws = self
                        .settle(
                            &caller,
                            self.membership
                                .update_settings(
                                    &caller,
                                    workspace_id,
                                    SettingsChange {
                                        require_mfa: req.require_mfa,
                                        invitation_lifetime: lifetime,
                                    },
                                    &ctx,
                                    self.clock.now(),
                                )
                                .await,
                        )
                        .await?;
                    Ok(pb::UpdateWorkspaceSettingsResponse {
                        workspace: Some(workspace_pb(ws)),
                    })
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn transfer_ownership(
        &self,
        request: Request<pb::TransferOwnershipRequest>,
    ) -> GrpcResult<pb::TransferOwnershipResponse> {
        let caller = self.person(&request).await?;
        let ctx = self.context(&request);
        let req = request.into_inner();
        let workspace_id = id("workspace_id", &req.workspace_id)?;
        let new_owner = id("new_owner_account_id", &req.new_owner_account_id)?;
        let response = self
            .idempotency
            .run(
                &caller,
                &req.request_id,
                "TransferOwnership",
                &req.encode_to_vec(),
                self.clock.now(),
                async {
                    let ws = self
                        .settle(
                            &caller,
                            self.membership
                                .transfer_ownership(
                                    &caller,
                                    workspace_id,
                                    new_owner,
                                    &ctx,
                                    self.clock.now(),
                                )
                                .await,
                        )
                        .await?;
                    Ok(pb::TransferOwnershipResponse {
                        workspace: Some(workspace_pb(ws)),
                    })
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> GrpcResult<pb::ListMembersResponse> {
        let caller = self.person(&request).await?;
        let req = request.get_ref();
        let status = match pb::MemberStatus::try_from(req.status) {
            Ok(pb::MemberStatus::Unspecified | pb::MemberStatus::Active) => MemberStatus::Active,
            Ok(pb::MemberStatus::Disabled) => MemberStatus::Disabled,
            Err(_) => {
                return Err(MembershipError::InvalidArgument(
                    "status is not a member status".into(),
                )
                .into());
            }
        };
        let (members, next_page_token) = self
            .settle(
                &caller,
                self.membership
                    .list_members(
                        &caller,
                        id("workspace_id", &req.workspace_id)?,
                        status,
                        req.page_size,
                        &req.page_token,
                    )
                    .await,
            )
            .await?;
        Ok(Response::new(pb::ListMembersResponse {
            members: members.into_iter().map(member_pb).collect(),
            next_page_token,
        }))
    }

    async fn get_member(
        &self,
        request: Request<pb::GetMemberRequest>,
    ) -> GrpcResult<pb::GetMemberResponse> {
        let caller = self.person(&request).await?;
        let req = request.get_ref();
        let member = self
            .settle(
                &caller,
                self.membership
                    .get_member(
                        &caller,
                        id("workspace_id", &req.workspace_id)?,
                        id("account_id", &req.account_id)?,
                    )
                    .await,
            )
            .await?;
        Ok(Response::new(pb::GetMemberResponse {
            member: Some(member_pb(member)),
        }))
    }

    async fn change_member_role(
        &self,
        request: Request<pb::ChangeMemberRoleRequest>,
    ) -> GrpcResult<pb::ChangeMemberRoleResponse> {
        let caller = self.person(&request).await?;
        let ctx = self.context(&request);
        let req = request.into_inner();
        let (workspace_id, account_id) = (
            id("workspace_id", &req.workspace_id)?,
            id("account_id", &req.account_id)?,
        );
        let role = role_from_pb(req.role)?;
        let response = self
            .idempotency
            .run(
                &caller,
                &req.request_id,
                "ChangeMemberRole",
                &req.encode_to_vec(),
                self.clock.now(),
                async {
                    let member = self
                        .settle(
                            &caller,
                            self.membership
                                .change_member_role(
                                    &caller,
                                    workspace_id,
                                    account_id,
                                    role,
                                    &ctx,
                                    self.clock.now(),
                                )
                                .await,
                        )
                        .await?;
                    Ok(pb::ChangeMemberRoleResponse {
                        member: Some(member_pb(member)),
                    })
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn disable_member(
        &self,
        request: Request<pb::DisableMemberRequest>,
    ) -> GrpcResult<pb::DisableMemberResponse> {
        let caller = self.person(&request).await?;
        let ctx = self.context(&request);
        let req = request.into_inner();
        let (workspace_id, account_id) = (
            id("workspace_id", &req.workspace_id)?,
            id("account_id", &req.account_id)?,
        );
        let response = self
            .idempotency
            .run(
                &caller,
                &req.request_id,
                "DisableMember",
                &req.encode_to_vec(),
                self.clock.now(),
                async {
                    let member = self
                        .settle(
                            &caller,
                            self.membership
                                .disable_member(
                                    &caller,
                                    workspace_id,
                                    account_id,
                                    &ctx,
                                    self.clock.now(),
                                )
                                .await,
                        )
                        .await?;
                    Ok(pb::DisableMemberResponse {
                        member: Some(member_pb(member)),
                    })
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn enable_member(
        &self,
        request: Request<pb::EnableMemberRequest>,
    ) -> GrpcResult<pb::EnableMemberResponse> {
        let caller = self.person(&request).await?;
        let ctx = self.context(&request);
        let req = request.into_inner();
        let (workspace_id, account_id) = (
            id("workspace_id", &req.workspace_id)?,
            id("account_id", &req.account_id)?,
        );
        let response = self
            .idempotency
            .run(
                &caller,
                &req.request_id,
                "EnableMember",
                &req.encode_to_vec(),
                self.clock.now(),
                async {
                    let member = self
                        .settle(
                            &caller,
                            self.membership
                                .enable_member(
                                    &caller,
                                    workspace_id,
                                    account_id,
                                    &ctx,
                                    self.clock.now(),
                                )
                                .await,
                        )
                        .await?;
                    Ok(pb::EnableMemberResponse {
                        member: Some(member_pb(member)),
                    })
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> GrpcResult<pb::RemoveMemberResponse> {
        let caller = self.person(&request).await?;
        let ctx = self.context(&request);
        let req = request.into_inner();
        let (workspace_id, account_id) = (
            id("workspace_id", &req.workspace_id)?,
            id("account_id", &req.account_id)?,
        );
        let response = self
            .idempotency
            .run(
                &caller,
                &req.request_id,
                "RemoveMember",
                &req.encode_to_vec(),
                self.clock.now(),
                async {
                    self.settle(
                        &caller,
                        self.membership
                            .remove_member(
                                &caller,
                                workspace_id,
                                account_id,
                                &ctx,
                                self.clock.now(),
                            )
                            .await,
                    )
                    .await?;
                    Ok(pb::RemoveMemberResponse {})
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn invite_member(
        &self,
        request: Request<pb::InviteMemberRequest>,
    ) -> GrpcResult<pb::InviteMemberResponse> {
        let caller = self.person(&request).await?;
        let ctx = self.context(&request);
        let req = request.into_inner();
        let workspace_id = id("workspace_id", &req.workspace_id)?;
        let role = role_from_pb(req.role)?;
        if req.email.len() > 1024 {
            return Err(MembershipError::InvalidArgument("email is too long".into()).into());
        }
        let response = self
            .idempotency
            .run(
                &caller,
                &req.request_id,
                "InviteMember",
                &req.encode_to_vec(),
                self.clock.now(),
                async {
                    let invitation = self
                        .settle(
                            &caller,
                            self.membership
                                .invite_member(
                                    &caller,
                                    workspace_id,
                                    &req.email,
                                    role,
                                    &ctx,
                                    self.clock.now(),
                                )
                                .await,
                        )
                        .await?;
                    Ok(pb::InviteMemberResponse {
                        invitation: Some(invitation_pb(invitation)),
                    })
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn list_invitations(
        &self,
        request: Request<pb::ListInvitationsRequest>,
    ) -> GrpcResult<pb::ListInvitationsResponse> {
        let caller = self.person(&request).await?;
        let req = request.get_ref();
        let status = match pb::InvitationStatus::try_from(req.status) {
            Ok(pb::InvitationStatus::Unspecified | pb::InvitationStatus::Pending) => {
                InvitationStatus::Pending
            }
            Ok(pb::InvitationStatus::Accepted) => InvitationStatus::Accepted,
            Ok(pb::InvitationStatus::Cancelled) => InvitationStatus::Cancelled,
            Ok(pb::InvitationStatus::Expired) => InvitationStatus::Expired,
            Err(_) => {
                return Err(MembershipError::InvalidArgument(
                    "status is not an invitation status".into(),
                )
                .into());
            }
        };
        let (invitations, next_page_token) = self
            .settle(
                &caller,
                self.membership
                    .list_invitations(
                        &caller,
                        id("workspace_id", &req.workspace_id)?,
                        status,
                        req.page_size,
                        &req.page_token,
                        self.clock.now(),
                    )
                    .await,
            )
            .await?;
        Ok(Response::new(pb::ListInvitationsResponse {
            invitations: invitations.into_iter().map(invitation_pb).collect(),
            next_page_token,
        }))
    }

    async fn resend_invitation(
        &self,
        request: Request<pb::ResendInvitationRequest>,
    ) -> GrpcResult<pb::ResendInvitationResponse> {
        let caller = self.person(&request).await?;
        let ctx = self.context(&request);
        let req = request.into_inner();
        let (workspace_id, invitation_id) = (
            id("workspace_id", &req.workspace_id)?,
            id("invitation_id", &req.invitation_id)?,
        );
        let response = self
            .idempotency
            .run(
                &caller,
                &req.request_id,
                "ResendInvitation",
                &req.encode_to_vec(),
                self.clock.now(),
                async {
                    let invitation = self
                        .settle(
                            &caller,
                            self.membership
                                .resend_invitation(
                                    &caller,
                                    workspace_id,
                                    invitation_id,
                                    &ctx,
                                    self.clock.now(),
                                )
                                .await,
                        )
                        .await?;
                    Ok(pb::ResendInvitationResponse {
                        invitation: Some(invitation_pb(invitation)),
                    })
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn cancel_invitation(
        &self,
        request: Request<pb::CancelInvitationRequest>,
    ) -> GrpcResult<pb::CancelInvitationResponse> {
        let caller = self.person(&request).await?;
        let ctx = self.context(&request);
        let req = request.into_inner();
        let (workspace_id, invitation_id) = (
            id("workspace_id", &req.workspace_id)?,
            id("invitation_id", &req.invitation_id)?,
        );
        let response = self
            .idempotency
            .run(
                &caller,
                &req.request_id,
                "CancelInvitation",
                &req.encode_to_vec(),
                self.clock.now(),
                async {
                    let invitation = self
                        .settle(
                            &caller,
                            self.membership
                                .cancel_invitation(
                                    &caller,
                                    workspace_id,
                                    invitation_id,
                                    &ctx,
                                    self.clock.now(),
                                )
                                .await,
                        )
                        .await?;
                    Ok(pb::CancelInvitationResponse {
                        invitation: Some(invitation_pb(invitation)),
                    })
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn preview_invitation(
        &self,
        request: Request<pb::PreviewInvitationRequest>,
    ) -> GrpcResult<pb::PreviewInvitationResponse> {
        let preview = self
            .membership
            .preview_invitation(&request.get_ref().token, self.clock.now())
            .await?;
        Ok(Response::new(pb::PreviewInvitationResponse {
            workspace_name: preview.workspace_name,
            email: preview.email,
            role: role_pb(preview.role) as i32,
            expire_time: Some(timestamp(preview.expires_at)),
            invited_by_email: preview.invited_by_email,
        }))
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> GrpcResult<pb::AcceptInvitationResponse> {
        let caller = self.person(&request).await?;
        let ctx = self.context(&request);
        let req = request.into_inner();
        let response = self
            .idempotency
            .run(
                &caller,
                &req.request_id,
                "AcceptInvitation",
                &req.encode_to_vec(),
                self.clock.now(),
                async {
                    let (member, workspace) = self
                        .settle(
                            &caller,
                            self.membership
                                .accept_invitation(&caller, &req.token, &ctx, self.clock.now())
                                .await,
                        )
                        .await?;
                    Ok(pb::AcceptInvitationResponse {
                        member: Some(member_pb(member)),
                        workspace: Some(workspace_pb(workspace)),
                    })
                },
            )
            .await?;
        Ok(Response::new(response))
    }

    async fn check_permission(
        &self,
        request: Request<pb::CheckPermissionRequest>,
    ) -> GrpcResult<pb::CheckPermissionResponse> {
        let caller = self.caller(&request).await?;
        let req = request.get_ref();
        let account = if req.account_id.is_empty() {
            None
        } else {
            Some(id("account_id", &req.account_id)?)
        };
        let permission = permission_from_pb(req.permission)?;
        let decision = self
            .settle(
                &caller,
                self.membership
                    .check_permission(
                        &caller,
                        id("workspace_id", &req.workspace_id)?,
                        account,
                        req.second_factor,
                        permission,
                    )
                    .await,
            )
            .await?;
        Ok(Response::new(match decision {
            Ok(()) => pb::CheckPermissionResponse {
                allowed: true,
                denial_reason: String::new(),
            },
            Err(denial) => pb::CheckPermissionResponse {
                allowed: false,
                denial_reason: denial.as_str().to_owned(),
            },
        }))
    }

    async fn list_permissions(
        &self,
        request: Request<pb::ListPermissionsRequest>,
    ) -> GrpcResult<pb::ListPermissionsResponse> {
        let caller = self.person(&request).await?;
        let (role, permissions) = self
            .settle(
                &caller,
                self.membership
                    .list_permissions(
                        &caller,
                        id("workspace_id", &request.get_ref().workspace_id)?,
                    )
                    .await,
            )
            .await?;
        Ok(Response::new(pb::ListPermissionsResponse {
            role: role_pb(role) as i32,
            permissions: permissions
                .iter()
                .map(|p| permission_pb(*p) as i32)
                .collect(),
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> GrpcResult<pb::ListAuditEventsResponse> {
        let caller = self.person(&request).await?;
        let req = request.get_ref();
        if req.action.len() > 64 || req.actor.len() > 200 {
            return Err(MembershipError::InvalidArgument("filter is too long".into()).into());
        }
        let (events, next_page_token) = self
            .settle(
                &caller,
                self.membership
                    .list_audit_events(
                        &caller,
                        id("workspace_id", &req.workspace_id)?,
                        &req.action,
                        &req.actor,
                        req.page_size,
                        &req.page_token,
                    )
                    .await,
            )
            .await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.into_iter().map(audit_pb).collect(),
            next_page_token,
        }))
    }
}
