//! The `/api/payments` routes. They call [`PaymentApi`], so they serve the same contract
//! whichever implementation is behind it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use platform::extract::{Json, Query};
use platform::identity::AuthUser;
use platform::problem::{Problem, ProblemDocument};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::api::{
    PayRequest, Payment, PaymentApi, PaymentId, PaymentQuery, PaymentStatus, Transaction, TransactionId,
    TransactionKind, TransactionStatus,
};

/// The header that makes `POST /pay` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Mounts the routes under `/api/payments`. They serve the `web::Data<dyn PaymentApi>` of the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/payments")
            .service(web::resource("/pay").route(web::post().to(pay)))
            .service(web::resource("/payments").route(web::get().to(list)))
            .service(web::resource("/payments/{id}").route(web::get().to(get)))
            .service(web::resource("/payments/{id}/refund").route(web::post().to(refund))),
    );
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    paths(pay, list, get, refund),
    components(schemas(
        PayRequest, Payment, PaymentId, PaymentStatus, Transaction, TransactionId, TransactionKind,
        TransactionStatus, ProblemDocument
    )),
    tags((name = "payments", description = "Charges, refunds and the transaction log"))
)]
pub struct PaymentDoc;

type Api = web::Data<dyn PaymentApi>;

/// Pay a pending booking. The same `Idempotency-Key` with the same body answers the first
/// answer again and charges once; with another body it is a 422. A declined card is a 201
/// with status `failed` (the booking stays pending: pay again with another card and a new key).
#[utoipa::path(post, path = "/api/payments/pay", tag = "payments", request_body = PayRequest, security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, description = "1–255 characters, unique per payment attempt; kept 24 h")),
    responses(
        (status = 201, description = "Charged (`completed`) or declined (`failed`)", body = Payment),
        (status = 400, description = "No or malformed Idempotency-Key", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such booking of the caller's", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The booking is paid, expired or cancelled (`booking-not-pending`), or a payment of it is running (`payment-in-progress`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Malformed card fields, or the key was used with another body", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The gateway or booking is unreachable; nothing was charged, retry with the same key", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn pay(api: Api, caller: AuthUser, req: HttpRequest, body: Json<PayRequest>) -> Result<HttpResponse, Problem> {
    let key = req
        .headers()
        .get(IDEMPOTENCY_KEY)
        .ok_or_else(|| Problem::bad_request("the Idempotency-Key header is required"))?
        .to_str()
        .map_err(|_| {
            Problem::bad_request("the Idempotency-Key header must be printable ASCII without surrounding spaces")
        })?;
    let payment = api.pay(&caller, key, body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/payments/payments/{}", payment.id)))
        .json(payment))
}

/// The caller's payments, newest first.
#[utoipa::path(get, path = "/api/payments/payments", tag = "payments", params(PaymentQuery), security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of payments", body = inline(platform::pagination::Page<Payment>)),
        (status = 403, description = "`all` asked by a customer", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn list(api: Api, caller: AuthUser, query: Query<PaymentQuery>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.list(&caller, query.into_inner()).await?))
}

/// A payment of the caller's (or any, for an admin) with its transactions.
#[utoipa::path(get, path = "/api/payments/payments/{id}", tag = "payments", params(("id" = Uuid, Path, description = "The payment's id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The payment", body = Payment),
        (status = 404, description = "No such payment of the caller's", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn get(api: Api, caller: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.payment(&caller, PaymentId(id.into_inner())).await?))
}

/// Refund a completed payment in full (admins).
#[utoipa::path(post, path = "/api/payments/payments/{id}/refund", tag = "payments", params(("id" = Uuid, Path, description = "The payment's id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Refunded", body = Payment),
        (status = 403, description = "Not an admin", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such payment", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Not completed (failed or already refunded)", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn refund(api: Api, caller: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.refund(&caller, PaymentId(id.into_inner())).await?))
}
