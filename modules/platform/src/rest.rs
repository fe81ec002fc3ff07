//! What the REST clients of every module share: one pooled HTTP client, base URLs, and the
//! mapping of answers back into results — a problem+json body into a [`Problem`] the
//! module client turns into its own error enum, a network failure into a 503 problem.

use std::time::Duration;

use actix_web::http::StatusCode;
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::problem::{Problem, ProblemDocument};

/// The HTTP client every REST client of a process shares (one connection pool).
///
/// # Errors
/// The TLS-less client cannot be built (does not happen in practice).
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
}

/// A module's REST endpoint: base URL plus the shared client.
#[derive(Clone)]
pub struct RestClient {
    base: String,
    http: reqwest::Client,
}

impl RestClient {
    pub fn new(base_url: &str, http: reqwest::Client) -> Self {
        Self { base: base_url.trim_end_matches('/').to_owned(), http }
    }

    /// A request to `path` (absolute, e.g. `/api/auth/me`), optionally as `bearer`, carrying
    /// the id of the request being served (if any) as `X-Request-Id`.
    pub fn request(&self, method: Method, path: &str, bearer: Option<&str>) -> RequestBuilder {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(id) = crate::http::current_request_id() {
            rb = rb.header("x-request-id", id);
        }
        match bearer {
            Some(token) => rb.bearer_auth(token),
            None => rb,
        }
    }

    /// Sends and decodes a 2xx JSON answer.
    ///
    /// # Errors
    /// The service's problem for a non-2xx answer; a 503 problem when it cannot be reached
    /// or answers something that is not ours.
    pub async fn json<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T, Problem> {
        let res = self.send(rb).await?;
        res.json::<T>().await.map_err(|e| Problem::unavailable(format!("unreadable answer from {}: {e}", self.base)))
    }

    /// Sends and expects a 2xx answer without a body of interest.
    ///
    /// # Errors
    /// As [`RestClient::json`].
    pub async fn empty(&self, rb: RequestBuilder) -> Result<(), Problem> {
        self.send(rb).await.map(drop)
    }

    /// Sends in a client span whose context goes along as `traceparent`.
    async fn send(&self, rb: RequestBuilder) -> Result<Response, Problem> {
        let mut req =
            rb.build().map_err(|e| Problem::unavailable(format!("request to {} unbuildable: {e}", self.base)))?;
        let span = tracing::info_span!(
            "rest call",
            otel.name = %format_args!("{} {}", req.method(), crate::trace::path_template(req.url().path())),
            otel.kind = "client",
            url.full = %req.url(),
            http.response.status_code = tracing::field::Empty,
        );
        if let Some(value) = crate::trace::traceparent_of(&span).and_then(|v| HeaderValue::from_str(&v).ok()) {
            req.headers_mut().insert(crate::trace::TRACEPARENT, value);
        }
        let res = self
            .http
            .execute(req)
            .instrument(span.clone())
            .await
            .map_err(|e| Problem::unavailable(format!("{} unreachable: {e}", self.base)))?;
        span.record("http.response.status_code", res.status().as_u16());
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let retry_after =
            res.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        match res.json::<ProblemDocument>().await {
            Ok(doc) => Err(Problem::from_document(status, doc, retry_after)),
            Err(_) => Err(Problem::unavailable(format!("{} answered {status} without a problem document", self.base))),
        }
    }
}
