//! What every handler gets: the service clients, the cookie codec, the
//! caller's session (if any) and the client address.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use axum::extract::{ConnectInfo, FromRequestParts};
use http::{HeaderMap, request::Parts};
use ipnet::IpNet;
use recapp_proto::{
    identity::v1::{self as ipb, identity_service_client::IdentityServiceClient},
    membership::v1::membership_service_client::MembershipServiceClient,
};
use secrecy::ExposeSecret;
use tonic::{
    Request,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

use recapp_service_kit::clock::Clock;

use crate::{
    config::Settings,
    error::ApiError,
    session::{Cookies, Refresher, SessionState},
};

/// Adds the gateway's service credential and the W3C trace context to
/// every call.
#[derive(Clone)]
pub struct Outgoing {
    service_token: MetadataValue<Ascii>,
}

impl Interceptor for Outgoing {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("x-recapp-service-token", self.service_token.clone());
        recapp_telemetry::inject_trace_context(request.metadata_mut());
        Ok(request)
    }
}

pub type IdentityClient = IdentityServiceClient<InterceptedService<Channel, Outgoing>>;
pub type MembershipClient = MembershipServiceClient<InterceptedService<Channel, Outgoing>>;

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

pub struct Inner {
    pub identity: IdentityClient,
    pub membership: MembershipClient,
    pub cookies: Cookies,
    pub refresher: Refresher,
    pub public_origin: String,
    pub trusted_proxies: Vec<IpNet>,
    pub call_timeout: Duration,
    pub secure: bool,
    pub draining: AtomicBool,
    pub clock: Arc<dyn Clock>,
}

fn channel(url: &str, timeout: Duration) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{url:?} is not a valid service URL"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

impl AppState {
    pub fn new(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let service_token = MetadataValue::try_from(settings.service_token.expose_secret())
            .context("GATEWAY_SERVICE_TOKEN must be printable ASCII")?;
        let outgoing = Outgoing { service_token };
        let identity = IdentityServiceClient::with_interceptor(
            channel(&settings.identity_url, settings.call_timeout)?,
            outgoing.clone(),
        );
        let membership = MembershipServiceClient::with_interceptor(
            channel(&settings.membership_url, settings.call_timeout)?,
            outgoing,
        );
        Ok(AppState(Arc::new(Inner {
            identity,
            membership,
            cookies: Cookies::new(settings.cookie_keys.clone(), settings.insecure_http),
            refresher: Refresher::default(),
            public_origin: settings.public_origin.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            call_timeout: settings.call_timeout,
            secure: !settings.insecure_http,
            draining: AtomicBool::new(false),
            clock,
        })))
    }

    pub fn identity(&self) -> IdentityClient {
        self.0.identity.clone()
    }

    pub fn membership(&self) -> MembershipClient {
        self.0.membership.clone()
    }

    pub fn cookies(&self) -> &Cookies {
        &self.0.cookies
    }

    /// Unix milliseconds by the injected clock.
    pub fn now_ms(&self) -> i64 {
        self.0.clock.now().timestamp_millis()
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }

    pub fn set_draining(&self) {
        self.0.draining.store(true, Ordering::SeqCst);
    }

    /// A request with the call's deadline, the person's token and address.
    pub fn request<T>(&self, message: T, person: Option<&Person>, client: &Client) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.0.call_timeout);
        let metadata = request.metadata_mut();
        if let Some(person) = person
            && let Ok(value) =
                MetadataValue::try_from(format!("Bearer {}", person.state.access_token))
        {
            metadata.insert("authorization", value);
        }
        if let Ok(value) = MetadataValue::try_from(client.ip.to_string()) {
            metadata.insert("x-recapp-client-ip", value);
        }
        request
    }

    /// Exchanges the session's refresh token (once per token on this replica).
    pub async fn refresh(
        &self,
        state: &SessionState,
        client: &Client,
    ) -> Result<SessionState, tonic::Status> {
        let identity = self.identity();
        let request = self.request(
            ipb::RefreshSessionRequest {
                refresh_token: state.refresh_token.clone(),
                client_info: Some(client.info()),
            },
            None,
            client,
        );
        self.0
            .refresher
            .refresh(&state.refresh_token, || async move {
                let mut identity = identity;
                let session = identity
                    .refresh_session(request)
                    .await?
                    .into_inner()
                    .session
                    .ok_or_else(|| tonic::Status::internal("RefreshSession returned no session"))?;
                session_state(session)
            })
            .await
    }
}

/// Turns identity's session into the cookie's state.
pub fn session_state(session: ipb::Session) -> Result<SessionState, tonic::Status> {
    let account_id = session
        .account
        .as_ref()
        .map(|a| a.id.clone())
        .ok_or_else(|| tonic::Status::internal("session without an account"))?;
    Ok(SessionState {
        account_id,
        refresh_token: session.refresh_token,
        refresh_expires_ms: millis(session.refresh_token_expire_time),
        access_token: session.access_token,
        access_expires_ms: millis(session.access_token_expire_time),
    })
}

pub fn millis(time: Option<prost_types::Timestamp>) -> i64 {
    time.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
        .unwrap_or(0)
}

/// The signed-in caller (its session cookie's state), put in the request by
/// the session middleware.
#[derive(Clone)]
pub struct Person {
    pub state: SessionState,
}

impl<S: Send + Sync> FromRequestParts<S> for Person {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Person>()
            .cloned()
            .ok_or_else(ApiError::signed_out)
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for Person {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Person>().cloned())
    }
}

/// The client's address (from the trusted proxy hop only) and user agent.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    pub user_agent: String,
}

impl Client {
    pub fn info(&self) -> ipb::ClientInfo {
        ipb::ClientInfo {
            ip_address: self.ip.to_string(),
            user_agent: self.user_agent.clone(),
        }
    }

    pub fn from_parts(parts: &Parts, trusted: &[IpNet]) -> Client {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let user_agent = parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect())
            .unwrap_or_default();
        Client {
            ip: client_ip(peer, &parts.headers, trusted),
            user_agent,
        }
    }
}

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client::from_parts(parts, &state.0.trusted_proxies))
    }
}

/// The peer, unless the peer is a trusted proxy: then the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy. A client's own
/// `X-Forwarded-For` entries sit to the left of what the proxy appended, so
/// they are never believed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| hop.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// `Idempotency-Key: <uuid>` becomes the call's AIP-155 `request_id`.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| uuid::Uuid::parse_str(v).is_ok())
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().unwrap());
        h
    }

    #[test]
    fn a_client_sent_forwarded_for_is_ignored_without_a_trusted_proxy() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, &headers("1.2.3.4"), &[]), peer);
    }

    #[test]
    fn behind_a_trusted_proxy_the_hop_it_appended_is_the_client() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        // The client forged 1.2.3.4; the proxy appended the real 198.51.100.7.
        let ip = client_ip(peer, &headers("1.2.3.4, 198.51.100.7"), &trusted);
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        // Chained trusted proxies are skipped.
        let ip = client_ip(peer, &headers("198.51.100.7, 10.9.9.9"), &trusted);
        assert_eq!(ip, "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_garbled_forwarded_for_falls_back_to_the_peer() {
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(client_ip(peer, &headers("not-an-ip"), &trusted), peer);
    }
}
