//! [`PaymentApi`] over REST, for processes where payment runs elsewhere.

use async_trait::async_trait;
use platform::identity::AuthUser;
use platform::pagination::Page;
use platform::rest::RestClient;
use reqwest::Method;

use crate::api::{PayRequest, Payment, PaymentApi, PaymentError, PaymentId, PaymentQuery};

pub struct PaymentClient {
    rest: RestClient,
}

impl PaymentClient {
    /// `base_url` is where payment serves `/api/payments` (e.g. `http://payment:8004`).
    pub fn new(base_url: &str, http: reqwest::Client) -> Self {
        Self { rest: RestClient::new(base_url, http) }
    }
}

#[async_trait]
impl PaymentApi for PaymentClient {
    async fn pay(&self, caller: &AuthUser, key: &str, request: PayRequest) -> Result<Payment, PaymentError> {
        // HTTP would strip or refuse what the service refuses: refuse it here alike.
        crate::api::check_idempotency_key(key)?;
        let rb = self
            .rest
            .request(Method::POST, "/api/payments/pay", Some(&caller.bearer))
            .header("Idempotency-Key", key)
            .json(&request);
        Ok(self.rest.json(rb).await?)
    }

    async fn list(&self, caller: &AuthUser, query: PaymentQuery) -> Result<Page<Payment>, PaymentError> {
        let rb = self.rest.request(Method::GET, "/api/payments/payments", Some(&caller.bearer)).query(&query);
        Ok(self.rest.json(rb).await?)
    }

    async fn payment(&self, caller: &AuthUser, id: PaymentId) -> Result<Payment, PaymentError> {
        let rb = self.rest.request(Method::GET, &format!("/api/payments/payments/{id}"), Some(&caller.bearer));
        Ok(self.rest.json(rb).await?)
    }

    async fn refund(&self, caller: &AuthUser, id: PaymentId) -> Result<Payment, PaymentError> {
        let rb = self.rest.request(Method::POST, &format!("/api/payments/payments/{id}/refund"), Some(&caller.bearer));
        Ok(self.rest.json(rb).await?)
    }
}
