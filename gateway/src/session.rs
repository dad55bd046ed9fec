//! The browser's session: identity's refresh and access tokens sealed
//! (AES-256-GCM) into an `HttpOnly` cookie, the pending MFA challenge in
//! another, and a double-submit CSRF token. Page scripts never see a token.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use anyhow::{Context, bail};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

const NONCE_LEN: usize = 12;

/// The keys that seal cookies: the first seals, every one opens.
#[derive(Clone)]
pub struct CookieKeys(Arc<Vec<Aes256Gcm>>);

impl fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CookieKeys({} keys, redacted)", self.0.len())
    }
}

impl CookieKeys {
    /// `base64(32 bytes)[,base64(32 bytes)...]`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for (i, part) in text.split(',').map(str::trim).enumerate() {
            if part.is_empty() {
                continue;
            }
            let bytes = STANDARD
                .decode(part)
                .or_else(|_| URL_SAFE_NO_PAD.decode(part))
                .with_context(|| format!("key {} is not base64", i + 1))?;
            if bytes.len() != 32 {
                bail!("key {} has {} bytes, not 32", i + 1, bytes.len());
            }
            let key = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| anyhow::anyhow!("key {} is not a valid AES-256 key", i + 1))?;
            keys.push(key);
        }
        if keys.is_empty() {
            bail!("no key given");
        }
        Ok(CookieKeys(Arc::new(keys)))
    }

    /// base64url(nonce || ciphertext); the cookie name is bound as associated
    /// data so one cookie cannot stand in for another.
    fn seal(&self, name: &str, plaintext: &[u8]) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let key = self.0.first().context("no cookie key")?;
        let sealed = key
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing a cookie failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    fn open(&self, name: &str, value: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        if bytes.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        self.0.iter().find_map(|key| {
            key.decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .ok()
        })
    }
}

/// What the session cookie holds.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionState {
    pub account_id: String,
    pub refresh_token: String,
    /// Unix milliseconds.
    pub refresh_expires_ms: i64,
    pub access_token: String,
    /// Unix milliseconds.
    pub access_expires_ms: i64,
}

impl fmt::Debug for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionState")
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

/// The MFA challenge between the password step and the code step.
#[derive(Clone, Serialize, Deserialize)]
pub struct MfaState {
    pub challenge_token: String,
    pub expires_ms: i64,
}

/// Cookie names and attributes for this deployment.
#[derive(Debug, Clone)]
pub struct Cookies {
    keys: CookieKeys,
    secure: bool,
}

pub const SESSION: &str = "recapp-session";
pub const MFA: &str = "recapp-mfa";
pub const CSRF: &str = "recapp-csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

impl Cookies {
    pub fn new(keys: CookieKeys, insecure_http: bool) -> Self {
        Cookies {
            keys,
            secure: !insecure_http,
        }
    }

    /// `__Host-` names need `Secure`; the dev flag drops both.
    pub fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    fn attributes(&self, http_only: bool, same_site: &str, max_age_secs: i64) -> String {
        let mut attrs = format!(
            "Path=/; SameSite={same_site}; Max-Age={}",
            max_age_secs.max(0)
        );
        if http_only {
            attrs.push_str("; HttpOnly");
        }
        if self.secure {
            attrs.push_str("; Secure");
        }
        attrs
    }

    /// The sealed JSON value of cookie `base`, if present and genuine.
    fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        headers: &HeaderMap,
        base: &str,
    ) -> Option<T> {
        let name = self.name(base);
        let plain = self.keys.open(&name, cookie_value(headers, &name)?)?;
        serde_json::from_slice(&plain).ok()
    }

    /// A `Set-Cookie` value sealing `value` as cookie `base` (HttpOnly).
    fn seal_json<T: Serialize>(
        &self,
        base: &str,
        value: &T,
        same_site: &str,
        max_age_secs: i64,
    ) -> anyhow::Result<String> {
        let name = self.name(base);
        let sealed = self.keys.seal(&name, &serde_json::to_vec(value)?)?;
        Ok(format!(
            "{name}={sealed}; {}",
            self.attributes(true, same_site, max_age_secs)
        ))
    }

    fn clear(&self, base: &str, same_site: &str) -> String {
        format!(
            "{}=; {}",
            self.name(base),
            self.attributes(true, same_site, 0)
        )
    }

    pub fn session(&self, headers: &HeaderMap) -> Option<SessionState> {
        self.open_json(headers, SESSION)
    }

    pub fn set_session(&self, state: &SessionState, now_ms: i64) -> anyhow::Result<String> {
        self.seal_json(
            SESSION,
            state,
            "Lax",
            (state.refresh_expires_ms - now_ms) / 1000,
        )
    }

    pub fn clear_session(&self) -> String {
        self.clear(SESSION, "Lax")
    }

    pub fn mfa(&self, headers: &HeaderMap, now_ms: i64) -> Option<MfaState> {
        self.open_json::<MfaState>(headers, MFA)
            .filter(|state| state.expires_ms > now_ms)
    }

    pub fn set_mfa(&self, state: &MfaState, now_ms: i64) -> anyhow::Result<String> {
        self.seal_json(MFA, state, "Strict", (state.expires_ms - now_ms) / 1000)
    }

    pub fn clear_mfa(&self) -> String {
        self.clear(MFA, "Strict")
    }

    /// The double-submit CSRF token: readable by the page (not HttpOnly),
    /// sent back in `X-CSRF-Token`; other sites can neither read nor set it.
    pub fn csrf(&self, headers: &HeaderMap) -> Option<String> {
        cookie_value(headers, &self.name(CSRF))
            .filter(|v| v.len() >= 32)
            .map(str::to_owned)
    }

    pub fn new_csrf(&self) -> anyhow::Result<(String, String)> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let cookie = format!(
            "{}={token}; {}",
            self.name(CSRF),
            self.attributes(false, "Strict", 60 * 60 * 24 * 30)
        );
        Ok((token, cookie))
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Constant-time equality of two tokens.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

