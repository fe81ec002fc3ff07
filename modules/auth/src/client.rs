//! [`AuthApi`] over REST, for processes where auth runs elsewhere.

use std::net::IpAddr;

use async_trait::async_trait;
use platform::config::Secret;
use platform::identity::{AuthUser, Jwks, UserId};
use platform::rest::RestClient;
use reqwest::Method;

use crate::api::{AuthApi, AuthError, Credentials, RefreshRequest, Registration, TokenPair, UserView};

pub struct AuthClient {
    rest: RestClient,
    /// Presented to auth's internal routes (`services.token`).
    service_token: Secret,
}

impl AuthClient {
    /// `base_url` is where auth serves `/api/auth` (e.g. `http://auth:8001`);
    /// `service_token` opens its internal routes.
    pub fn new(base_url: &str, http: reqwest::Client, service_token: Secret) -> Self {
        Self { rest: RestClient::new(base_url, http), service_token }
    }
}

#[async_trait]
impl AuthApi for AuthClient {
    async fn register(&self, registration: Registration) -> Result<UserView, AuthError> {
        let rb = self.rest.request(Method::POST, "/api/auth/register", None).json(&registration);
        Ok(self.rest.json(rb).await?)
    }

    /// The address is not forwarded: auth sees this process's address, and limits it.
    async fn login(&self, credentials: Credentials, _client: Option<IpAddr>) -> Result<TokenPair, AuthError> {
        let rb = self.rest.request(Method::POST, "/api/auth/token", None).json(&credentials);
        Ok(self.rest.json(rb).await?)
    }

    async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let body = RefreshRequest { refresh_token: refresh_token.to_owned() };
        let rb = self.rest.request(Method::POST, "/api/auth/refresh", None).json(&body);
        Ok(self.rest.json(rb).await?)
    }

    async fn logout(&self, refresh_token: &str) -> Result<(), AuthError> {
        let body = RefreshRequest { refresh_token: refresh_token.to_owned() };
        let rb = self.rest.request(Method::POST, "/api/auth/logout", None).json(&body);
        Ok(self.rest.empty(rb).await?)
    }

    async fn me(&self, caller: &AuthUser) -> Result<UserView, AuthError> {
        let rb = self.rest.request(Method::GET, "/api/auth/me", Some(&caller.bearer));
        Ok(self.rest.json(rb).await?)
    }

    async fn user(&self, id: UserId) -> Result<UserView, AuthError> {
        let rb =
            self.rest.request(Method::GET, &format!("/internal/auth/users/{id}"), Some(self.service_token.expose()));
        Ok(self.rest.json(rb).await?)
    }

    async fn jwks(&self) -> Result<Jwks, AuthError> {
        let rb = self.rest.request(Method::GET, "/api/auth/jwks", None);
        Ok(self.rest.json(rb).await?)
    }
}
