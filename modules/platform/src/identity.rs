//! Who is calling: user ids, roles, access-token claims, the verifier every process uses,
//! and the `AuthUser` extractor handlers take to require a valid token.
//!
//! Tokens are verified locally in every process (no call to auth per request): the
//! algorithm is pinned to EdDSA, and issuer, audience, expiry and signature are checked
//! against the public keys of auth's JWKS — handed over directly when auth runs in the
//! same process, fetched (and refetched on an unknown `kid`, throttled) when it does not.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::JwtSettings;
use crate::problem::Problem;

/// A user's id, as carried in the token's `sub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct UserId(pub Uuid);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Stored (auth's `users.role`) under the same name as in tokens and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "server", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(feature = "server", sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Admin,
}

/// The claims of a boxoffice access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: Uuid,
}

/// One public key in JWK form (RFC 8037 for Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The public key, base64url without padding.
    pub x: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: String,
    /// Always `EdDSA`.
    pub alg: String,
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("missing bearer token")]
    Missing,
    #[error("token expired")]
    Expired,
    #[error("invalid token")]
    Invalid,
    /// The keys could not be fetched from auth: the token may well be valid.
    #[error("token keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl From<TokenError> for Problem {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::KeysUnavailable(reason) => Problem::unavailable(format!("cannot verify tokens now: {reason}")),
            other => Problem::unauthorized(other.to_string()),
        }
    }
}

struct RemoteKeys {
    jwks_url: String,
    http: reqwest::Client,
    min_refresh: Duration,
    /// When the last fetch was tried, and why it failed if it did.
    last_attempt: Mutex<Option<(Instant, Option<String>)>>,
    fetching: tokio::sync::Mutex<()>,
}

/// After a failed fetch, requests within this interval fail at once instead of queueing
/// behind another attempt (auth down must not stall every request for a timeout each).
const RETRY_FAILED_FETCH: Duration = Duration::from_secs(1);

/// Verifies access tokens. Cheap to share: hold it in `web::Data`.
pub struct JwtVerifier {
    validation: Validation,
    keys: RwLock<HashMap<String, DecodingKey>>,
    remote: Option<RemoteKeys>,
}

fn decoding_keys(jwks: &Jwks) -> HashMap<String, DecodingKey> {
    jwks.keys
        .iter()
        .filter(|k| k.kty == "OKP" && k.crv == "Ed25519" && k.alg == "EdDSA")
        .filter_map(|k| DecodingKey::from_ed_components(&k.x).ok().map(|d| (k.kid.clone(), d)))
        .collect()
}

impl JwtVerifier {
    fn validation(settings: &JwtSettings) -> Validation {
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[&settings.issuer]);
        v.set_audience(&[&settings.audience]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        v.leeway = settings.leeway_seconds;
        v
    }

    /// A verifier with a fixed key set: auth runs in this process.
    pub fn with_keys(settings: &JwtSettings, jwks: &Jwks) -> Self {
        Self { validation: Self::validation(settings), keys: RwLock::new(decoding_keys(jwks)), remote: None }
    }

    /// A verifier that fetches auth's JWKS from `jwks_url` on first use and whenever a
    /// token names an unknown `kid` (at most once per `jwks_min_refresh_seconds`).
    pub fn remote(settings: &JwtSettings, jwks_url: String, http: reqwest::Client) -> Self {
        Self {
            validation: Self::validation(settings),
            keys: RwLock::new(HashMap::new()),
            remote: Some(RemoteKeys {
                jwks_url,
                http,
                min_refresh: Duration::from_secs(settings.jwks_min_refresh_seconds),
                last_attempt: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// # Errors
    /// [`TokenError::Expired`] past `exp` (plus leeway); [`TokenError::Invalid`] for a bad
    /// signature, algorithm, issuer, audience, unknown key or malformed token;
    /// [`TokenError::KeysUnavailable`] when the keys had to be fetched and could not be.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        if let Some(result) = self.verify_with_known(&kid, token) {
            return result;
        }
        let Some(remote) = &self.remote else {
            return Err(TokenError::Invalid);
        };
        self.refresh(remote).await?;
        self.verify_with_known(&kid, token).unwrap_or(Err(TokenError::Invalid))
    }

    fn verify_with_known(&self, kid: &str, token: &str) -> Option<Result<Claims, TokenError>> {
        let keys = self.keys.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = keys.get(kid)?;
        Some(decode::<Claims>(token, key, &self.validation).map(|d| d.claims).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        }))
    }

