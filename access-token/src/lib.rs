//! Short-lived access tokens: compact JWS (JWT) signed with Ed25519 (`alg: EdDSA`).
//!
//! The identity service holds a [`SigningKey`] and issues tokens with [`SigningKey::sign`];
//! every other service verifies them offline with [`verify`] against a [`KeySet`] built
//! from identity's published [`PublicKey`]s. When a token names a key id the verifier does
//! not know, [`peek_key_id`] lets it refetch the keys before trying again.
//!
//! The format is deliberately narrow: exactly one algorithm (`EdDSA`), one token type
//! (`at+jwt`, RFC 9068), one issuer ([`ISSUER`]). Nothing in a token chooses how it is
//! verified, so "alg: none" and algorithm-confusion tricks have nothing to work with.
//!
//! Roles are never in a token: the membership service reads them at request time.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The `iss` of every access token, and the only one [`verify`] accepts.
pub const ISSUER: &str = "recapp-identity";

/// The JOSE `typ` header of an access token (RFC 9068).
pub const TOKEN_TYPE: &str = "at+jwt";

/// The only JOSE `alg` this crate writes or accepts.
const ALGORITHM: &str = "EdDSA";

/// Tokens longer than this are rejected before any decoding.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// How far in the future `iat` may be (clock skew between identity and a verifier).
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;

/// How the user authenticated in this session (RFC 8176 `amr` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// A password.
    Pwd,
    /// A one-time password: a TOTP code or a single-use recovery code.
    Otp,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The account id.
    pub sub: uuid::Uuid,
    /// The account's email address when the token was issued.
    pub email: String,
    /// The session this token was issued for.
    pub sid: uuid::Uuid,
    /// How the user authenticated.
    pub amr: Vec<AuthMethod>,
    /// Whether TOTP is enrolled on the account.
    pub totp: bool,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds; the token is valid while `now < exp`.
    pub exp: i64,
    /// A unique id for this token.
    pub jti: uuid::Uuid,
}

impl Claims {
    /// Whether the user proved a second factor (a TOTP or recovery code) in this session.
    pub fn has_second_factor(&self) -> bool {
        self.amr.contains(&AuthMethod::Otp)
    }
}

/// Why a token could not be issued or was not accepted.
///
/// Messages never contain the token itself.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a well-formed token of our kind: wrong shape, too long, bad encoding, bad JSON,
    /// an algorithm other than EdDSA, a type other than `at+jwt`, or a `crit` header.
    /// Also returned by [`KeySet::new`] for a public key that is not a valid Ed25519 key.
    #[error("the token or key is malformed")]
    Malformed,
    /// The token names a key id that the key set does not contain.
    #[error("the token was signed with an unknown key id {0:?}")]
    UnknownKey(String),
    /// The signature does not match the token's header and claims.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// The token has expired, or its issue time is too far in the future.
    #[error("the token has expired or is not yet valid")]
    Expired,
    /// The token was not issued by [`ISSUER`].
    #[error("the token was issued by an unexpected issuer")]
    WrongIssuer,
    /// The token could not be encoded.
    #[error("the token could not be encoded: {0}")]
    Encode(String),
}

/// The JOSE header we write, and the fields we read back.
#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
    /// Critical extensions (RFC 7515 §4.1.11): we understand none, so any is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crit: Option<serde_json::Value>,
}

/// A private signing key with its key id. Only the identity service holds one.
#[derive(Clone)]
pub struct SigningKey {
    key_id: String,
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// Builds a key from its 32-byte Ed25519 secret (seed).
    pub fn from_bytes(key_id: impl Into<String>, secret: &[u8; 32]) -> Self {
        Self {
            key_id: key_id.into(),
            key: ed25519_dalek::SigningKey::from_bytes(secret),
        }
    }

