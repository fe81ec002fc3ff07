//! Request extractors whose every failure is a problem document naming what is wrong:
//! bodies (`Json`, `RawBody`, `Admin`), query strings (`Query`), path ids, the caller's
//! address (`ClientAddr`). Module routes use these instead of actix's own, so that bad
//! input is answered the same way everywhere: malformed JSON 400, a wrong type or a missing
//! field 422 naming the field, text with a control character 422 naming the field (see
//! [`has_control_char`]), a body over `server.body_limit_bytes` 413, a wrong media type 415,
//! a path segment that does not parse 404.

use std::future::{Future, Ready, ready};
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::{PathError, PayloadError};
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;

use crate::http::client_addr;
use crate::identity::AuthUser;
use crate::problem::Problem;
use crate::validation::{CONTROL_CHAR_MESSAGE, FieldErrors, has_control_char};

/// App-wide extractor settings: the body limit, and 404 for path segments that do not parse.
pub fn configure(cfg: &mut web::ServiceConfig, body_limit: usize) {
    cfg.app_data(web::PayloadConfig::default().limit(body_limit))
        .app_data(web::PathConfig::default().error_handler(|e, _| path_error(&e).into()));
}

fn path_error(_: &PathError) -> Problem {
    // A segment that does not parse (e.g. not a UUID) names no resource; the parser's
    // message is not the client's business.
    Problem::not_found("no such resource")
}

fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        "Request body too large",
        "the request body exceeds the configured limit",
    )
}

fn unsupported(expected: &str) -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        "Unsupported media type",
        format!("expected Content-Type: {expected}"),
    )
}

fn media_type(req: &HttpRequest) -> String {
    let value = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    value.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn is_json(media_type: &str) -> bool {
    media_type == "application/json" || (media_type.starts_with("application/") && media_type.ends_with("+json"))
}

/// Deserializes `T` from JSON; a syntax error is 400, a wrong value 422 naming its path.
///
/// # Errors
/// As above.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if field == "." { "body".to_owned() } else { field };
                Problem::validation(&FieldErrors::single(&field, without_value(&inner.to_string())))
            }
            _ => Problem::bad_request(format!("malformed JSON: {inner}")),
        }
    })?;
    de.end().map_err(|e| Problem::bad_request(format!("malformed JSON: {e}")))?;
    if may_hold_control_char(body) {
        let mut errors = FieldErrors::new();
        if let Ok(tree) = serde_json::from_slice::<serde_json::Value>(body) {
            control_chars_in(&tree, String::new(), &mut errors);
        }
        errors.into_result().map_err(|e| Problem::validation(&e))?;
    }
    Ok(value)
}

/// Whether a JSON text that parsed may hold a control character in a string: unescaped,
/// JSON allows only DEL and the C1 controls (U+0080–U+009F, `C2 80`–`C2 9F` in UTF-8);
/// the others arrive as escapes. Most bodies have none of these, and skip the second parse.
fn may_hold_control_char(body: &[u8]) -> bool {
    body.windows(2).any(|w| matches!(w, [b'\\', b'u' | b'b' | b'f'] | [0xC2, 0x80..=0x9F])) || body.contains(&0x7F)
}

/// Names (as serde_path_to_error does: `layout[2].row`) every string holding a control
/// character.
fn control_chars_in(value: &serde_json::Value, path: String, errors: &mut FieldErrors) {
    let here = |path: &str| if path.is_empty() { "body".to_owned() } else { path.to_owned() };
    match value {
        serde_json::Value::String(s) if has_control_char(s) => errors.add(&here(&path), CONTROL_CHAR_MESSAGE),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                control_chars_in(item, format!("{path}[{i}]"), errors);
            }
        }
        serde_json::Value::Object(members) => {
            for (key, item) in members {
                if has_control_char(key) {
                    errors.add(&here(&path), "member names must not contain control characters");
                    continue;
                }
                let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                control_chars_in(item, path, errors);
            }
        }
        _ => {}
    }
}

