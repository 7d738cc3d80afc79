//! Bearer-token authentication: HS256 JSON Web Tokens with `sub` = user id and `exp`.
//!
//! Signing and checking HS256 is a few lines over the RustCrypto `hmac`/`sha2` crates; the
//! `jsonwebtoken` crate would need a crypto backend that also brings RSA, ECDSA and EdDSA, which
//! this server never uses. The check is strict: the header must say `HS256` (no `none`, no
//! algorithm confusion), the MAC is compared in constant time, `exp` is required.
//! `iat` and `nbf` are honoured: a token issued (or valid from) more than the leeway in the future
//! is refused. Tokens and secrets are never logged.
//!
//! Dev and secret mode never share a key ([`TokenKeys::dev`], [`TokenKeys::new`]): dev mode keeps
//! its own secret in `<db>.dev-token-secret` and signs with a key derived from it under a label
//! of its own, so a token the open dev route handed out is never valid once the same database
//! runs in secret mode, even if an operator passes that file's content as `--token-secret`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::app::AppState;
use crate::error::ApiError;
use crate::validate;

type HmacSha256 = Hmac<Sha256>;

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECS: u64 = 30;

/// Longest lifetime of an issued token (`--token-ttl`): 365 days. A bound keeps `iat + ttl` far
/// from overflowing and a dev token from living forever.
pub const MAX_TOKEN_TTL_SECS: u64 = 365 * 24 * 60 * 60;

/// The label under which dev mode derives its signing key from its secret (HMAC-SHA256 of the
/// label, keyed with the secret). Secret mode signs with the operator's secret as it is, so the
/// two keys differ whatever secrets are given.
const DEV_KEY_LABEL: &[u8] = b"chatsync dev-mode token signing key v1";

/// The claims the server signs and reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issued at, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before, seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Why a token was refused (all become 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments of JSON.
    #[error("malformed token")]
    Malformed,
    /// The header names another algorithm than HS256.
    #[error("token algorithm must be HS256")]
    WrongAlgorithm,
    /// The signature does not match this server's secret.
    #[error("invalid token signature")]
    BadSignature,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway for clock skew).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `sub` is not a valid user id.
    #[error("token subject is not a valid user id")]
    BadSubject,
}

/// Signs and verifies tokens with one shared secret.
#[derive(Clone)]
pub struct TokenKeys {
    secret: Vec<u8>,
    ttl_secs: u64,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("secret", &"<redacted>")
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TokenKeys {
    /// Secret mode's keys: tokens are signed and checked with `secret` as it is (the app's backend
    /// signs with the same secret); issued tokens live `ttl_secs`.
    pub fn new(secret: impl Into<Vec<u8>>, ttl_secs: u64) -> Self {
        TokenKeys {
            secret: secret.into(),
            ttl_secs,
        }
    }

    /// Dev mode's keys: the signing key is derived from `dev_secret` under dev mode's own label,
    /// so it never equals a secret-mode key, even over the same secret.
    pub fn dev(dev_secret: impl AsRef<[u8]>, ttl_secs: u64) -> Self {
        let mut mac = HmacSha256::new_from_slice(dev_secret.as_ref())
            .expect("HMAC accepts keys of any length");
        mac.update(DEV_KEY_LABEL);
        TokenKeys {
            secret: mac.finalize().into_bytes().to_vec(),
            ttl_secs,
        }
    }

    /// Lifetime of issued tokens, in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts keys of any length")
    }

