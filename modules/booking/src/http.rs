//! The `/api/bookings` routes (and payment's internal hold route). They call [`BookingApi`], so they serve the same contract
//! whichever implementation is behind it.

use std::collections::HashMap;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use movie::api::{SeatId, SeatStatus, ShowtimeId};
use platform::extract::{Json, Query};
use platform::identity::{AuthUser, Role, ServiceCaller};
use platform::problem::{Problem, ProblemDocument};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::api::{BookRequest, BookedSeat, Booking, BookingApi, BookingId, BookingQuery, BookingStatus, PaymentHold};
use crate::service::feed::SeatFeeds;

/// Mounts the routes under `/api/bookings`. They serve the `web::Data<dyn BookingApi>` of the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/bookings")
            .service(web::resource("/book").route(web::post().to(book)))
            .service(web::resource("/bookings").route(web::get().to(list)))
            .service(web::resource("/bookings/{id}").route(web::get().to(get)))
            .service(web::resource("/bookings/{id}/cancel").route(web::post().to(cancel)))
            .service(web::resource("/showtimes/{id}/seat-states").route(web::get().to(seat_states)))
            .service(web::resource("/showtimes/{id}/seat-states/stream").route(web::get().to(seat_stream))),
    )
    .service(web::resource("/internal/bookings/bookings/{id}/payment-hold").route(web::post().to(payment_hold)));
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    paths(book, list, get, cancel, seat_states, seat_stream),
    components(schemas(BookRequest, Booking, BookedSeat, BookingStatus, BookingId, ProblemDocument)),
    tags((name = "bookings", description = "Seat holds and bookings"))
)]
pub struct BookingDoc;

type Api = web::Data<dyn BookingApi>;

/// Hold seats (all or nothing) until `expires_at`.
#[utoipa::path(post, path = "/api/bookings/book", tag = "bookings", request_body = BookRequest, security(("bearer" = [])),
    responses(
        (status = 201, description = "Seats held", body = Booking),
        (status = 404, description = "Unknown showtime", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Seats held or booked (`unavailable_seat_ids`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "No seats, too many, duplicates, a seat of another theater, a started showtime", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn book(api: Api, caller: AuthUser, body: Json<BookRequest>) -> Result<HttpResponse, Problem> {
    let booking = api.book(&caller, body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/bookings/bookings/{}", booking.id)))
        .json(booking))
}

/// The caller's bookings, newest first.
#[utoipa::path(get, path = "/api/bookings/bookings", tag = "bookings", params(BookingQuery), security(("bearer" = [])),
    responses((status = 200, description = "A page of bookings", body = inline(platform::pagination::Page<Booking>))))]
async fn list(api: Api, caller: AuthUser, query: Query<BookingQuery>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.list(&caller, query.into_inner()).await?))
}

/// A booking of the caller's (or any, for an admin).
#[utoipa::path(get, path = "/api/bookings/bookings/{id}", tag = "bookings", params(("id" = Uuid, Path, description = "The booking's id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The booking", body = Booking),
        (status = 404, description = "No such booking of the caller's", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn get(api: Api, caller: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.booking(&caller, BookingId(id.into_inner())).await?))
}

/// Cancel before the showtime starts; the seats are free again at once.
#[utoipa::path(post, path = "/api/bookings/bookings/{id}/cancel", tag = "bookings", params(("id" = Uuid, Path, description = "The booking's id")), security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled", body = Booking),
        (status = 404, description = "No such booking of the caller's", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Already cancelled or expired, or the showtime has started", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn cancel(api: Api, caller: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.cancel(&caller, BookingId(id.into_inner())).await?))
}

/// Payment is about to charge its customer's pending booking (internal: the payment module
/// calls it with the service token when booking runs elsewhere): the booking stays pending
/// until the charge's outcome arrives, even if its hold runs out meanwhile. 404 when the
/// booking is not that customer's, 409 when it is not pending or its hold ran out.
async fn payment_hold(
    api: Api,
    _service: ServiceCaller,
    id: web::Path<Uuid>,
    body: Json<PaymentHold>,
) -> Result<HttpResponse, Problem> {
    let PaymentHold { payment_id, user_id } = body.into_inner();
    let customer = AuthUser { id: user_id, role: Role::Customer, bearer: String::new() };
    Ok(HttpResponse::Ok().json(api.hold_for_payment(&customer, BookingId(id.into_inner()), payment_id).await?))
}

/// Held and booked seats of a showtime (the movie module's seat map reads it when booking
/// runs elsewhere).
#[utoipa::path(get, path = "/api/bookings/showtimes/{id}/seat-states", tag = "bookings", params(("id" = Uuid, Path, description = "The showtime's id")),
    responses((status = 200, description = "seat id → `held` or `booked`", body = HashMap<String, SeatStatus>)))]
async fn seat_states(api: Api, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    let states: HashMap<SeatId, SeatStatus> = api.seat_states(ShowtimeId(id.into_inner())).await?;
    Ok(HttpResponse::Ok().json(states))
}

/// The held and booked seats of a showtime as they change (Server-Sent Events; public): first a
/// `snapshot` event (`{"event": "snapshot", "seats": {seat id: "held" | "booked"}, "max_seats":
/// most seats per booking}`), then a `change` event (`{"event": "change", "seats": {seat id:
/// "held" | "booked" | "available"}}`) whenever seats change state, and a comment every 15 s.
/// A client that reconnects gets a new snapshot. Changes made in this process are sent at
/// once, those of other booking processes within `booking.seat_feed_poll_ms`.
#[utoipa::path(get, path = "/api/bookings/showtimes/{id}/seat-states/stream", tag = "bookings", params(("id" = Uuid, Path, description = "The showtime's id")),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 404, description = "Unknown showtime", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Too many streams open, or the catalog is unreachable", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn seat_stream(feeds: web::Data<SeatFeeds>, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    let follower = feeds.follow(ShowtimeId(id.into_inner())).await?;
    let events = futures_util::stream::unfold(follower, |mut follower| async move {
        let message = follower.next().await?;
        Some((Ok::<_, std::convert::Infallible>(message), follower))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // nginx (the gateway, an ingress) would otherwise buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events))
}
