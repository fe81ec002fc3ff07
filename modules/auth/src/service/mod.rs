//! The in-process implementation of [`AuthApi`] on the module's own tables.

mod entity;
mod keys;
mod limiter;
mod password;
mod validate;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Algorithm, Header};
use platform::config::{JwtSettings, Secret};
use platform::error::Failure;
use platform::identity::{AuthUser, Claims, Jwks, Role, UserId};
use platform::kv::KeyValue;
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter, SqlErr};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::api::{AuthApi, AuthError, Credentials, Registration, TokenPair, UserView};
use entity::{refresh_token, user};
pub use keys::KEY_FILE;
use keys::SigningKeys;
use limiter::LoginLimiter;
use password::Passwords;

/// `[auth]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub access_token_ttl_seconds: u64,
    pub refresh_token_ttl_seconds: u64,
    /// Ed25519 private key as PKCS#8 PEM; empty: generated into the data dir on first start.
    pub signing_key: Secret,
    /// Failed-login limits; the rule is in `limiter` and this crate's `config.toml`.
    pub login_max_failures_per_account_address: u64,
    pub login_max_failures_per_account: u64,
    pub login_max_failures_per_address: u64,
    pub login_failure_window_seconds: u64,
    pub login_first_wait_seconds: u64,
    pub login_known_address_days: u64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// When set (with `admin_password`), this admin is created at start unless the email exists.
    pub admin_email: String,
    pub admin_password: Secret,
    pub admin_username: String,
}

impl AuthSettings {
    /// Checks that parse but make no sense; each error names its key.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.access_token_ttl_seconds == 0 {
            errors.push("auth.access_token_ttl_seconds must be greater than 0".to_owned());
        }
        if self.refresh_token_ttl_seconds < self.access_token_ttl_seconds {
            errors.push("auth.refresh_token_ttl_seconds must be at least auth.access_token_ttl_seconds".to_owned());
        }
        if self.login_max_failures_per_account_address == 0
            || self.login_max_failures_per_account == 0
            || self.login_max_failures_per_address == 0
        {
            errors.push(
                "auth.login_max_failures_per_account_address, _per_account and _per_address must be greater than 0"
                    .to_owned(),
            );
        }
        if self.login_failure_window_seconds == 0 || self.login_first_wait_seconds == 0 {
            errors.push(
                "auth.login_failure_window_seconds and login_first_wait_seconds must be greater than 0".to_owned(),
            );
        }
        if self.admin_email.is_empty() != self.admin_password.is_empty() {
            errors.push("auth.admin_email and auth.admin_password must be set together".to_owned());
        }
        errors
    }
}

pub struct AuthService {
    db: DatabaseConnection,
    settings: AuthSettings,
    jwt: JwtSettings,
    keys: SigningKeys,
    passwords: Passwords,
    limiter: LoginLimiter,
}

impl From<DbErr> for AuthError {
    fn from(e: DbErr) -> Self {
        platform::db::db_err("auth database", e)
    }
}

fn view(u: user::Model) -> UserView {
    UserView { id: UserId(u.id), email: u.email, username: u.username, role: u.role, created_at: u.created_at }
}

/// Hex SHA-256: how refresh tokens are stored and login identifiers keyed.
fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn seconds(s: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}

impl AuthService {
    /// Deletes the refresh tokens that have expired (used, revoked or not): an expired token is
    /// refused whatever its row says, so its row has nothing left to tell. Returns how many.
    ///
    /// # Errors
    /// Database failures.
    pub async fn purge_expired_sessions(&self) -> Result<u64, AuthError> {
        let purged = refresh_token::Entity::delete_many()
            .filter(refresh_token::Column::ExpiresAt.lt(Utc::now()))
            .exec(&self.db)
            .await?;
        Ok(purged.rows_affected)
    }