    /// Refetches the key set unless another request just tried (one fetch at a time).
    async fn refresh(&self, remote: &RemoteKeys) -> Result<(), TokenError> {
        let _one_at_a_time = remote.fetching.lock().await;
        let previous = remote.last_attempt.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match previous {
            Some((at, None)) if at.elapsed() < remote.min_refresh => return Ok(()),
            Some((at, Some(error))) if at.elapsed() < RETRY_FAILED_FETCH => {
                return Err(TokenError::KeysUnavailable(error));
            }
            _ => {}
        }
        let fetched = async {
            let res = remote.http.get(&remote.jwks_url).timeout(Duration::from_secs(5)).send().await?;
            res.error_for_status()?.json::<Jwks>().await
        }
        .await;
        let outcome = fetched.as_ref().err().map(ToString::to_string);
        *remote.last_attempt.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), outcome.clone()));
        let jwks = match (fetched, outcome) {
            (Ok(jwks), _) => jwks,
            (Err(_), reason) => {
                let reason = reason.unwrap_or_default();
                tracing::warn!(url = %remote.jwks_url, error = %reason, "fetching JWKS failed");
                return Err(TokenError::KeysUnavailable(reason));
            }
        };
        let fresh = decoding_keys(&jwks);
        tracing::info!(keys = fresh.len(), "JWKS refreshed");
        *self.keys.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }
}

/// The authenticated caller of a request: extracted from a valid `Authorization: Bearer`
/// token, or the request is answered 401 (503 when the keys cannot be fetched).
#[derive(Clone)]
pub struct AuthUser {
    pub id: UserId,
    pub role: Role,
    /// The caller's access token, forwarded by REST clients acting on the caller's behalf.
    pub bearer: String,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// # Errors
    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), Problem> {
        if self.is_admin() { Ok(()) } else { Err(Problem::forbidden("this action needs the admin role")) }
    }
}

/// Leaves the bearer token out: a caller logged with `?caller` (or inside an error's `Debug`)
/// must not put a usable credential into the logs.
impl fmt::Debug for AuthUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthUser").field("id", &self.id).field("role", &self.role).finish_non_exhaustive()
    }
}

fn bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

impl FromRequest for AuthUser {
    type Error = Problem;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Problem>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let verifier = req.app_data::<web::Data<JwtVerifier>>().cloned();
        Box::pin(async move {
            let token = token.ok_or(TokenError::Missing)?;
            let verifier = verifier.ok_or_else(|| Problem::internal(&"JwtVerifier missing from app data"))?;
            let claims = verifier.verify(&token).await?;
            Ok(AuthUser { id: claims.sub, role: claims.role, bearer: token })
        })
    }
}

/// The deployment's shared secret (`services.token`) that a module presents to another's
/// internal routes (under `/internal`, never `/api`, and never routed by the gateway): what a
/// service may ask that no user may, such as a user's address for notification.
#[derive(Clone)]
pub struct ServiceToken(pub crate::config::Secret);

/// A request to an internal route that presented the service token as its bearer token, or
/// the request is answered 401 (always, when `services.token` is not set).
#[derive(Debug)]
pub struct ServiceCaller;

impl FromRequest for ServiceCaller {
    type Error = Problem;
    type Future = std::future::Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let expected = req.app_data::<web::Data<ServiceToken>>().map(|t| t.0.expose().as_bytes().to_vec());
        let presented = bearer_token(req);
        std::future::ready(match (expected, presented) {
            (Some(expected), Some(presented))
                if !expected.is_empty() && same_secret(&expected, presented.as_bytes()) =>
            {
                Ok(ServiceCaller)
            }
            _ => Err(Problem::unauthorized("internal routes need the deployment's service token")),
        })
    }
}

/// Compares in time independent of where the two differ, so response times do not reveal
/// how much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auth_users_debug_shows_who_but_not_the_token() {
        let id = UserId(Uuid::nil());
        let user = AuthUser { id, role: Role::Admin, bearer: "eyJhbGciOiJFZERTQSJ9.secret-part.sig".to_owned() };
        for shown in [format!("{user:?}"), format!("{user:#?}"), format!("{:?}", Some(&user))] {
            assert!(!shown.contains("secret-part"), "{shown}");
            assert!(!shown.contains("eyJ"), "{shown}");
            assert!(shown.contains(&id.0.to_string()) && shown.contains("Admin"), "{shown}");
        }
    }
}
