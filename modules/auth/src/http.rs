//! The `/api/auth` routes. They call [`AuthApi`], so they serve the same contract whichever
//! implementation is behind it.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use platform::extract::{ClientAddr, Json, RawBody, parse_form, parse_json};
use platform::identity::{AuthUser, Jwks, ServiceCaller, UserId};
use platform::problem::{Problem, ProblemDocument};
use utoipa::OpenApi;

use crate::api::{AuthApi, Credentials, RefreshRequest, Registration, TokenPair, UserView};

/// Mounts the routes under `/api/auth`. They serve the `web::Data<dyn AuthApi>` of the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/auth")
            .service(web::resource("/register").route(web::post().to(register)))
            .service(web::resource("/token").route(web::post().to(token)))
            .service(web::resource("/refresh").route(web::post().to(refresh)))
            .service(web::resource("/logout").route(web::post().to(logout)))
            .service(web::resource("/me").route(web::get().to(me)))
            .service(web::resource("/jwks").route(web::get().to(jwks))),
    );
    // For other modules, with the service token; not in the OpenAPI document, and a gateway
    // routes only `/api`.
    cfg.service(web::resource("/internal/auth/users/{id}").route(web::get().to(user)));
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    paths(register, token, refresh, logout, me, jwks),
    components(schemas(Registration, Credentials, TokenPair, RefreshRequest, UserView, Jwks, ProblemDocument)),
    tags((name = "auth", description = "Accounts and tokens"))
)]
pub struct AuthDoc;

/// Create a customer account.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth", request_body = Registration,
    responses(
        (status = 201, description = "Account created", body = UserView),
        (status = 400, description = "Malformed JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Email or username taken", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, username or password", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn register(api: web::Data<dyn AuthApi>, body: Json<Registration>) -> Result<HttpResponse, Problem> {
    let user = api.register(body.into_inner()).await?;
    Ok(HttpResponse::Created().insert_header((header::LOCATION, "/api/auth/me")).json(user))
}

/// OAuth2 password grant: form-encoded (`username`, `password`, optional
/// `grant_type=password`) or the same fields as JSON. `username` may be the email.
#[utoipa::path(post, path = "/api/auth/token", tag = "auth",
    request_body(content(
        (Credentials = "application/x-www-form-urlencoded"),
        (Credentials = "application/json"),
    )),
    responses(
        (status = 200, description = "Token pair", body = TokenPair),
        (status = 401, description = "Wrong credentials", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Missing fields", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts (see Retry-After)", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn token(api: web::Data<dyn AuthApi>, client: ClientAddr, body: RawBody) -> Result<HttpResponse, Problem> {
    let credentials = parse_credentials(&body)?;
    let pair = api.login(credentials, client.0).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(pair))
}

#[derive(serde::Deserialize)]
struct PasswordGrant {
    grant_type: Option<String>,
    username: String,
    password: String,
}

fn parse_credentials(body: &RawBody) -> Result<Credentials, Problem> {
    let grant: PasswordGrant = match body.media_type.as_str() {
        "application/x-www-form-urlencoded" => parse_form(&body.bytes)?,
        "application/json" => parse_json(&body.bytes)?,
        _ => {
            return Err(Problem::new(
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send application/x-www-form-urlencoded or application/json",
            ));
        }
    };
    if grant.grant_type.as_deref().is_some_and(|g| g != "password") {
        return Err(Problem::bad_request("unsupported grant_type: only \"password\" is accepted")
            .with("error", "unsupported_grant_type"));
    }
    Ok(Credentials { username: grant.username, password: grant.password })
}

/// Exchange a refresh token for a new pair; the old one stops working.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "New token pair", body = TokenPair),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn refresh(api: web::Data<dyn AuthApi>, body: Json<RefreshRequest>) -> Result<HttpResponse, Problem> {
    let pair = api.refresh(&body.refresh_token).await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(pair))
}

/// Revoke a refresh token (its whole session).
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Logged out")))]
async fn logout(api: web::Data<dyn AuthApi>, body: Json<RefreshRequest>) -> Result<HttpResponse, Problem> {
    api.logout(&body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The calling user's account.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        (status = 401, description = "Missing or invalid token", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn me(api: web::Data<dyn AuthApi>, caller: AuthUser) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.me(&caller).await?))
}

/// Any user's account, for a module holding the service token.
async fn user(
    api: web::Data<dyn AuthApi>,
    _: ServiceCaller,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.user(UserId(id.into_inner())).await?))
}

/// The public keys that verify access tokens.
#[utoipa::path(get, path = "/api/auth/jwks", tag = "auth",
    responses((status = 200, description = "JSON Web Key Set", body = Jwks)))]
async fn jwks(api: web::Data<dyn AuthApi>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=300")).json(api.jwks().await?))
}
