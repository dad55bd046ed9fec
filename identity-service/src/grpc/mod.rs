//! The gRPC edge: checks the caller, translates proto <-> domain, calls one
//! use case and maps its errors. No SQL, no hashing here.

mod convert;

use std::sync::Arc;

use recapp_proto::identity::v1::{
    self as pb, identity_service_server::IdentityService as IdentityApi,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    clock::Clock,
    error::IdentityError,
    service::{
        AccessGrant, Identity, LoginOutcome, RequestContext, SecondFactor, ServicePrincipal,
    },
};
use convert::*;

/// The metadata entry that carries a service credential.
pub const SERVICE_TOKEN_HEADER: &str = "x-recapp-service-token";

/// The tonic service.
#[derive(Clone)]
pub struct IdentityGrpc {
    identity: Identity,
    clock: Arc<dyn Clock>,
}

type GrpcResult<T> = Result<Response<T>, Status>;

impl IdentityGrpc {
    pub fn new(identity: Identity, clock: Arc<dyn Clock>) -> Self {
        Self { identity, clock }
    }

    /// The service principal calling, or SERVICE_UNAUTHENTICATED.
    fn principal<T>(&self, request: &Request<T>) -> Result<ServicePrincipal, IdentityError> {
        let secret = request
            .metadata()
            .get(SERVICE_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        self.identity
            .settings()
            .service_credentials
            .authenticate(secret)
            .ok_or(IdentityError::ServiceUnauthenticated)
    }

    /// The person's access token, verified against a live session.
    async fn grant<T>(&self, request: &Request<T>) -> Result<AccessGrant, IdentityError> {
        let token = recapp_service_kit::grpc::bearer_token(request.metadata())
            .ok_or(IdentityError::TokenMissing)?;
        self.identity.authorize(token, self.clock.now()).await
    }

    fn context<T>(&self, request: &Request<T>, client: Option<&pb::ClientInfo>) -> RequestContext {
        let peer = request
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let (ip, agent) = match client {
            Some(c) => (
                if c.ip_address.trim().is_empty() {
                    peer
                } else {
                    c.ip_address.trim().to_owned()
                },
                c.user_agent.clone(),
            ),
            None => (peer, String::new()),
        };
        RequestContext {
            client_ip: ip,
            user_agent: agent,
            trace_id: recapp_telemetry::current_trace_id().unwrap_or_default(),
        }
    }
}

fn parse_id(field: &'static str, value: &str) -> Result<Uuid, IdentityError> {
    Uuid::parse_str(value.trim())
        .map_err(|_| IdentityError::InvalidArgument(format!("{field} must be a UUID")))
}

fn limit(field: &'static str, value: &str, max_bytes: usize) -> Result<(), IdentityError> {
    if value.len() > max_bytes {
        return Err(IdentityError::InvalidArgument(format!(
            "{field} is too long"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl IdentityApi for IdentityGrpc {
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> GrpcResult<pb::CreateAccountResponse> {
        self.principal(&request)?;
        let ctx = self.context(&request, request.get_ref().client_info.as_ref());
        let req = request.into_inner();
        let account = self
            .identity
            .create_account(
                &req.email,
                &req.password,
                &req.display_name,
                &ctx,
                self.clock.now(),
            )
            .await?;
        Ok(Response::new(pb::CreateAccountResponse {
            account: Some(account_pb(account)),
        }))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> GrpcResult<pb::GetAccountResponse> {
        self.principal(&request)?;
        let id = parse_id("account_id", &request.get_ref().account_id)?;
        let account = self.identity.get_account(id).await?;
        Ok(Response::new(pb::GetAccountResponse {
            account: Some(account_pb(account)),
        }))
    }

    async fn batch_get_accounts(
        &self,
        request: Request<pb::BatchGetAccountsRequest>,
    ) -> GrpcResult<pb::BatchGetAccountsResponse> {
        self.principal(&request)?;
        let ids = request
            .get_ref()
            .account_ids
            .iter()
            .map(|id| parse_id("account_ids", id))
            .collect::<Result<Vec<_>, _>>()?;
        let accounts = self.identity.batch_get_accounts(&ids).await?;
        Ok(Response::new(pb::BatchGetAccountsResponse {
            accounts: accounts.into_iter().map(account_pb).collect(),
        }))
    }

    async fn lookup_account_by_email(
        &self,
        request: Request<pb::LookupAccountByEmailRequest>,
    ) -> GrpcResult<pb::LookupAccountByEmailResponse> {
        self.principal(&request)?;
        let account = self
            .identity
            .lookup_account_by_email(&request.get_ref().email)
            .await?;
        Ok(Response::new(pb::LookupAccountByEmailResponse {
            account: Some(account_pb(account)),
        }))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> GrpcResult<pb::AuthenticateResponse> {
        self.principal(&request)?;
        let ctx = self.context(&request, request.get_ref().client_info.as_ref());
        let req = request.into_inner();
        limit("email", &req.email, 1024)?;
        let outcome = self
            .identity
            .authenticate(&req.email, &req.password, &ctx, self.clock.now())
            .await?;
        let result = match outcome {
            LoginOutcome::SignedIn(session) => {
                pb::authenticate_response::Result::Session(session_pb(session))
            }
            LoginOutcome::MfaRequired {
                challenge_token,
                expires_at,
            } => pb::authenticate_response::Result::MfaChallenge(pb::MfaChallenge {
                challenge_token,
                expire_time: Some(timestamp(expires_at)),
                methods: vec![
                    pb::MfaMethod::Totp as i32,
                    pb::MfaMethod::RecoveryCode as i32,
                ],
            }),
        };
        Ok(Response::new(pb::AuthenticateResponse {
            result: Some(result),
        }))
    }

    async fn complete_mfa_challenge(
        &self,
        request: Request<pb::CompleteMfaChallengeRequest>,
    ) -> GrpcResult<pb::CompleteMfaChallengeResponse> {
        self.principal(&request)?;
        let ctx = self.context(&request, request.get_ref().client_info.as_ref());
        let req = request.into_inner();
        let factor = match req.code {
            Some(pb::complete_mfa_challenge_request::Code::TotpCode(code)) => {
                SecondFactor::Totp(code)
            }
            Some(pb::complete_mfa_challenge_request::Code::RecoveryCode(code)) => {
                SecondFactor::RecoveryCode(code)
            }
            None => {
                return Err(IdentityError::InvalidArgument(
                    "totp_code or recovery_code is required".into(),
                )
                .into());
            }
        };
        let session = self
            .identity
            .complete_mfa_challenge(&req.challenge_token, &factor, &ctx, self.clock.now())
            .await?;
        Ok(Response::new(pb::CompleteMfaChallengeResponse {
            session: Some(session_pb(session)),
        }))
    }

    async fn refresh_session(
        &self,
        request: Request<pb::RefreshSessionRequest>,
    ) -> GrpcResult<pb::RefreshSessionResponse> {
        self.principal(&request)?;
        let ctx = self.context(&request, request.get_ref().client_info.as_ref());
        let session = self
            .identity
            .refresh_session(&request.get_ref().refresh_token, &ctx, self.clock.now())
            .await?;
        Ok(Response::new(pb::RefreshSessionResponse {
            session: Some(session_pb(session)),
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> GrpcResult<pb::RevokeSessionResponse> {
        self.principal(&request)?;
        let ctx = self.context(&request, request.get_ref().client_info.as_ref());
        let now = self.clock.now();
        match &request.get_ref().session {
            Some(pb::revoke_session_request::Session::RefreshToken(token)) => {
                self.identity
                    .revoke_by_refresh_token(token, &ctx, now)
                    .await?;
            }
            Some(pb::revoke_session_request::Session::SessionId(id)) => {
                let id = parse_id("session_id", id)?;
                let grant = self.grant(&request).await?;
                self.identity.revoke_session(&grant, id, &ctx, now).await?;
            }
            None => {
                return Err(IdentityError::InvalidArgument(
                    "session_id or refresh_token is required".into(),
                )
                .into());
            }
        }
        Ok(Response::new(pb::RevokeSessionResponse {}))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> GrpcResult<pb::ListSessionsResponse> {
        self.principal(&request)?;
        let grant = self.grant(&request).await?;
        let req = request.get_ref();
        let (sessions, next_page_token) = self
            .identity
            .list_sessions(&grant, req.page_size, &req.page_token, self.clock.now())
            .await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions
                .into_iter()
                .map(|s| session_info_pb(s, grant.session_id))
                .collect(),
            next_page_token,
        }))
    }

    async fn begin_totp_enrollment(
        &self,
        request: Request<pb::BeginTotpEnrollmentRequest>,
    ) -> GrpcResult<pb::BeginTotpEnrollmentResponse> {
        self.principal(&request)?;
        let grant = self.grant(&request).await?;
        let e = self
            .identity
            .begin_totp_enrollment(&grant, self.clock.now())
            .await?;
        Ok(Response::new(pb::BeginTotpEnrollmentResponse {
            otpauth_uri: e.otpauth_uri,
            secret_base32: e.secret_base32,
            qr_code_svg: e.qr_code_svg,
            expire_time: Some(timestamp(e.expires_at)),
        }))
    }

    async fn confirm_totp_enrollment(
        &self,
        request: Request<pb::ConfirmTotpEnrollmentRequest>,
    ) -> GrpcResult<pb::ConfirmTotpEnrollmentResponse> {
        self.principal(&request)?;
        let grant = self.grant(&request).await?;
        let ctx = self.context(&request, request.get_ref().client_info.as_ref());
        let (recovery_codes, access_token, expires) = self
            .identity
            .confirm_totp_enrollment(&grant, &request.get_ref().totp_code, &ctx, self.clock.now())
            .await?;
        Ok(Response::new(pb::ConfirmTotpEnrollmentResponse {
            recovery_codes,
            access_token,
            access_token_expire_time: Some(timestamp(expires)),
        }))
    }

    async fn remove_totp(
        &self,
        request: Request<pb::RemoveTotpRequest>,
    ) -> GrpcResult<pb::RemoveTotpResponse> {
        self.principal(&request)?;
        let grant = self.grant(&request).await?;
        let ctx = self.context(&request, request.get_ref().client_info.as_ref());
        let factor = match &request.get_ref().code {
            Some(pb::remove_totp_request::Code::TotpCode(c)) => SecondFactor::Totp(c.clone()),
            Some(pb::remove_totp_request::Code::RecoveryCode(c)) => {
                SecondFactor::RecoveryCode(c.clone())
            }
            None => {
                return Err(IdentityError::InvalidArgument(
                    "totp_code or recovery_code is required".into(),
                )
                .into());
            }
        };
        self.identity
            .remove_totp(&grant, &factor, &ctx, self.clock.now())
            .await?;
        Ok(Response::new(pb::RemoveTotpResponse {}))
    }

    async fn regenerate_recovery_codes(
        &self,
        request: Request<pb::RegenerateRecoveryCodesRequest>,
    ) -> GrpcResult<pb::RegenerateRecoveryCodesResponse> {
        self.principal(&request)?;
        let grant = self.grant(&request).await?;
        let ctx = self.context(&request, request.get_ref().client_info.as_ref());
        let recovery_codes = self
            .identity
            .regenerate_recovery_codes(&grant, &request.get_ref().totp_code, &ctx, self.clock.now())
            .await?;
        Ok(Response::new(pb::RegenerateRecoveryCodesResponse {
            recovery_codes,
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> GrpcResult<pb::ChangePasswordResponse> {
        self.principal(&request)?;
        let grant = self.grant(&request).await?;
        let ctx = self.context(&request, request.get_ref().client_info.as_ref());
        let req = request.get_ref();
        let revoked = self
            .identity
            .change_password(
                &grant,
                &req.current_password,
                &req.new_password,
                &ctx,
                self.clock.now(),
            )
            .await?;
        Ok(Response::new(pb::ChangePasswordResponse {
            revoked_session_count: i32::try_from(revoked).unwrap_or(i32::MAX),
        }))
    }

    async fn get_signing_keys(
        &self,
        _request: Request<pb::GetSigningKeysRequest>,
    ) -> GrpcResult<pb::GetSigningKeysResponse> {
        let keys = self.identity.keys().published();
        Ok(Response::new(pb::GetSigningKeysResponse {
            keys: keys
                .into_iter()
                .map(|k| pb::SigningKey {
                    key_id: k.key.key_id,
                    algorithm: "EdDSA".into(),
                    public_key: k.key.bytes.to_vec(),
                    create_time: Some(timestamp(k.created_at)),
                })
                .collect(),
            cache_max_age_seconds: 300,
        }))
    }

    async fn list_security_events(
        &self,
        request: Request<pb::ListSecurityEventsRequest>,
    ) -> GrpcResult<pb::ListSecurityEventsResponse> {
        self.principal(&request)?;
        let grant = self.grant(&request).await?;
        let req = request.get_ref();
        let (events, next_page_token) = self
            .identity
            .list_security_events(grant.account_id, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(pb::ListSecurityEventsResponse {
            events: events.into_iter().map(security_event_pb).collect(),
            next_page_token,
        }))
    }
}
