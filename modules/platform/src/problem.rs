//! RFC 7807 problem documents: the only shape in which an error leaves a boxoffice process.
//!
//! Module error enums convert into [`Problem`]; the extractor error handlers in
//! [`crate::http`] build them too, so malformed input never produces actix's plain-text
//! defaults. Internal failures are logged with their cause and shown to the client only
//! as a generic 500 with the request id to quote.
//!
//! Every module error enum has the same face, [`ProblemKind`]: each variant has its own
//! stable problem type (`/problems/{kind}`, plus extension members for its data), and the
//! REST client reads the variant back from that type alone, never from the status or the
//! text. [`assert_round_trip`] checks that contract in each module's tests.

use std::borrow::Cow;
use std::fmt;

#[cfg(feature = "server")]
use actix_web::http::header::{self, HeaderValue};
#[cfg(feature = "server")]
use actix_web::{HttpResponse, ResponseError};
/// The status of a problem: the `http` 0.2 type that actix-web re-exports, so the same value
/// serves actix and builds without it.
pub use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Failure, chain};
use crate::validation::{FieldError, FieldErrors};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every problem type is this base followed by its kind, e.g. `/problems/seats-unavailable`:
/// a URI reference relative to the server that answered.
pub const TYPE_BASE: &str = "/problems/";

/// The kinds (problem types after [`TYPE_BASE`]) every module shares; a module's own kinds are
/// constants beside its error enum.
pub mod kind {
    pub const MALFORMED_REQUEST: &str = "malformed-request";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const FORBIDDEN: &str = "forbidden";
    pub const NOT_FOUND: &str = "not-found";
    pub const VALIDATION: &str = "validation";
    pub const RATE_LIMITED: &str = "rate-limited";
    pub const UNAVAILABLE: &str = "dependency-unavailable";
    pub const INTERNAL: &str = "internal";
}

/// A module's error enum as it crosses the wire: the one face the five modules share.
///
/// `Into<Problem>` gives each variant its status, title, detail and extension members;
/// `From<Problem>` is its inverse for the REST client, choosing the variant by
/// [`Problem::kind`] alone (an unknown kind is `internal`, keeping the problem as its cause).
pub trait ProblemKind: Sized + fmt::Debug + Into<Problem> + From<Problem> {
    /// The stable kind of this variant: its problem type after [`TYPE_BASE`]. Clients match
    /// on it, so it never changes once published.
    fn problem_type(&self) -> &'static str;

    /// The variant for a dependency that cannot be reached (503, [`kind::UNAVAILABLE`]);
    /// `reason` is shown to the client.
    fn unavailable(reason: String) -> Self;

    /// The variant for a failure inside the process (500, [`kind::INTERNAL`]); `cause` is
    /// logged where it becomes a problem, never shown.
    fn internal(cause: Failure) -> Self;
}

/// What a REST client makes of `error`: the problem the server sends for it (its document,
/// status and `Retry-After`), read back.
pub fn through_the_wire<E: ProblemKind>(error: E) -> E {
    let problem: Problem = error.into();
    let (status, retry_after) = (problem.status(), problem.retry_after_seconds());
    let received = serde_json::to_vec(&problem.document()).and_then(|wire| serde_json::from_slice(&wire));
    match received {
        Ok(doc) => E::from(Problem::from_document(status, doc, retry_after)),
        Err(e) => E::internal(Failure::new("unreadable problem document", e)),
    }
}

/// The contract of a module's error enum, for its round-trip test: `errors` (values of every
/// variant but the internal one) each come back from [`through_the_wire`] as they left, and
/// each variant has a kind of its own; an internal error comes back internal, without its cause.
///
/// # Panics
/// When the contract is broken (it is a test).
pub fn assert_round_trip<E: ProblemKind>(errors: impl IntoIterator<Item = E>) {
    let secret = "root cause the client must not see";
    let internal = E::internal(Failure::new("context", std::io::Error::other(secret)));
    let mut kinds = std::collections::HashMap::from([(internal.problem_type(), std::mem::discriminant(&internal))]);
    for original in errors {
        let (expected, kind) = (format!("{original:?}"), original.problem_type());
        let variant = std::mem::discriminant(&original);
        assert_eq!(*kinds.entry(kind).or_insert(variant), variant, "two variants share the problem type {kind}");
        let received = through_the_wire(original);
        assert_eq!(format!("{received:?}"), expected, "{kind} does not survive the trip to a client");
    }
    let received = through_the_wire(internal);
    assert_eq!(received.problem_type(), kind::INTERNAL);
    assert!(!format!("{received:?}").contains(secret), "an internal error leaks its cause: {received:?}");
}