    /// Purges expired sessions at start and then hourly, until `stop`.
    pub async fn run_session_purge(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        platform::tasks::every(Duration::from_secs(3600), stop, || async {
            match self.purge_expired_sessions().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "forgot expired refresh tokens"),
                Err(e) => tracing::warn!(error = %platform::error::chain(&e), "purging expired refresh tokens failed"),
            }
        })
        .await;
    }

    /// # Errors
    /// Bad Argon2 parameters or an unusable signing key (the message names the key).
    pub fn new(
        db: DatabaseConnection,
        settings: &AuthSettings,
        jwt: &JwtSettings,
        data_dir: &Path,
        limits: Arc<dyn KeyValue>,
    ) -> Result<Self, String> {
        Ok(Self {
            db,
            keys: SigningKeys::load_or_generate(&settings.signing_key, data_dir)?,
            passwords: Passwords::new(
                settings.argon2_memory_kib,
                settings.argon2_iterations,
                settings.argon2_parallelism,
            )?,
            settings: settings.clone(),
            jwt: jwt.clone(),
            limiter: LoginLimiter::new(limits, settings),
        })
    }

    /// The public keys, for a verifier in the same process.
    pub fn public_keys(&self) -> Jwks {
        self.keys.jwks.clone()
    }

    /// Creates an account with the admin role (the CLI and configuration bootstrap; never
    /// reachable over HTTP). The username defaults to the email's local part.
    ///
    /// # Errors
    /// As [`AuthApi::register`].
    pub async fn create_admin(
        &self,
        email: &str,
        password: &str,
        username: Option<&str>,
    ) -> Result<UserView, AuthError> {
        let username = username.map_or_else(|| default_username(email), str::to_owned);
        let registration = Registration { email: email.to_owned(), username, password: password.to_owned() };
        self.create_user(&registration, Role::Admin).await
    }

    /// Creates the configured admin unless an account with that email exists.
    ///
    /// # Errors
    /// As [`AuthService::create_admin`], except `EmailTaken`.
    pub async fn ensure_configured_admin(&self) -> Result<(), AuthError> {
        if self.settings.admin_email.is_empty() {
            return Ok(());
        }
        let username = (!self.settings.admin_username.is_empty()).then_some(self.settings.admin_username.as_str());
        match self.create_admin(&self.settings.admin_email, self.settings.admin_password.expose(), username).await {
            Ok(admin) => {
                tracing::info!(user_id = %admin.id, "created the configured admin");
                Ok(())
            }
            Err(AuthError::EmailTaken) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn create_user(&self, registration: &Registration, role: Role) -> Result<UserView, AuthError> {
        let valid = validate::registration(registration).map_err(AuthError::Validation)?;
        let username_key = valid.username.to_lowercase();
        // Checked before hashing so a taken name costs no Argon2 work; the unique indexes
        // still decide when two registrations race.
        self.ensure_free(&valid.email, &username_key).await?;
        let password_hash = self.passwords.hash(valid.password).await?;
        let model = user::ActiveModel {
            id: Set(Uuid::now_v7()),
            email: Set(valid.email.clone()),
            username: Set(valid.username),
            username_key: Set(username_key.clone()),
            password_hash: Set(password_hash),
            role: Set(role),
            created_at: Set(Utc::now()),
        };
        match user::Entity::insert(model).exec_with_returning(&self.db).await {
            Ok(created) => Ok(view(created)),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                self.ensure_free(&valid.email, &username_key).await?;
                Err(AuthError::Internal(Failure::new("unique violation on a free email and username", e)))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn ensure_free(&self, email: &str, username_key: &str) -> Result<(), AuthError> {
        let taken = user::Entity::find()
            .filter(Condition::any().add(user::Column::Email.eq(email)).add(user::Column::UsernameKey.eq(username_key)))
            .all(&self.db)
            .await?;
        if taken.iter().any(|u| u.email == email) {
            return Err(AuthError::EmailTaken);
        }
        if !taken.is_empty() {
            return Err(AuthError::UsernameTaken);
        }
        Ok(())
    }

    fn access_token(&self, user_id: Uuid, role: Role) -> Result<String, AuthError> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: UserId(user_id),
            role,
            iss: self.jwt.issuer.clone(),
            aud: self.jwt.audience.clone(),
            iat: now,
            exp: now + i64::try_from(self.settings.access_token_ttl_seconds).unwrap_or(i64::MAX / 2),
            jti: Uuid::new_v4(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.keys.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.keys.encoding)
            .map_err(|e| AuthError::Internal(Failure::new("signing", e)))
    }

    /// Issues an access token and a refresh token of `family` (a new family on login).
    async fn issue_pair(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        user: &user::Model,
        family: Uuid,
    ) -> Result<TokenPair, AuthError> {
        let role = user.role;
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let refresh_token = URL_SAFE_NO_PAD.encode(secret);
        let now = Utc::now();
        refresh_token::Entity::insert(refresh_token::ActiveModel {
            id: Set(Uuid::now_v7()),
            family_id: Set(family),
            user_id: Set(user.id),
            token_hash: Set(token_hash(&refresh_token)),
            created_at: Set(now),
            expires_at: Set(now + seconds(self.settings.refresh_token_ttl_seconds)),
            used_at: Set(None),
            revoked_at: Set(None),
        })
        .exec(db)
        .await?;
        Ok(TokenPair {
            access_token: self.access_token(user.id, role)?,
            token_type: "bearer".to_owned(),
            expires_in: self.settings.access_token_ttl_seconds,
            refresh_token,
        })
    }

    async fn revoke_family(&self, family: Uuid) -> Result<(), AuthError> {
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(refresh_token::Column::FamilyId.eq(family))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

/// A username from an email's local part, made to fit the username rules.
fn default_username(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let mut name: String = local.chars().filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c)).take(32).collect();
    while name.len() < 3 {
        name.push('_');
    }
    name
}

#[async_trait]
impl AuthApi for AuthService {
    #[tracing::instrument(skip_all)]
    async fn register(&self, registration: Registration) -> Result<UserView, AuthError> {
        self.create_user(&registration, Role::Customer).await
    }

    #[tracing::instrument(skip_all)]
    async fn login(&self, credentials: Credentials, client: Option<IpAddr>) -> Result<TokenPair, AuthError> {
        let identifier = credentials.username.trim().to_lowercase();
        let column = if identifier.contains('@') { user::Column::Email } else { user::Column::UsernameKey };
        let found = user::Entity::find().filter(column.eq(identifier.as_str())).one(&self.db).await?;
        // An existing account is counted by id, whether named by username or email; an unknown
        // name by a digest of it (bounded key size, no addresses in the store).
        let account = found.as_ref().map_or_else(|| token_hash(&identifier), |u| u.id.to_string());
        let attempt = self.limiter.begin(&account, client).await?;
        let matches =
            self.passwords.verify(credentials.password, found.as_ref().map(|u| u.password_hash.clone())).await?;
        let user = match found {
            Some(user) if matches => user,
            _ => {
                metrics::counter!("auth_logins_total", "outcome" => "failed").increment(1);
                return Err(AuthError::InvalidCredentials);
            }
        };
        self.limiter.succeeded(attempt).await;
        metrics::counter!("auth_logins_total", "outcome" => "succeeded").increment(1);
        self.issue_pair(&self.db, &user, Uuid::now_v7()).await
    }

    #[tracing::instrument(skip_all)]
    async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let found = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(token_hash(refresh_token)))
            .one(&self.db)
            .await?
            .ok_or(AuthError::InvalidRefreshToken)?;
        if found.revoked_at.is_some() {
            return Err(AuthError::InvalidRefreshToken);
        }
        if found.used_at.is_some() {
            tracing::warn!(family = %found.family_id, "rotated refresh token reused; revoking its family");
            self.revoke_family(found.family_id).await?;
            return Err(AuthError::InvalidRefreshToken);
        }
        if found.expires_at <= Utc::now() {
            return Err(AuthError::InvalidRefreshToken);
        }
        let txn = platform::db::begin(&self.db, "refresh").await?;
        // Claim the token: of two concurrent refreshes with it, exactly one updates the row.
        let claimed = refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::value(Utc::now()))
            .filter(refresh_token::Column::Id.eq(found.id))
            .filter(refresh_token::Column::UsedAt.is_null())
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            drop(txn);
            tracing::warn!(family = %found.family_id, "refresh token used concurrently; revoking its family");
            self.revoke_family(found.family_id).await?;
            return Err(AuthError::InvalidRefreshToken);
        }
        let user = user::Entity::find_by_id(found.user_id).one(&txn).await?.ok_or(AuthError::InvalidRefreshToken)?;
        let pair = self.issue_pair(&txn, &user, found.family_id).await?;
        txn.commit().await?;
        Ok(pair)
    }

    #[tracing::instrument(skip_all)]
    async fn logout(&self, refresh_token: &str) -> Result<(), AuthError> {
        let found = refresh_token::Entity::find()
            .filter(refresh_token::Column::TokenHash.eq(token_hash(refresh_token)))
            .one(&self.db)
            .await?;
        if let Some(token) = found {
            self.revoke_family(token.family_id).await?;
        }
        Ok(())
    }

    async fn me(&self, caller: &AuthUser) -> Result<UserView, AuthError> {
        self.user(caller.id).await
    }

    async fn user(&self, id: UserId) -> Result<UserView, AuthError> {
        user::Entity::find_by_id(id.0).one(&self.db).await?.map(view).ok_or(AuthError::NotFound)
    }

    async fn jwks(&self) -> Result<Jwks, AuthError> {
        Ok(self.public_keys())
    }
}
