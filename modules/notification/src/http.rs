//! The `/api/notifications` routes. They call [`NotificationApi`], so they serve the same
//! contract whichever implementation is behind it.

use actix_web::{HttpResponse, web};
use platform::extract::Query;
use platform::identity::AuthUser;
use platform::pagination::PageRequest;
use platform::problem::{Problem, ProblemDocument};
use utoipa::OpenApi;

use crate::api::{Channel, DeliveryStatus, Notification, NotificationApi, NotificationId, NotificationKind};

/// Mounts the routes under `/api/notifications`. They serve the `web::Data<dyn NotificationApi>`
/// of the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/api/notifications").service(web::resource("/notifications").route(web::get().to(list))));
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    paths(list),
    components(schemas(Notification, NotificationId, NotificationKind, Channel, DeliveryStatus, ProblemDocument)),
    tags((name = "notifications", description = "Messages sent to the caller about their bookings and payments"))
)]
pub struct NotificationDoc;

/// The caller's notifications, newest first, with their delivery state.
#[utoipa::path(get, path = "/api/notifications/notifications", tag = "notifications", params(PageRequest),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of notifications", body = inline(platform::pagination::Page<Notification>)),
        (status = 401, description = "Missing or invalid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Bad page or per_page", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn list(
    api: web::Data<dyn NotificationApi>,
    caller: AuthUser,
    page: Query<PageRequest>,
) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.list(&caller, page.into_inner()).await?))
}