    /// The key id written into the `kid` header of every token this key signs.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half, to publish to verifiers.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key_id: self.key_id.clone(),
            bytes: self.key.verifying_key().to_bytes(),
        }
    }

    /// Signs `claims` into a compact JWS with the header
    /// `{"alg":"EdDSA","typ":"at+jwt","kid":<key id>}`.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let header = Header {
            alg: ALGORITHM.to_owned(),
            typ: Some(TOKEN_TYPE.to_owned()),
            kid: Some(self.key_id.clone()),
            crit: None,
        };
        let header = serde_json::to_vec(&header).map_err(|e| TokenError::Encode(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| TokenError::Encode(e.to_string()))?;

        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        Ok(token)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A published public key: what verifiers need to check tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// The key id tokens name in their `kid` header.
    pub key_id: String,
    /// The 32-byte Ed25519 public key.
    pub bytes: [u8; 32],
}

/// The public keys a verifier trusts, by key id.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// Builds a key set.
    ///
    /// Fails with [`TokenError::Malformed`] when a key is not a valid Ed25519 point, is a
    /// weak (small-order) key, or when one key id is given two different keys.
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Result<Self, TokenError> {
        let mut map = HashMap::new();
        for key in keys {
            let verifying =
                VerifyingKey::from_bytes(&key.bytes).map_err(|_| TokenError::Malformed)?;
            if verifying.is_weak() {
                return Err(TokenError::Malformed);
            }
            if let Some(previous) = map.insert(key.key_id, verifying)
                && previous != verifying
            {
                return Err(TokenError::Malformed);
            }
        }
        Ok(Self { keys: map })
    }

    /// Whether the set has a key with this id.
    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    /// Whether the set has no keys at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// How many keys the set has.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The three parts of a compact token, split but not yet verified.
struct Parts<'a> {
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'a str,
    header: Header,
    payload: &'a str,
    signature: &'a str,
}

/// Checks the size and shape, decodes the header, and requires our algorithm and type.
fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Malformed)?;
    if payload.contains('.') || signature.is_empty() {
        return Err(TokenError::Malformed);
    }

    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let header: Header = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
    if header.alg != ALGORITHM
        || header.typ.as_deref() != Some(TOKEN_TYPE)
        || header.crit.is_some()
        || header.kid.as_deref().is_none_or(str::is_empty)
    {
        return Err(TokenError::Malformed);
    }

    Ok(Parts {
        signing_input,
        header,
        payload,
        signature,
    })
}

/// Reads the `kid` from the header without verifying the signature or the claims, so a
/// verifier can refetch its keys when a token names a key id it does not know.
///
/// The header must still be one [`verify`] would accept (EdDSA, `at+jwt`, a non-empty
/// `kid`), so garbage cannot trigger a refetch; a verifier should still rate-limit them.
pub fn peek_key_id(token: &str) -> Result<String, TokenError> {
    split(token)?.header.kid.ok_or(TokenError::Malformed)
}

