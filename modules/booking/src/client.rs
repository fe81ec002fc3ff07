//! [`BookingApi`] over REST, for processes where booking runs elsewhere; it also gives the
//! movie module's seat map the seat states (`SeatStates`) from there.

use std::collections::HashMap;

use async_trait::async_trait;
use movie::api::{MovieError, SeatId, SeatStates, SeatStatus, ShowtimeId};
use platform::config::Secret;
use platform::identity::AuthUser;
use platform::pagination::Page;
use platform::rest::RestClient;
use reqwest::Method;
use uuid::Uuid;

use crate::api::{BookRequest, Booking, BookingApi, BookingError, BookingId, BookingQuery, PaymentHold};

pub struct BookingClient {
    rest: RestClient,
    /// `services.token`, for the internal hold route.
    service_token: Secret,
}

impl BookingClient {
    /// `base_url` is where booking serves `/api/bookings` (e.g. `http://booking:8003`).
    pub fn new(base_url: &str, http: reqwest::Client, service_token: Secret) -> Self {
        Self { rest: RestClient::new(base_url, http), service_token }
    }
}

#[async_trait]
impl BookingApi for BookingClient {
    async fn book(&self, caller: &AuthUser, request: BookRequest) -> Result<Booking, BookingError> {
        let rb = self.rest.request(Method::POST, "/api/bookings/book", Some(&caller.bearer)).json(&request);
        Ok(self.rest.json(rb).await?)
    }

    async fn list(&self, caller: &AuthUser, query: BookingQuery) -> Result<Page<Booking>, BookingError> {
        let rb = self.rest.request(Method::GET, "/api/bookings/bookings", Some(&caller.bearer)).query(&query);
        Ok(self.rest.json(rb).await?)
    }

    async fn booking(&self, caller: &AuthUser, id: BookingId) -> Result<Booking, BookingError> {
        let rb = self.rest.request(Method::GET, &format!("/api/bookings/bookings/{id}"), Some(&caller.bearer));
        Ok(self.rest.json(rb).await?)
    }

    async fn cancel(&self, caller: &AuthUser, id: BookingId) -> Result<Booking, BookingError> {
        let rb = self.rest.request(Method::POST, &format!("/api/bookings/bookings/{id}/cancel"), Some(&caller.bearer));
        Ok(self.rest.json(rb).await?)
    }

    async fn hold_for_payment(&self, caller: &AuthUser, id: BookingId, payment: Uuid) -> Result<Booking, BookingError> {
        let path = format!("/internal/bookings/bookings/{id}/payment-hold");
        let hold = PaymentHold { payment_id: payment, user_id: caller.id };
        let rb = self.rest.request(Method::POST, &path, Some(self.service_token.expose())).json(&hold);
        Ok(self.rest.json(rb).await?)
    }

    async fn seat_states(&self, showtime: ShowtimeId) -> Result<HashMap<SeatId, SeatStatus>, BookingError> {
        let rb = self.rest.request(Method::GET, &format!("/api/bookings/showtimes/{showtime}/seat-states"), None);
        Ok(self.rest.json(rb).await?)
    }
}

#[async_trait]
impl SeatStates for BookingClient {
    async fn taken_seats(&self, showtime: ShowtimeId) -> Result<HashMap<SeatId, SeatStatus>, MovieError> {
        BookingApi::seat_states(self, showtime).await.map_err(|e| MovieError::Unavailable(format!("booking: {e}")))
    }
}
