//! Who is calling: user ids, roles, access-token claims, the verifier every process uses,
//! and the `AuthUser` extractor handlers take to require a valid token.
//!
//! Tokens are verified locally in every process (no call to auth per request): the
//! algorithm is pinned to EdDSA, and issuer, audience, expiry and signature are checked
//! against the public keys of auth's JWKS — handed over directly when auth runs in the
//! same process, fetched (and refetched on an unknown `kid`, throttled) when it does not.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem::Problem;

#[cfg(feature = "server")]
mod verify;
#[cfg(feature = "server")]
pub use verify::{JwtVerifier, ServiceCaller, ServiceToken};

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
