//! The auth module's contract, shared by the in-process service and the REST client.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use platform::error::Failure;
use platform::identity::{AuthUser, Jwks, Role, UserId};
use platform::problem::{Problem, ProblemKind, StatusCode, kind};
use platform::validation::FieldErrors;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/auth/register` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Registration {
    /// A valid address; stored lower-cased and unique.
    pub email: String,
    /// 3–32 of `[A-Za-z0-9_.-]`; unique regardless of case.
    pub username: String,
    /// At least 8 characters.
    #[schema(format = Password)]
    pub password: String,
}

/// Login credentials: `username` may be the username or the email address.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Credentials {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// An access token and the refresh token that renews it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    /// Opaque; single use: refreshing returns a new one and retires this one.
    pub refresh_token: String,
}

/// `POST /api/auth/refresh` and `/api/auth/logout` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Everything the auth module can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid values: {0}")]
    Validation(FieldErrors),
    #[error("email already registered")]
    EmailTaken,
    #[error("username already taken")]
    UsernameTaken,
    /// Same answer for an unknown user and a wrong password.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Unknown, expired, revoked or already used (the latter also revokes its family).
    #[error("refresh token invalid, expired or revoked")]
    InvalidRefreshToken,
    #[error("too many failed logins; retry in {retry_after_seconds} s")]
    TooManyAttempts { retry_after_seconds: u64 },
    /// The caller's token was refused (over REST: it expired between two checks).
    #[error("{0}")]
    Unauthenticated(String),
    #[error("user not found")]
    NotFound,
    /// The auth service or one of its dependencies cannot be reached.
    #[error("auth unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Failure),
}

impl AuthError {
    pub const EMAIL_TAKEN: &str = "email-taken";
    pub const USERNAME_TAKEN: &str = "username-taken";
    pub const INVALID_CREDENTIALS: &str = "invalid-credentials";
    pub const INVALID_REFRESH_TOKEN: &str = "invalid-refresh-token";
}

impl ProblemKind for AuthError {
    fn problem_type(&self) -> &'static str {
        match self {
            Self::Validation(_) => kind::VALIDATION,
            Self::EmailTaken => Self::EMAIL_TAKEN,
            Self::UsernameTaken => Self::USERNAME_TAKEN,
            Self::InvalidCredentials => Self::INVALID_CREDENTIALS,
            Self::InvalidRefreshToken => Self::INVALID_REFRESH_TOKEN,
            Self::TooManyAttempts { .. } => kind::RATE_LIMITED,
            Self::Unauthenticated(_) => kind::UNAUTHORIZED,
            Self::NotFound => kind::NOT_FOUND,
            Self::Unavailable(_) => kind::UNAVAILABLE,
            Self::Internal(_) => kind::INTERNAL,
        }
    }

    fn unavailable(reason: String) -> Self {
        Self::Unavailable(reason)
    }

    fn internal(cause: Failure) -> Self {
        Self::Internal(cause)
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        let kind = e.problem_type();
        match e {
            AuthError::Validation(errors) => Problem::validation(&errors),
            AuthError::EmailTaken => {
                Problem::conflict(kind, "Email already registered", e.to_string()).with("field", "email")
            }
            AuthError::UsernameTaken => {
                Problem::conflict(kind, "Username already taken", e.to_string()).with("field", "username")
            }
            AuthError::InvalidCredentials => {
                Problem::new(StatusCode::UNAUTHORIZED, kind, "Invalid credentials", e.to_string())
            }
            AuthError::InvalidRefreshToken => {
                Problem::new(StatusCode::UNAUTHORIZED, kind, "Invalid refresh token", e.to_string())
            }
            AuthError::TooManyAttempts { retry_after_seconds } => {
                Problem::too_many_requests(retry_after_seconds, e.to_string())
            }
            AuthError::Unauthenticated(reason) => Problem::unauthorized(reason),
            AuthError::NotFound => Problem::not_found(e.to_string()),
            AuthError::Unavailable(reason) => Problem::unavailable(reason),
            AuthError::Internal(_) => Problem::internal(&e),
        }
    }
}

impl From<Problem> for AuthError {
    /// The inverse of `From<AuthError> for Problem`, for answers received over REST.
    fn from(p: Problem) -> Self {
        match p.kind() {
            kind::VALIDATION => Self::Validation(p.field_errors()),
            Self::EMAIL_TAKEN => Self::EmailTaken,
            Self::USERNAME_TAKEN => Self::UsernameTaken,
            Self::INVALID_CREDENTIALS => Self::InvalidCredentials,
            Self::INVALID_REFRESH_TOKEN => Self::InvalidRefreshToken,
            kind::RATE_LIMITED => Self::TooManyAttempts { retry_after_seconds: p.retry_after_seconds().unwrap_or(1) },
            kind::UNAUTHORIZED => Self::Unauthenticated(p.detail().to_owned()),
            kind::NOT_FOUND => Self::NotFound,
            kind::UNAVAILABLE => Self::Unavailable(p.detail().to_owned()),
            _ => Self::Internal(Failure::new("auth answered", p)),
        }
    }
}

/// The auth module, in process or over REST.
///
/// Implementations MUST return the same [`AuthError`] variants for the same situations;
/// the contract suite in `tests/api/auth_contract.rs` runs against both.
#[async_trait]
pub trait AuthApi: Send + Sync {
    /// Creates a customer account.
    ///
    /// # Errors
    /// `Validation` naming each bad field; `EmailTaken` / `UsernameTaken`.
    async fn register(&self, registration: Registration) -> Result<UserView, AuthError>;

    /// Exchanges credentials for a token pair. `client` is the caller's address, for the
    /// per-address failure limit.
    ///
    /// # Errors
    /// `InvalidCredentials` (unknown user and wrong password alike); `TooManyAttempts`
    /// once failures for the account or the address exceed the configured limit.
    async fn login(&self, credentials: Credentials, client: Option<IpAddr>) -> Result<TokenPair, AuthError>;

    /// Rotates a refresh token: returns a new pair and retires the old token.
    ///
    /// # Errors
    /// `InvalidRefreshToken` for an unknown, expired or revoked token, and for a token that
    /// was already rotated — which also revokes every token of its family (theft response).
    async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError>;

    /// Revokes the refresh token (and the session it belongs to). Unknown tokens are ignored.
    ///
    /// # Errors
    /// Only `Unavailable` / `Internal`.
    async fn logout(&self, refresh_token: &str) -> Result<(), AuthError>;

    /// The calling user's account.
    ///
    /// # Errors
    /// `NotFound` when the account no longer exists.
    async fn me(&self, caller: &AuthUser) -> Result<UserView, AuthError>;

    /// Any user's account, for other modules (notification reads the address it writes to):
    /// never a route under `/api`. Over REST it is `GET /internal/auth/users/{id}`, presenting
    /// the deployment's service token.
    ///
    /// # Errors
    /// `NotFound`; `Unauthenticated` when auth refuses the service token (REST only).
    async fn user(&self, id: UserId) -> Result<UserView, AuthError>;

    /// The public keys that verify access tokens.
    ///
    /// # Errors
    /// Only `Unavailable` / `Internal`.
    async fn jwks(&self) -> Result<Jwks, AuthError>;
}

/// The module's configuration defaults (`config.toml` beside this crate's `Cargo.toml`): its
/// `[section]` and the URL it is reached at when served elsewhere.
pub const CONFIG: &str = include_str!("../config.toml");

#[cfg(test)]
mod tests {
    use super::*;

    /// What the REST client receives must map back to what the service returned.
    #[test]
    fn every_error_survives_the_trip_through_a_problem_document() {
        platform::problem::assert_round_trip([
            AuthError::Validation(FieldErrors::single("email", "must be an email address")),
            AuthError::EmailTaken,
            AuthError::UsernameTaken,
            AuthError::InvalidCredentials,
            AuthError::InvalidRefreshToken,
            AuthError::TooManyAttempts { retry_after_seconds: 42 },
            AuthError::Unauthenticated("token expired".to_owned()),
            AuthError::NotFound,
            AuthError::Unavailable("auth database: down".to_owned()),
        ]);
    }
}
