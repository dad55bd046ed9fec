//! Sign up, sign in (password, then TOTP or a recovery code), sign out,
//! refresh, the signed-in account, and the authenticator app.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use http::{HeaderValue, StatusCode, header};
use recapp_proto::identity::v1 as ipb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, rfc3339};
use crate::{
    context::{AppState, Client, Person, millis, session_state},
    error::{ApiError, ErrorBody},
    session::MfaState,
};

#[derive(Debug, Serialize, ToSchema)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub display_name: String,
    /// Whether an authenticator app is set up.
    pub totp_enrolled: bool,
}

impl From<ipb::Account> for Account {
    fn from(a: ipb::Account) -> Self {
        Account {
            id: a.id,
            email: a.email,
            display_name: a.display_name,
            totp_enrolled: a.totp_enrolled,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct SignUpRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub display_name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct SignInRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignInStatus {
    /// Signed in; the session cookie is set.
    SignedIn,
    /// Send a code to `POST /api/v1/session/mfa`.
    MfaRequired,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignInResponse {
    pub status: SignInStatus,
    /// The account, when signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    /// `totp`, `recovery_code`: how the MFA step can be completed.
    pub mfa_methods: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CodeRequest {
    /// Six digits from the authenticator app.
    #[serde(default)]
    pub totp_code: Option<String>,
    /// One of the recovery codes shown at set-up.
    #[serde(default)]
    pub recovery_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentSession {
    pub account: Account,
    /// Whether this sign-in used a second factor.
    pub second_factor: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSetup {
    pub otpauth_uri: String,
    /// Base32, for typing into the app by hand.
    pub secret: String,
    /// The QR code as a `data:image/svg+xml;base64,...` URL.
    pub qr_code: String,
    /// Confirm before this time (RFC 3339).
    pub expires_at: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmTotpRequest {
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Shown once: store them somewhere safe.
    pub recovery_codes: Vec<String>,
}

fn with_cookies(mut response: Response, cookies: impl IntoIterator<Item = String>) -> Response {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

fn code_oneof(body: CodeRequest) -> Result<ipb::complete_mfa_challenge_request::Code, ApiError> {
    use ipb::complete_mfa_challenge_request::Code;
    match (body.totp_code, body.recovery_code) {
        (Some(code), None) => Ok(Code::TotpCode(code)),
        (None, Some(code)) => Ok(Code::RecoveryCode(code)),
        _ => Err(ApiError::invalid(
            "CODE_REQUIRED",
            "Give either totp_code or recovery_code.",
        )),
    }
}

/// Signs in with the session that identity returned: sets the session cookie.
async fn signed_in(app: &AppState, session: ipb::Session) -> Result<Response, ApiError> {
    let account = session.account.clone().map(Account::from);
    let state = session_state(session)?;
    let cookie = app.cookies().set_session(&state, app.now_ms())?;
    let body = SignInResponse {
        status: SignInStatus::SignedIn,
        account,
        mfa_methods: Vec::new(),
    };
    Ok(with_cookies(
        Json(body).into_response(),
        [cookie, app.cookies().clear_mfa()],
    ))
}

#[utoipa::path(post, path = "/api/v1/accounts", tag = "session",
    request_body = SignUpRequest,
    responses(
        (status = 201, description = "Account created and signed in", body = SignInResponse),
        (status = 400, body = ErrorBody), (status = 409, description = "EMAIL_TAKEN", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn sign_up(
    State(app): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<SignUpRequest>,
) -> Result<Response, ApiError> {
    let mut identity = app.identity();
    identity
        .create_account(app.request(
            ipb::CreateAccountRequest {
                email: body.email.clone(),
                password: body.password.clone(),
                display_name: body.display_name,
                client_info: Some(client.info()),
            },
            None,
            &client,
        ))
        .await?;
    let result = identity
        .authenticate(app.request(
            ipb::AuthenticateRequest {
                email: body.email,
                password: body.password,
                client_info: Some(client.info()),
            },
            None,
            &client,
        ))
        .await?
        .into_inner()
        .result;
    match result {
        Some(ipb::authenticate_response::Result::Session(session)) => {
            let mut response = signed_in(&app, session).await?;
            *response.status_mut() = StatusCode::CREATED;
            Ok(response)
        }
        _ => Err(ApiError::internal(&anyhow::anyhow!(
            "a new account asked for a second factor"
        ))),
    }
}

#[utoipa::path(post, path = "/api/v1/session", tag = "session",
    request_body = SignInRequest,
    responses(
        (status = 200, description = "Signed in, or a second factor is needed", body = SignInResponse),
        (status = 401, description = "INVALID_CREDENTIALS", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody)))]
pub async fn sign_in(
    State(app): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<SignInRequest>,
) -> Result<Response, ApiError> {
    let result = app
        .identity()
        .authenticate(app.request(
            ipb::AuthenticateRequest {
                email: body.email,
                password: body.password,
                client_info: Some(client.info()),
            },
            None,
            &client,
        ))
        .await?
        .into_inner()
        .result;
    match result {
        Some(ipb::authenticate_response::Result::Session(session)) => {
            signed_in(&app, session).await
        }
        Some(ipb::authenticate_response::Result::MfaChallenge(challenge)) => {
            let methods = challenge
                .methods()
                .filter_map(|m| match m {
                    ipb::MfaMethod::Totp => Some("totp".to_owned()),
                    ipb::MfaMethod::RecoveryCode => Some("recovery_code".to_owned()),
                    ipb::MfaMethod::Unspecified => None,
                })
                .collect();
            let state = MfaState {
                challenge_token: challenge.challenge_token,
                expires_ms: millis(challenge.expire_time),
            };
            let cookie = app.cookies().set_mfa(&state, app.now_ms())?;
            let body = SignInResponse {
                status: SignInStatus::MfaRequired,
                account: None,
                mfa_methods: methods,
            };
            Ok(with_cookies(Json(body).into_response(), [cookie]))
        }
        None => Err(ApiError::internal(&anyhow::anyhow!(
            "Authenticate returned nothing"
        ))),
    }
}

#[utoipa::path(post, path = "/api/v1/session/mfa", tag = "session",
    request_body = CodeRequest,
    responses(
        (status = 200, description = "Signed in", body = SignInResponse),
        (status = 401, description = "MFA_STEP_MISSING, CHALLENGE_EXPIRED, TOTP_INVALID, RECOVERY_CODE_INVALID", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn complete_mfa(
    State(app): State<AppState>,
    client: Client,
    headers: http::HeaderMap,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<Response, ApiError> {
    let Some(mfa) = app.cookies().mfa(&headers, app.now_ms()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "MFA_STEP_MISSING",
            "Sign in with your password first.",
        ));
    };
    let code = code_oneof(body)?;
    let session = app
        .identity()
        .complete_mfa_challenge(app.request(
            ipb::CompleteMfaChallengeRequest {
                challenge_token: mfa.challenge_token,
                code: Some(code),
                client_info: Some(client.info()),
            },
            None,
            &client,
        ))
        .await?
        .into_inner()
        .session
        .ok_or_else(|| anyhow::anyhow!("CompleteMfaChallenge returned no session"))?;
    signed_in(&app, session).await
}

#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = CurrentSession), (status = 401, description = "SIGNED_OUT", body = ErrorBody)))]
pub async fn current(
    State(app): State<AppState>,
    client: Client,
    person: Person,
) -> Result<Json<CurrentSession>, ApiError> {
    let account = app
        .identity()
        .get_account(app.request(
            ipb::GetAccountRequest {
                account_id: person.state.account_id.clone(),
            },
            None,
            &client,
        ))
        .await?
        .into_inner()
        .account
        .ok_or_else(|| anyhow::anyhow!("GetAccount returned no account"))?;
    Ok(Json(CurrentSession {
        account: account.into(),
        second_factor: second_factor(&person.state.access_token),
    }))
}

/// Whether the access token records a second factor. The gateway only reads
/// its own session's token for display; the services verify it.
fn second_factor(token: &str) -> bool {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .and_then(|claims| {
            claims
                .get("amr")
                .and_then(|a| a.as_array())
                .map(|amr| amr.iter().any(|m| m == "otp"))
        })
        .unwrap_or(false)
}

#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "Signed out; the cookie is cleared")))]
pub async fn sign_out(
    State(app): State<AppState>,
    client: Client,
    person: Option<Person>,
) -> Result<Response, ApiError> {
    if let Some(person) = person {
        let result = app
            .identity()
            .revoke_session(app.request(
                ipb::RevokeSessionRequest {
                    session: Some(ipb::revoke_session_request::Session::RefreshToken(
                        person.state.refresh_token,
                    )),
                    client_info: Some(client.info()),
                },
                None,
                &client,
            ))
            .await;
        if let Err(status) = result
            && status.code() != tonic::Code::NotFound
        {
            return Err(ApiError::from(status).with_cookie(app.cookies().clear_session()));
        }
    }
    Ok(with_cookies(
        StatusCode::NO_CONTENT.into_response(),
        [app.cookies().clear_session(), app.cookies().clear_mfa()],
    ))
}

#[utoipa::path(post, path = "/api/v1/session/refresh", tag = "session",
    responses((status = 204, description = "New tokens sealed into the cookie"),
        (status = 401, description = "SESSION_INVALID, SESSION_EXPIRED, REFRESH_TOKEN_REUSED", body = ErrorBody)))]
pub async fn refresh(
    State(app): State<AppState>,
    client: Client,
    person: Person,
) -> Result<Response, ApiError> {
    let state = match app.refresh(&person.state, &client).await {
        Ok(state) => state,
        Err(status) => {
            return Err(ApiError::from(status).with_cookie(app.cookies().clear_session()));
        }
    };
    let cookie = app.cookies().set_session(&state, app.now_ms())?;
    Ok(with_cookies(
        StatusCode::NO_CONTENT.into_response(),
        [cookie],
    ))
}

#[utoipa::path(post, path = "/api/v1/account/totp", tag = "account",
    responses((status = 200, description = "A new secret to confirm", body = TotpSetup),
        (status = 400, description = "TOTP_ALREADY_ENROLLED", body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn begin_totp(
    State(app): State<AppState>,
    client: Client,
    person: Person,
) -> Result<Json<TotpSetup>, ApiError> {
    let begun = app
        .identity()
        .begin_totp_enrollment(app.request(
            ipb::BeginTotpEnrollmentRequest {},
            Some(&person),
            &client,
        ))
        .await?
        .into_inner();
    Ok(Json(TotpSetup {
        otpauth_uri: begun.otpauth_uri,
        secret: begun.secret_base32,
        qr_code: format!(
            "data:image/svg+xml;base64,{}",
            STANDARD.encode(begun.qr_code_svg.as_bytes())
        ),
        expires_at: rfc3339(begun.expire_time),
    }))
}

#[utoipa::path(post, path = "/api/v1/account/totp/confirm", tag = "account",
    request_body = ConfirmTotpRequest,
    responses((status = 200, description = "Enrolled; this sign-in now counts as two-factor", body = RecoveryCodes),
        (status = 400, description = "TOTP_INVALID, TOTP_ENROLLMENT_NOT_STARTED", body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn confirm_totp(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    ApiJson(body): ApiJson<ConfirmTotpRequest>,
) -> Result<Response, ApiError> {
    let confirmed = app
        .identity()
        .confirm_totp_enrollment(app.request(
            ipb::ConfirmTotpEnrollmentRequest {
                totp_code: body.code,
                client_info: Some(client.info()),
            },
            Some(&person),
            &client,
        ))
        .await?
        .into_inner();
    // The new access token records the second factor: keep it.
    let mut state = person.state.clone();
    state.access_token = confirmed.access_token;
    state.access_expires_ms = millis(confirmed.access_token_expire_time);
    let cookie = app.cookies().set_session(&state, app.now_ms())?;
    Ok(with_cookies(
        Json(RecoveryCodes {
            recovery_codes: confirmed.recovery_codes,
        })
        .into_response(),
        [cookie],
    ))
}

#[utoipa::path(post, path = "/api/v1/account/totp/remove", tag = "account",
    request_body = CodeRequest,
    responses((status = 204, description = "The authenticator app and recovery codes are removed"),
        (status = 400, description = "TOTP_NOT_ENROLLED, TOTP_INVALID, RECOVERY_CODE_INVALID", body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub async fn remove_totp(
    State(app): State<AppState>,
    client: Client,
    person: Person,
    ApiJson(body): ApiJson<CodeRequest>,
) -> Result<StatusCode, ApiError> {
    use ipb::remove_totp_request::Code;
    let code = match code_oneof(body)? {
        ipb::complete_mfa_challenge_request::Code::TotpCode(c) => Code::TotpCode(c),
        ipb::complete_mfa_challenge_request::Code::RecoveryCode(c) => Code::RecoveryCode(c),
    };
    app.identity()
        .remove_totp(app.request(
            ipb::RemoveTotpRequest {
                code: Some(code),
                client_info: Some(client.info()),
            },
            Some(&person),
            &client,
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