type RefreshResult = Result<SessionState, tonic::Status>;
/// When a refresh started, and its shared result.
type Flight = (Instant, Arc<OnceCell<RefreshResult>>);

/// One refresh per refresh token on this replica: requests that find the
/// same expired access token at once share one `RefreshSession` call (a second
/// call with the rotated token would count as reuse and revoke the session),
/// and the result is kept for a minute for requests that still carry the old
/// cookie.
#[derive(Default, Clone)]
pub struct Refresher {
    flights: Arc<Mutex<HashMap<[u8; 32], Flight>>>,
}

const KEEP_REFRESH: Duration = Duration::from_secs(60);

impl Refresher {
    pub async fn refresh<F, Fut>(&self, refresh_token: &str, call: F) -> RefreshResult
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = RefreshResult>,
    {
        let key: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
        let cell = {
            let mut flights = self
                .flights
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            flights.retain(|_, (at, _)| now.duration_since(*at) < KEEP_REFRESH);
            flights
                .entry(key)
                .or_insert_with(|| (now, Arc::new(OnceCell::new())))
                .1
                .clone()
        };
        cell.get_or_init(call).await.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> CookieKeys {
        CookieKeys::parse(&STANDARD.encode([7u8; 32])).unwrap()
    }

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, cookie.parse().unwrap());
        h
    }

    fn state() -> SessionState {
        SessionState {
            account_id: "a".into(),
            refresh_token: "r".into(),
            refresh_expires_ms: 10_000_000,
            access_token: "t".into(),
            access_expires_ms: 1_000,
        }
    }

    #[test]
    fn a_sealed_session_cookie_opens_with_the_same_keys() {
        let cookies = Cookies::new(keys(), false);
        let set = cookies.set_session(&state(), 0).unwrap();
        assert!(set.starts_with("__Host-recapp-session="));
        assert!(set.contains("HttpOnly") && set.contains("Secure") && set.contains("SameSite=Lax"));
        let value = set.split(';').next().unwrap();
        let opened = cookies.session(&headers(value)).unwrap();
        assert_eq!(opened.refresh_token, "r");
    }

    #[test]
    fn a_session_cookie_does_not_open_as_another_cookie_or_with_another_key() {
        let cookies = Cookies::new(keys(), true);
        let set = cookies.set_session(&state(), 0).unwrap();
        let value = set.split(';').next().unwrap().split_once('=').unwrap().1;
        assert!(
            cookies
                .mfa(&headers(&format!("recapp-mfa={value}")), 0)
                .is_none()
        );
        let other = Cookies::new(
            CookieKeys::parse(&STANDARD.encode([8u8; 32])).unwrap(),
            true,
        );
        assert!(
            other
                .session(&headers(&format!("recapp-session={value}")))
                .is_none()
        );
    }

    #[test]
    fn the_second_key_of_a_ring_still_opens_old_cookies() {
        let old = Cookies::new(keys(), true);
        let set = old.set_session(&state(), 0).unwrap();
        let value = set.split(';').next().unwrap();
        let ring = format!(
            "{},{}",
            STANDARD.encode([9u8; 32]),
            STANDARD.encode([7u8; 32])
        );
        let rotated = Cookies::new(CookieKeys::parse(&ring).unwrap(), true);
        assert!(rotated.session(&headers(value)).is_some());
    }

    #[test]
    fn a_key_of_the_wrong_length_is_refused() {
        assert!(CookieKeys::parse(&STANDARD.encode([1u8; 16])).is_err());
        assert!(CookieKeys::parse("").is_err());
    }

    #[test]
    fn the_dev_flag_drops_secure_and_the_host_prefix() {
        let cookies = Cookies::new(keys(), true);
        let set = cookies.set_session(&state(), 0).unwrap();
        assert!(set.starts_with("recapp-session="));
        assert!(!set.contains("Secure"));
    }

    #[tokio::test]
    async fn concurrent_refreshes_of_one_token_make_one_call() {
        let refresher = Refresher::default();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let refresher = refresher.clone();
                let calls = calls.clone();
                tokio::spawn(async move {
                    refresher
                        .refresh("same", || async move {
                            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok(state())
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_ok());
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
