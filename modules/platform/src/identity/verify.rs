//! Token verification and the request extractors (feature `server`): the [`JwtVerifier`]
//! every process holds, [`AuthUser`] taken from a request's bearer token, and the service token
//! of internal routes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

use super::{AuthUser, Claims, Jwks, TokenError};
use crate::config::JwtSettings;
use crate::problem::Problem;

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
            let verifier = verifier
                .ok_or_else(|| Problem::internal(&crate::error::Failure::msg("JwtVerifier missing from app data")))?;
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