/// A serde message without the offending value (`invalid type: integer `4242…`, expected a
/// string` → `invalid type: integer, expected a string`): a misplaced card number or password
/// is not echoed back in the answer.
fn without_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some(at) = rest.find(", expected")
        {
            let kind = rest[..at].split(['`', '"']).next().unwrap_or_default().trim_end();
            return format!("{prefix}{kind}{}", &rest[at..]);
        }
    }
    message.to_owned()
}

/// Deserializes `T` from `application/x-www-form-urlencoded` (or a query string); a wrong
/// or missing value is 422 naming its field.
///
/// # Errors
/// As above.
pub fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Result<T, Problem> {
    let pairs = url::form_urlencoded::parse(body);
    let mut errors = FieldErrors::new();
    for (name, value) in pairs {
        if has_control_char(&name) {
            errors.add("body", "parameter names must not contain control characters");
        } else if has_control_char(&value) {
            errors.add(&name, CONTROL_CHAR_MESSAGE);
        }
    }
    errors.into_result().map_err(|e| Problem::validation(&e))?;
    serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs)).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { "body".to_owned() } else { field };
        Problem::validation(&FieldErrors::single(&field, without_value(&e.into_inner().to_string())))
    })
}

type Boxed<T> = Pin<Box<dyn Future<Output = Result<T, Problem>>>>;

/// The request body, up to the configured limit, with its media type (lower-cased, without
/// parameters).
pub struct RawBody {
    pub media_type: String,
    pub bytes: web::Bytes,
}

impl FromRequest for RawBody {
    type Error = Problem;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let media_type = media_type(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| match e.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => too_large(),
                _ => Problem::bad_request(format!("cannot read the body: {e}")),
            })?;
            Ok(RawBody { media_type, bytes })
        })
    }
}

/// A JSON body (`application/json` or `application/*+json`).
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = Problem;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = RawBody::from_request(req, payload);
        Box::pin(async move {
            let body = body.await?;
            if !is_json(&body.media_type) {
                return Err(unsupported("application/json"));
            }
            parse_json(&body.bytes).map(Json)
        })
    }
}

/// An admin's request with a JSON body: the token is checked (401) and the role (403)
/// before the body is read, so a customer learns nothing from validation answers.
pub struct Admin<T> {
    pub caller: AuthUser,
    pub body: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for Admin<T> {
    type Error = Problem;
    type Future = Boxed<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = AuthUser::from_request(req, payload);
        let body = Json::<T>::from_request(req, payload);
        Box::pin(async move {
            let caller = caller.await?;
            caller.require_admin()?;
            let Json(body) = body.await?;
            Ok(Admin { caller, body })
        })
    }
}

/// A query string; a wrong value is 422 naming the parameter.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_form(req.query_string().as_bytes()).map(Query))
    }
}

/// The caller's address (see [`client_addr`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequest for ClientAddr {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ClientAddr(client_addr(req))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Card {
        card_number: String,
        month: u8,
    }

    fn message(body: &str) -> String {
        let problem = parse_json::<Card>(body.as_bytes()).unwrap_err();
        assert_eq!(problem.status().as_u16(), 422);
        problem.field_errors().as_slice()[0].message.clone()
    }

    #[test]
    fn a_wrongly_typed_value_is_named_but_not_echoed() {
        let m = message(r#"{"card_number": 4242424242424242, "month": 1}"#);
        assert!(m.starts_with("invalid type: integer, expected a string"), "{m}");
        let m = message(r#"{"card_number": "x", "month": 4242424242}"#);
        assert!(!m.contains("4242424242"), "{m}");
        let m = message(r#"{"card_number": "x", "month": "secret"}"#);
        assert!(!m.contains("secret") && m.contains("invalid type: string"), "{m}");
    }
}