/// Verifies a token and returns its claims.
///
/// In order: at most [`MAX_TOKEN_BYTES`], exactly three parts, header `alg` is `EdDSA` and
/// `typ` is `at+jwt` (anything else is [`TokenError::Malformed`]), the `kid` is in `keys`
/// (else [`TokenError::UnknownKey`]), the signature holds under `verify_strict` (else
/// [`TokenError::BadSignature`]), `iss` is [`ISSUER`] (else [`TokenError::WrongIssuer`]),
/// `now_unix < exp`, and `iat` is at most [`MAX_CLOCK_SKEW_SECS`] after `now_unix` (else
/// [`TokenError::Expired`]).
pub fn verify(token: &str, keys: &KeySet, now_unix: i64) -> Result<Claims, TokenError> {
    let parts = split(token)?;
    let kid = parts.header.kid.ok_or(TokenError::Malformed)?;
    let Some(key) = keys.keys.get(&kid) else {
        return Err(TokenError::UnknownKey(kid));
    };

    let signature = URL_SAFE_NO_PAD
        .decode(parts.signature)
        .map_err(|_| TokenError::Malformed)?;
    let signature = Signature::from_slice(&signature).map_err(|_| TokenError::Malformed)?;
    key.verify_strict(parts.signing_input.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;

    let payload = URL_SAFE_NO_PAD
        .decode(parts.payload)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;

    if claims.iss != ISSUER {
        return Err(TokenError::WrongIssuer);
    }
    if now_unix >= claims.exp || claims.iat > now_unix.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;

    fn key(id: &str, seed: u8) -> SigningKey {
        SigningKey::from_bytes(id, &[seed; 32])
    }

    fn keys(signing: &[&SigningKey]) -> KeySet {
        KeySet::new(signing.iter().map(|k| k.public_key())).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            iss: ISSUER.to_owned(),
            sub: uuid::Uuid::new_v4(),
            email: "ada@example.com".to_owned(),
            sid: uuid::Uuid::new_v4(),
            amr: vec![AuthMethod::Pwd],
            totp: false,
            iat: NOW,
            exp: NOW + 300,
            jti: uuid::Uuid::new_v4(),
        }
    }

    fn b64(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    /// Replaces the header of a real token, keeping its payload and signature.
    fn with_header(token: &str, header: serde_json::Value) -> String {
        let (_, rest) = token.split_once('.').unwrap();
        format!("{}.{rest}", b64(&header))
    }

    /// Replaces the payload of a real token, keeping its header and signature.
    fn with_payload(token: &str, payload: &Claims) -> String {
        let parts: Vec<&str> = token.split('.').collect();
        let payload = b64(&serde_json::to_value(payload).unwrap());
        format!("{}.{payload}.{}", parts[0], parts[2])
    }

    #[test]
    fn a_signed_token_verifies_and_returns_its_claims() {
        let signing = key("k1", 7);
        let claims = claims();

        let token = signing.sign(&claims).unwrap();

        assert_eq!(verify(&token, &keys(&[&signing]), NOW), Ok(claims));
    }

    #[test]
    fn the_header_names_the_algorithm_type_and_key_id() {
        let token = key("k1", 7).sign(&claims()).unwrap();

        let header = token.split('.').next().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();

        assert_eq!(
            header,
            serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"})
        );
    }

    #[test]
    fn peek_key_id_reads_the_kid_without_knowing_the_key() {
        let token = key("2025-06-key", 7).sign(&claims()).unwrap();

        assert_eq!(peek_key_id(&token), Ok("2025-06-key".to_owned()));
    }

    #[test]
    fn a_token_whose_payload_was_changed_is_rejected_with_bad_signature() {
        let signing = key("k1", 7);
        let token = signing.sign(&claims()).unwrap();
        let mut forged = verify(&token, &keys(&[&signing]), NOW).unwrap();
        forged.amr.push(AuthMethod::Otp);

        let tampered = with_payload(&token, &forged);

        assert_eq!(
            verify(&tampered, &keys(&[&signing]), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_signed_by_another_key_with_the_same_kid_is_rejected() {
        let real = key("k1", 7);
        let impostor = key("k1", 8);
        let token = impostor.sign(&claims()).unwrap();

        assert_eq!(
            verify(&token, &keys(&[&real]), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_with_a_flipped_signature_bit_is_rejected() {
        let signing = key("k1", 7);
        let token = signing.sign(&claims()).unwrap();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        signature[0] ^= 1;
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));

        assert_eq!(
            verify(&token, &keys(&[&signing]), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_token_is_rejected_as_expired_from_its_exp_second_on() {
        let signing = key("k1", 7);
        let claims = claims();
        let token = signing.sign(&claims).unwrap();
        let keys = keys(&[&signing]);

        assert!(verify(&token, &keys, claims.exp - 1).is_ok());
        assert_eq!(verify(&token, &keys, claims.exp), Err(TokenError::Expired));
        assert_eq!(
            verify(&token, &keys, claims.exp + 3600),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn a_token_issued_more_than_a_minute_in_the_future_is_rejected() {
        let signing = key("k1", 7);
        let keys = keys(&[&signing]);
        let mut early = claims();
        early.iat = NOW + 61;
        early.exp = NOW + 600;
        let mut skewed = early.clone();
        skewed.iat = NOW + 60;

        assert_eq!(
            verify(&signing.sign(&early).unwrap(), &keys, NOW),
            Err(TokenError::Expired)
        );
        assert!(verify(&signing.sign(&skewed).unwrap(), &keys, NOW).is_ok());
    }

    #[test]
    fn a_token_from_another_issuer_is_rejected() {
        let signing = key("k1", 7);
        let mut claims = claims();
        claims.iss = "someone-else".to_owned();
        let token = signing.sign(&claims).unwrap();

        assert_eq!(
            verify(&token, &keys(&[&signing]), NOW),
            Err(TokenError::WrongIssuer)
        );
    }

    #[test]
    fn a_token_with_an_unknown_kid_is_rejected_with_that_kid() {
        let known = key("k1", 7);
        let unknown = key("k2", 8);
        let token = unknown.sign(&claims()).unwrap();

        assert_eq!(
            verify(&token, &keys(&[&known]), NOW),
            Err(TokenError::UnknownKey("k2".to_owned()))
        );
        assert_eq!(
            verify(&token, &KeySet::default(), NOW),
            Err(TokenError::UnknownKey("k2".to_owned()))
        );
    }

    #[test]
    fn a_token_verifies_against_a_set_with_several_keys() {
        let old = key("k1", 7);
        let new = key("k2", 8);
        let keys = keys(&[&old, &new]);

        assert!(verify(&old.sign(&claims()).unwrap(), &keys, NOW).is_ok());
        assert!(verify(&new.sign(&claims()).unwrap(), &keys, NOW).is_ok());
    }

    #[test]
    fn a_header_with_alg_none_or_hs256_is_rejected() {
        let signing = key("k1", 7);
        let token = signing.sign(&claims()).unwrap();
        let keys = keys(&[&signing]);

        for alg in ["none", "HS256", "RS256", "ES256", "eddsa", "Ed25519"] {
            let forged = with_header(
                &token,
                serde_json::json!({"alg": alg, "typ": "at+jwt", "kid": "k1"}),
            );
            assert_eq!(
                verify(&forged, &keys, NOW),
                Err(TokenError::Malformed),
                "{alg}"
            );
            assert_eq!(peek_key_id(&forged), Err(TokenError::Malformed), "{alg}");
        }
    }

    #[test]
    fn an_unsigned_token_with_an_empty_signature_is_rejected() {
        let signing = key("k1", 7);
        let token = signing.sign(&claims()).unwrap();
        let (input, _) = token.rsplit_once('.').unwrap();
        let unsigned = with_header(
            &format!("{input}."),
            serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": "k1"}),
        );

        assert_eq!(
            verify(&unsigned, &keys(&[&signing]), NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify(&format!("{input}."), &keys(&[&signing]), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn a_header_with_the_wrong_or_no_typ_is_rejected() {
        let signing = key("k1", 7);
        let token = signing.sign(&claims()).unwrap();
        let keys = keys(&[&signing]);

        for header in [
            serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}),
            serde_json::json!({"alg": "EdDSA", "kid": "k1"}),
            serde_json::json!({"alg": "EdDSA", "typ": "at+jwt"}),
            serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": ""}),
            serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1", "crit": ["exp"]}),
        ] {
            let forged = with_header(&token, header.clone());
            assert_eq!(
                verify(&forged, &keys, NOW),
                Err(TokenError::Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn garbage_strings_are_rejected_as_malformed_without_panicking() {
        let signing = key("k1", 7);
        let keys = keys(&[&signing]);
        let huge = "a".repeat(1024 * 1024);
        let token = signing.sign(&claims()).unwrap();
        let too_long = format!("{token}{}", "A".repeat(MAX_TOKEN_BYTES));
        let four_parts = format!("{token}.AAAA");

        for garbage in [
            "",
            ".",
            "..",
            "...",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "!!!.@@@.###",
            "eyJhbGciOiJFZERTQSJ9.e30.AAAA",
            "\u{0}\u{1}.\u{2}.\u{3}",
            "ééé.ààà.üüü",
            huge.as_str(),
            too_long.as_str(),
            four_parts.as_str(),
        ] {
            assert_eq!(
                verify(garbage, &keys, NOW),
                Err(TokenError::Malformed),
                "{:.40}",
                garbage
            );
            assert_eq!(peek_key_id(garbage), Err(TokenError::Malformed));
        }
    }

    #[test]
    fn a_signed_payload_that_is_not_our_claims_is_malformed() {
        let signing = key("k1", 7);
        let header = b64(&serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"}));
        let payload = b64(&serde_json::json!({"iss": ISSUER, "sub": "not-a-uuid"}));
        let input = format!("{header}.{payload}");
        let signature = signing.key.sign(input.as_bytes());
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()));

        assert_eq!(
            verify(&token, &keys(&[&signing]), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn error_messages_never_contain_the_token() {
        let signing = key("k1", 7);
        let other = key("k2", 8);
        let token = signing.sign(&claims()).unwrap();
        let tampered = with_payload(&token, &claims());

        for (candidate, keys) in [
            (&token, keys(&[&other])),
            (&tampered, keys(&[&signing])),
            (&token, keys(&[&signing])),
        ] {
            if let Err(error) = verify(candidate, &keys, NOW + 3600) {
                let message = error.to_string();
                for part in candidate.split('.') {
                    assert!(!message.contains(part), "{message}");
                }
            }
        }
    }

    #[test]
    fn debug_of_a_signing_key_does_not_show_the_secret() {
        let secret = [0xAB; 32];
        let signing = SigningKey::from_bytes("k1", &secret);

        let debug = format!("{signing:?}");
        let alternate = format!("{signing:#?}");

        assert!(debug.contains("k1"));
        for shown in [debug, alternate] {
            assert!(!shown.contains("171"), "{shown}");
            assert!(!shown.to_lowercase().contains("abab"), "{shown}");
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn amr_serializes_as_rfc_8176_values() {
        let amr = vec![AuthMethod::Pwd, AuthMethod::Otp];

        assert_eq!(serde_json::to_string(&amr).unwrap(), r#"["pwd","otp"]"#);
        assert_eq!(
            serde_json::from_str::<Vec<AuthMethod>>(r#"["pwd","otp"]"#).unwrap(),
            amr
        );
    }

    #[test]
    fn only_an_otp_in_amr_counts_as_a_second_factor() {
        let mut claims = claims();
        assert!(!claims.has_second_factor());

        claims.amr.push(AuthMethod::Otp);
        assert!(claims.has_second_factor());
    }

    #[test]
    fn the_public_key_matches_the_signing_key_and_keeps_its_id() {
        let signing = key("k1", 7);

        let public = signing.public_key();

        assert_eq!(public.key_id, "k1");
        assert_eq!(signing.key_id(), "k1");
        assert_eq!(public.bytes, signing.key.verifying_key().to_bytes());
    }

    #[test]
    fn a_key_set_counts_and_finds_its_keys() {
        let set = keys(&[&key("k1", 7), &key("k2", 8)]);

        assert_eq!(set.len(), 2);
        assert!(!set.is_empty());
        assert!(set.contains("k1"));
        assert!(!set.contains("k3"));
        assert!(KeySet::default().is_empty());
    }

    #[test]
    fn a_key_set_rejects_invalid_or_weak_points_and_conflicting_ids() {
        // The y coordinate 2 is not on the curve (no x solves the equation).
        let mut not_on_curve = [0u8; 32];
        not_on_curve[0] = 2;
        // The identity point has small order: a weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(VerifyingKey::from_bytes(&not_on_curve).is_err());
        assert!(VerifyingKey::from_bytes(&identity).unwrap().is_weak());

        for bytes in [not_on_curve, identity] {
            let key = PublicKey {
                key_id: "bad".to_owned(),
                bytes,
            };
            assert_eq!(KeySet::new([key]).unwrap_err(), TokenError::Malformed);
        }

        let a = key("k1", 7).public_key();
        let b = key("k1", 8).public_key();
        assert_eq!(
            KeySet::new([a.clone(), b]).unwrap_err(),
            TokenError::Malformed
        );
        assert_eq!(KeySet::new([a.clone(), a]).unwrap().len(), 1);
    }
}
