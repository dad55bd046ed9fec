//! Domain -> proto conversions.

use recapp_access_token::AuthMethod;
use recapp_proto::identity::v1 as pb;
use uuid::Uuid;

use crate::service::{
    AccountView, IssuedSession, SecurityEventType, SecurityEventView, SessionView,
};

pub use recapp_service_kit::grpc::timestamp;

pub fn account_pb(a: AccountView) -> pb::Account {
    pb::Account {
        id: a.id.to_string(),
        email: a.email,
        display_name: a.display_name,
        totp_enrolled: a.totp_enrolled,
        create_time: Some(timestamp(a.created_at)),
    }
}

fn methods_pb(methods: &[AuthMethod]) -> Vec<i32> {
    methods
        .iter()
        .map(|m| match m {
            AuthMethod::Pwd => pb::AuthenticationMethod::Password as i32,
            AuthMethod::Otp => pb::AuthenticationMethod::Otp as i32,
        })
        .collect()
}

pub fn session_pb(s: IssuedSession) -> pb::Session {
    pb::Session {
        session_id: s.session_id.to_string(),
        refresh_token: s.refresh_token,
        refresh_token_expire_time: Some(timestamp(s.refresh_expires_at)),
        access_token: s.access_token,
        access_token_expire_time: Some(timestamp(s.access_expires_at)),
        authentication_methods: methods_pb(&s.methods),
        account: Some(account_pb(s.account)),
    }
}

pub fn session_info_pb(s: SessionView, current: Uuid) -> pb::SessionInfo {
    pb::SessionInfo {
        session_id: s.id.to_string(),
        create_time: Some(timestamp(s.created_at)),
        last_use_time: Some(timestamp(s.last_used_at)),
        expire_time: Some(timestamp(s.expires_at)),
        ip_address: s.client_ip,
        user_agent: s.user_agent,
        authentication_methods: methods_pb(&s.methods),
        current: s.id == current,
    }
}

pub fn security_event_pb(e: SecurityEventView) -> pb::SecurityEvent {
    use pb::SecurityEventType as T;
    let kind = match e.event_type {
        Some(SecurityEventType::AccountCreated) => T::AccountCreated,
        Some(SecurityEventType::LoginSucceeded) => T::LoginSucceeded,
        Some(SecurityEventType::LoginFailed) => T::LoginFailed,
        Some(SecurityEventType::MfaFailed) => T::MfaFailed,
        Some(SecurityEventType::TotpEnrolled) => T::TotpEnrolled,
        Some(SecurityEventType::TotpRemoved) => T::TotpRemoved,
        Some(SecurityEventType::RecoveryCodeUsed) => T::RecoveryCodeUsed,
        Some(SecurityEventType::RecoveryCodesRegenerated) => T::RecoveryCodesRegenerated,
        Some(SecurityEventType::TotpCodeReplayed) => T::TotpCodeReplayed,
        Some(SecurityEventType::PasswordChanged) => T::PasswordChanged,
        Some(SecurityEventType::AccountLocked) => T::AccountLocked,
        Some(SecurityEventType::SessionRevoked) => T::SessionRevoked,
        Some(SecurityEventType::RefreshTokenReused) => T::RefreshTokenReused,
        None => T::Unspecified,
    };
    pb::SecurityEvent {
        id: e.id.to_string(),
        r#type: kind as i32,
        create_time: Some(timestamp(e.created_at)),
        ip_address: e.client_ip,
        user_agent: e.user_agent,
        trace_id: e.trace_id,
        session_id: e.session_id.map(|s| s.to_string()).unwrap_or_default(),
    }
}