/// An RFC 7807 problem document plus the response headers some problems need.
#[derive(Clone)]
pub struct Problem {
    status: StatusCode,
    kind: Cow<'static, str>,
    title: Cow<'static, str>,
    detail: String,
    extra: Map<String, Value>,
    retry_after_seconds: Option<u64>,
}

impl Problem {
    /// A problem of type `/problems/{kind}`; `title` is the short, fixed summary of that kind.
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind: Cow::Borrowed(kind),
            title: Cow::Borrowed(title),
            detail: detail.into(),
            extra: Map::new(),
            retry_after_seconds: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, kind::MALFORMED_REQUEST, "Malformed request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, kind::UNAUTHORIZED, "Authentication required", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, kind::FORBIDDEN, "Not allowed", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, kind::NOT_FOUND, "Not found", detail)
    }

    pub fn conflict(kind: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, title, detail)
    }

    /// 422 naming every offending field, in `detail` and as `errors: [{field, message}]`.
    pub fn validation(errors: &FieldErrors) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, kind::VALIDATION, "Invalid request values", errors.to_string())
            .with("errors", serde_json::to_value(errors.as_slice()).unwrap_or(Value::Null))
    }

    pub fn too_many_requests(retry_after_seconds: u64, detail: impl Into<String>) -> Self {
        let mut p = Self::new(StatusCode::TOO_MANY_REQUESTS, kind::RATE_LIMITED, "Too many requests", detail);
        p.retry_after_seconds = Some(retry_after_seconds.max(1));
        p
    }

    /// A dependency (database, cache, another module) is down: 503 with `Retry-After`.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        let mut p =
            Self::new(StatusCode::SERVICE_UNAVAILABLE, kind::UNAVAILABLE, "Service temporarily unavailable", detail);
        p.retry_after_seconds = Some(5);
        p
    }

    /// Tells the client when to try again (`Retry-After`).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds.max(1));
        self
    }

    /// A bug or an unexpected infrastructure failure. The cause is logged here, with its
    /// whole chain and the request's span, and never sent to the client.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %chain(cause), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            kind::INTERNAL,
            "Internal error",
            "An unexpected error occurred; quote the X-Request-Id when reporting it.",
        )
    }

    /// Adds an extension member (e.g. `unavailable_seat_ids`).
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The short kind, e.g. `validation` for type `/problems/validation`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub fn extra(&self, key: &str) -> Option<&Value> {
        self.extra.get(key)
    }

    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.retry_after_seconds
    }

    /// The field errors of a validation problem (its `errors` member), e.g. as received over
    /// REST; a problem without them counts as one error on `body`.
    pub fn field_errors(&self) -> FieldErrors {
        let listed = self.extra("errors").and_then(|v| serde_json::from_value::<Vec<FieldError>>(v.clone()).ok());
        let mut errors = FieldErrors::new();
        match listed {
            Some(list) if !list.is_empty() => list.into_iter().for_each(|e| errors.add(&e.field, e.message)),
            _ => errors.add("body", self.detail.clone()),
        }
        errors
    }

    /// Rebuilds a problem received from another boxoffice service (see [`crate::rest`]).
    pub fn from_document(status: StatusCode, doc: ProblemDocument, retry_after_seconds: Option<u64>) -> Self {
        let kind = doc.kind.strip_prefix(TYPE_BASE).unwrap_or(&doc.kind).to_owned();
        Self {
            status,
            kind: Cow::Owned(kind),
            title: Cow::Owned(doc.title),
            detail: doc.detail,
            extra: doc.extra,
            retry_after_seconds,
        }
    }

    /// The wire form of this problem.
    pub fn document(&self) -> ProblemDocument {
        ProblemDocument {
            kind: format!("{TYPE_BASE}{}", self.kind),
            title: self.title.to_string(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            extra: self.extra.clone(),
        }
    }
}

/// The wire form of a problem (`type`, `title`, `status`, `detail`, extension members).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProblemDocument {
    /// URI reference naming the problem kind, e.g. `/problems/validation`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    /// Extension members such as `errors` (validation) or `unavailable_seat_ids`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

impl fmt::Debug for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.kind, self.detail)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.title, self.detail)
    }
}

impl std::error::Error for Problem {}

#[cfg(feature = "server")]
impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if let Some(seconds) = self.retry_after_seconds {
            res.insert_header((header::RETRY_AFTER, seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        res.body(serde_json::to_vec(&self.document()).unwrap_or_default())
    }
}