    /// Signs arbitrary claims (the app's backend does the same with the shared secret).
    pub fn sign_claims(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "HS256".into(),
            typ: Some("JWT".into()),
        };
        let head = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header serializes"));
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signing_input = format!("{head}.{body}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// A token for `user_id` valid for the configured lifetime.
    pub fn issue(&self, user_id: &str) -> String {
        let now = now_secs();
        self.sign_claims(&Claims {
            sub: user_id.to_owned(),
            exp: now.saturating_add(self.ttl_secs),
            iat: Some(now),
            nbf: None,
        })
    }

    /// Checks a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut segments = token.split('.');
        let (Some(head), Some(body), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(TokenError::Malformed);
        };
        let header: Header = decode_json(head)?;
        if header.alg != "HS256" {
            return Err(TokenError::WrongAlgorithm);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(head.as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = decode_json(body)?;
        let now = now_secs();
        if claims.exp.saturating_add(LEEWAY_SECS) <= now {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
            return Err(TokenError::NotYetValid);
        }
        if claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
            return Err(TokenError::IssuedInFuture);
        }
        if validate::id("sub", &claims.sub).is_err() {
            return Err(TokenError::BadSubject);
        }
        Ok(claims)
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(segment: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// Where dev mode keeps its generated secret: beside the database, `<db file name>.dev-token-secret`.
/// Secret mode never reads it.
pub fn dev_secret_file_path(db_path: &Path) -> PathBuf {
    beside(db_path, ".dev-token-secret")
}

/// The file older versions kept one generated secret in for both modes (which is how a dev
/// token stayed valid in secret mode). No mode reads it any more; its presence is logged.
pub fn legacy_secret_file_path(db_path: &Path) -> PathBuf {
    beside(db_path, ".token-secret")
}

fn beside(db_path: &Path, suffix: &str) -> PathBuf {
    let mut name = db_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "chatsync.db".into());
    name.push(suffix);
    db_path.with_file_name(name)
}

/// A new secret: 256 random bits, hex.
pub fn new_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads the dev secret kept beside the database, generating it (256 random bits, hex, mode 0600)
/// on first use.
pub fn load_or_create_secret(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the file is empty",
            ))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let secret = new_secret()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(secret)
}

/// The authenticated caller: extracting it from a request checks the bearer token (401 otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub String);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("missing bearer token (Authorization: Bearer <token>)")
        })?;
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
            })?;
        let claims = state
            .keys
            .verify(token)
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        Ok(AuthUser(claims.sub))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify() {
        let keys = TokenKeys::new("s3cret", 60);
        assert_eq!(keys.verify(&keys.issue("alice")).unwrap().sub, "alice");
    }

    #[test]
    fn forged_expired_and_confused_tokens_are_refused() {
        let keys = TokenKeys::new("s3cret", 60);
        let other = TokenKeys::new("other", 60);
        assert_eq!(
            keys.verify(&other.issue("alice")),
            Err(TokenError::BadSignature)
        );
        let expired = keys.sign_claims(&Claims {
            sub: "alice".into(),
            exp: now_secs() - 3600,
            iat: None,
            nbf: None,
        });
        assert_eq!(keys.verify(&expired), Err(TokenError::Expired));
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let token = keys.issue("alice");
        let rest = token.split_once('.').unwrap().1;
        assert_eq!(
            keys.verify(&format!("{none_header}.{rest}")),
            Err(TokenError::WrongAlgorithm)
        );
        assert_eq!(keys.verify("a.b"), Err(TokenError::Malformed));
        assert_eq!(keys.verify("a.b.c.d"), Err(TokenError::Malformed));
        let bad_sub = keys.sign_claims(&Claims {
            sub: "".into(),
            exp: now_secs() + 60,
            iat: None,
            nbf: None,
        });
        assert_eq!(keys.verify(&bad_sub), Err(TokenError::BadSubject));
    }

    #[test]
    fn tokens_issued_in_the_future_are_refused_beyond_the_leeway() {
        let keys = TokenKeys::new("s3cret", 60);
        let at = |iat: u64| {
            keys.sign_claims(&Claims {
                sub: "alice".into(),
                exp: now_secs() + 7200,
                iat: Some(iat),
                nbf: None,
            })
        };
        assert_eq!(
            keys.verify(&at(now_secs() + 3600)),
            Err(TokenError::IssuedInFuture)
        );
        assert_eq!(
            keys.verify(&at(now_secs() + LEEWAY_SECS + 5)),
            Err(TokenError::IssuedInFuture)
        );
        // Clock skew within the leeway, and the past, are fine.
        assert!(keys.verify(&at(now_secs() + LEEWAY_SECS - 5)).is_ok());
        assert!(keys.verify(&at(now_secs() - 600)).is_ok());
    }

    #[test]
    fn the_largest_ttl_does_not_overflow() {
        let keys = TokenKeys::new("s3cret", u64::MAX);
        let claims = keys.verify(&keys.issue("alice")).unwrap();
        assert_eq!(claims.exp, u64::MAX);
    }

    #[test]
    fn dev_and_secret_keys_differ_even_over_the_same_secret() {
        let dev = TokenKeys::dev("same", 60);
        let secret = TokenKeys::new("same", 60);
        assert_eq!(
            secret.verify(&dev.issue("alice")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            dev.verify(&secret.issue("alice")),
            Err(TokenError::BadSignature)
        );
        // Deterministic: a restart in dev mode over the same secret file accepts its tokens.
        let again = TokenKeys::dev("same", 60);
        assert!(again.verify(&dev.issue("alice")).is_ok());
    }

    #[test]
    fn the_secret_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dev_secret_file_path(&dir.path().join("x.db"));
        assert!(path.ends_with("x.db.dev-token-secret"));
        let first = load_or_create_secret(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create_secret(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
    }
}
