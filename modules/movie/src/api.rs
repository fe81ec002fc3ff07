//! The movie module's contract, shared by the in-process service and the REST client.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use platform::error::Failure;
use platform::identity::AuthUser;
use platform::money::Money;
use platform::pagination::{Page, PageRequest};
use platform::problem::{Problem, ProblemKind, kind};
use platform::validation::FieldErrors;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

platform::id_type!(
    /// A movie of the catalog.
    MovieId
);
platform::id_type!(
    /// A theater (auditorium).
    TheaterId
);
platform::id_type!(
    /// A seat of a theater; the same seat in every showtime there.
    SeatId
);
platform::id_type!(
    /// One screening of a movie in a theater.
    ShowtimeId
);

/// A movie as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Movie {
    pub id: MovieId,
    pub title: String,
    pub description: String,
    pub duration_minutes: u32,
    pub genre: String,
    pub release_date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster_url: Option<String>,
}

/// Body of `POST /api/movies/movies` and `PUT /api/movies/movies/{id}` (a full replacement).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MovieInput {
    /// Not empty; at most 200 characters.
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Greater than 0, at most 1440.
    pub duration_minutes: i64,
    /// Not empty; at most 50 characters; compared case-insensitively when filtering.
    pub genre: String,
    /// Years 1–9999.
    #[serde(deserialize_with = "platform::validation::bounded::date")]
    pub release_date: NaiveDate,
    #[serde(default)]
    pub rating: Option<String>,
    /// An http(s) URL.
    #[serde(default)]
    pub poster_url: Option<String>,
}

/// `GET /api/movies/movies` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MovieQuery {
    /// Only this genre (case-insensitive).
    pub genre: Option<String>,
    /// Text that must appear in the title (case-insensitive).
    pub q: Option<String>,
    /// 1-based page number, at most 1000000 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
}

/// What a seat is, which decides its price multiplier. Stored under its wire name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[cfg_attr(feature = "server", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
#[cfg_attr(feature = "server", sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase"))]
#[serde(rename_all = "lowercase")]
pub enum SeatType {
    Standard,
    Premium,
    Accessible,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Seat {
    pub id: SeatId,
    pub row: String,
    pub number: u32,
    #[serde(rename = "type")]
    pub seat_type: SeatType,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Theater {
    pub id: TheaterId,
    pub name: String,
    pub location: String,
    /// In layout order: by row as laid out, then by number.
    pub seats: Vec<Seat>,
}

/// One row of a theater layout: `seats` seats numbered from 1, all of one type.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RowLayout {
    /// A label unique in the theater, 1–8 letters or digits (e.g. `A`).
    pub row: String,
    /// 1–50.
    pub seats: i64,
    /// `standard`, `premium` or `accessible`.
    #[serde(rename = "type", default = "standard")]
    pub seat_type: String,
}

/// [`SeatType::Standard`]'s name (the field stays text so that a wrong type is a 422 naming
/// the row, not an unreadable body).
fn standard() -> String {
    "standard".to_owned()
}

/// Body of `POST /api/movies/theaters`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TheaterInput {
    pub name: String,
    pub location: String,
    /// At least one row, front to back.
    pub layout: Vec<RowLayout>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Showtime {
    pub id: ShowtimeId,
    pub movie_id: MovieId,
    pub theater_id: TheaterId,
    pub start_time: DateTime<Utc>,
    /// Base price in minor units; a seat costs this times its type's multiplier.
    pub price_cents: Money,
    /// ISO 4217.
    pub currency: String,
    pub seats_total: u32,
    /// Eventually consistent (updated from booking events); the seat map is exact.
    pub seats_available: u32,
}

/// Body of `POST /api/movies/showtimes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ShowtimeInput {
    pub movie_id: MovieId,
    pub theater_id: TheaterId,
    /// In the future; years up to 9999.
    #[serde(deserialize_with = "platform::validation::bounded::datetime")]
    pub start_time: DateTime<Utc>,
    /// Greater than 0.
    pub price_cents: Money,
    /// ISO 4217, three upper-case letters; default `USD`.
    #[serde(default)]
    pub currency: Option<String>,
}

/// `GET /api/movies/showtimes` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShowtimeQuery {
    pub movie_id: Option<MovieId>,
    pub theater_id: Option<TheaterId>,
    /// A UTC calendar day (`YYYY-MM-DD`, years 1–9999); without it, showtimes from now on.
    #[serde(default, deserialize_with = "platform::validation::bounded::optional_date")]
    pub date: Option<NaiveDate>,
    /// 1-based page number, at most 1000000 (default 1).
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<u64>,
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
}

/// A seat's state in one showtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeatStatus {
    Available,
    Held,
    Booked,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct SeatMapEntry {
    pub id: SeatId,
    pub row: String,
    pub number: u32,
    #[serde(rename = "type")]
    pub seat_type: SeatType,
    /// The showtime's price times this seat type's multiplier, rounded half up.
    pub price_cents: Money,
    pub status: SeatStatus,
}

/// A seat with what it costs in one showtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PricedSeat {
    pub id: SeatId,
    pub row: String,
    pub number: u32,
    #[serde(rename = "type")]
    pub seat_type: SeatType,
    /// The showtime's price times this seat type's multiplier, rounded half up.
    pub price_cents: Money,
}

/// What a booking needs to sell seats of a showtime: the showtime and every seat of its
/// theater with its price, read from the database (never from the catalog cache).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShowtimePricing {
    pub showtime: Showtime,
    pub seats: Vec<PricedSeat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct SeatMap {
    pub showtime_id: ShowtimeId,
    pub seats: Vec<SeatMapEntry>,
}

/// A seat map as served: its JSON document and its validator, a hash of its content (every
/// seat's id, place, type, price and state), so the tag changes whenever a seat changes hands
/// and is the same in every replica of one build (the hasher's keys are fixed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatMapDocument {
    pub json: String,
    /// The `ETag` value without quotes (weak: the body may be compressed or not).
    pub tag: String,
}

impl SeatMapDocument {
    /// `FORMAT` changes with the document's shape, so a client's old copy is not taken for the
    /// new one after an upgrade.
    const FORMAT: u32 = 1;

    /// # Errors
    /// `Internal` if the map does not serialize (it always does).
    pub fn of(map: &SeatMap) -> Result<Self, MovieError> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        (Self::FORMAT, map).hash(&mut hasher);
        let json =
            serde_json::to_string(map).map_err(|e| MovieError::Internal(Failure::new("writing the seat map", e)))?;
        Ok(Self { json, tag: format!("{:016x}", hasher.finish()) })
    }
}

/// The key of `showtime`'s seat-state version in the deployment's key-value store
/// (`platform::kv::Versions`): booking bumps it after every commit that takes or frees a seat
/// of the showtime, and the seat map is served from a copy only while it is unchanged.
pub fn seat_version_key(showtime: ShowtimeId) -> String {
    format!("movie:seats:{}:version", showtime.0)
}

/// Everything the movie module can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum MovieError {
    #[error("invalid values: {0}")]
    Validation(FieldErrors),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Deleting a movie that still has showtimes to come.
    #[error("the movie has {0} showtime(s) to come")]
    HasFutureShowtimes(u64),
    /// A showtime that would overlap another in the same theater (cleaning gap included).
    #[error("overlaps showtime {0} in the same theater")]
    Overlap(ShowtimeId),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("this action needs the admin role")]
    Forbidden,
    #[error("movie unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] Failure),
}

impl MovieError {
    pub const HAS_FUTURE_SHOWTIMES: &str = "movie-has-showtimes";
    pub const OVERLAP: &str = "showtime-overlap";

    fn not_found_kind(what: &str) -> &'static str {
        match what {
            "movie" => "movie",
            "theater" => "theater",
            "showtime" => "showtime",
            _ => "resource",
        }
    }
}

impl ProblemKind for MovieError {
    fn problem_type(&self) -> &'static str {
        match self {
            Self::Validation(_) => kind::VALIDATION,
            Self::NotFound(_) => kind::NOT_FOUND,
            Self::HasFutureShowtimes(_) => Self::HAS_FUTURE_SHOWTIMES,
            Self::Overlap(_) => Self::OVERLAP,
            Self::Unauthenticated(_) => kind::UNAUTHORIZED,
            Self::Forbidden => kind::FORBIDDEN,
            Self::Unavailable(_) => kind::UNAVAILABLE,
            Self::Internal(_) => kind::INTERNAL,
        }
    }

    fn unavailable(reason: String) -> Self {
        Self::Unavailable(reason)
    }

    fn internal(cause: Failure) -> Self {
        Self::Internal(cause)
    }
}

impl From<MovieError> for Problem {
    fn from(e: MovieError) -> Self {
        let kind = e.problem_type();
        match e {
            MovieError::Validation(errors) => Problem::validation(&errors),
            MovieError::NotFound(what) => Problem::not_found(e.to_string()).with("resource", what),
            MovieError::HasFutureShowtimes(n) => {
                Problem::conflict(kind, "Movie has showtimes to come", e.to_string()).with("future_showtimes", n)
            }
            MovieError::Overlap(other) => Problem::conflict(kind, "Showtime overlaps another", e.to_string())
                .with("conflicting_showtime_id", other.to_string()),
            MovieError::Unauthenticated(reason) => Problem::unauthorized(reason),
            MovieError::Forbidden => Problem::forbidden(e.to_string()),
            MovieError::Unavailable(reason) => Problem::unavailable(reason),
            MovieError::Internal(_) => Problem::internal(&e),
        }
    }
}

impl From<Problem> for MovieError {
    /// The inverse of `From<MovieError> for Problem`, for answers received over REST.
    fn from(p: Problem) -> Self {
        let extra_str = |key: &str| p.extra(key).and_then(|v| v.as_str()).map(str::to_owned);
        match p.kind() {
            kind::VALIDATION => Self::Validation(p.field_errors()),
            kind::NOT_FOUND => Self::NotFound(Self::not_found_kind(&extra_str("resource").unwrap_or_default())),
            Self::HAS_FUTURE_SHOWTIMES => {
                Self::HasFutureShowtimes(p.extra("future_showtimes").and_then(serde_json::Value::as_u64).unwrap_or(1))
            }
            Self::OVERLAP => match extra_str("conflicting_showtime_id").and_then(|s| Uuid::parse_str(&s).ok()) {
                Some(id) => Self::Overlap(ShowtimeId(id)),
                None => Self::Internal(Failure::new("movie answered an overlap without the showtime", p)),
            },
            kind::UNAUTHORIZED => Self::Unauthenticated(p.detail().to_owned()),
            kind::FORBIDDEN => Self::Forbidden,
            kind::UNAVAILABLE => Self::Unavailable(p.detail().to_owned()),
            _ => Self::Internal(Failure::new("movie answered", p)),
        }
    }
}

/// The movie module, in process or over REST. Reads are public; writes take the caller and
/// MUST answer `Forbidden` unless the caller is an admin.
///
/// Implementations MUST return the same [`MovieError`] variants for the same situations;
/// the contract suite in `tests/api/movie_contract.rs` runs against both.
#[async_trait]
pub trait MovieApi: Send + Sync {
    /// Movies not deleted, by title, filtered by genre and title words.
    ///
    /// # Errors
    /// `Validation` for a bad page request.
    async fn list_movies(&self, query: MovieQuery) -> Result<Page<Movie>, MovieError>;

    /// # Errors
    /// `NotFound("movie")`, also for a deleted movie.
    async fn movie(&self, id: MovieId) -> Result<Movie, MovieError>;

    /// # Errors
    /// `Forbidden`; `Validation` naming each bad field.
    async fn create_movie(&self, caller: &AuthUser, input: MovieInput) -> Result<Movie, MovieError>;

    /// Replaces every field of the movie.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound("movie")`; `Validation`; `HasFutureShowtimes` when the duration
    /// would change while showtimes are to come (their end times were planned with it).
    async fn update_movie(&self, caller: &AuthUser, id: MovieId, input: MovieInput) -> Result<Movie, MovieError>;

    /// Takes the movie out of the catalog; its past showtimes stay for history.
    ///
    /// # Errors
    /// `Forbidden`; `NotFound("movie")`; `HasFutureShowtimes` while showtimes are to come.
    async fn delete_movie(&self, caller: &AuthUser, id: MovieId) -> Result<(), MovieError>;

    /// # Errors
    /// `Validation` for a bad page request.
    async fn list_theaters(&self, page: PageRequest) -> Result<Page<Theater>, MovieError>;

    /// # Errors
    /// `NotFound("theater")`.
    async fn theater(&self, id: TheaterId) -> Result<Theater, MovieError>;

    /// Creates the theater and one seat per position of its layout.
    ///
    /// # Errors
    /// `Forbidden`; `Validation` (no rows, more than 50 seats in a row, duplicate row labels,
    /// unknown seat type, empty name).
    async fn create_theater(&self, caller: &AuthUser, input: TheaterInput) -> Result<Theater, MovieError>;

    /// Showtimes by start time, filtered by movie, theater and day.
    ///
    /// # Errors
    /// `Validation` for a bad page request.
    async fn list_showtimes(&self, query: ShowtimeQuery) -> Result<Page<Showtime>, MovieError>;

    /// # Errors
    /// `NotFound("showtime")`.
    async fn showtime(&self, id: ShowtimeId) -> Result<Showtime, MovieError>;

    /// # Errors
    /// `Forbidden`; `Validation` (start in the past, price not positive, unknown movie or
    /// theater, bad currency); `Overlap` with another showtime of the theater, counting the
    /// movie's duration plus the configured cleaning gap.
    async fn create_showtime(&self, caller: &AuthUser, input: ShowtimeInput) -> Result<Showtime, MovieError>;

    /// The showtime and every seat of its theater with its price, uncached: what a booking
    /// charges.
    ///
    /// # Errors
    /// `NotFound("showtime")`.
    async fn pricing(&self, id: ShowtimeId) -> Result<ShowtimePricing, MovieError>;

    /// Every seat of the showtime's theater with its price and its exact state.
    ///
    /// # Errors
    /// `NotFound("showtime")`; `Unavailable` when seat states cannot be read.
    async fn seat_map(&self, id: ShowtimeId) -> Result<SeatMap, MovieError>;

    /// [`MovieApi::seat_map`] as served, which an implementation may answer from a copy it
    /// knows to be current.
    ///
    /// # Errors
    /// Those of [`MovieApi::seat_map`].
    async fn seat_map_document(&self, id: ShowtimeId) -> Result<std::sync::Arc<SeatMapDocument>, MovieError> {
        Ok(std::sync::Arc::new(SeatMapDocument::of(&self.seat_map(id).await?)?))
    }
}

/// The port through which the seat map learns seat states. Booking fills it; the movie
/// module never depends on booking.
#[async_trait]
pub trait SeatStates: Send + Sync {
    /// The held and booked seats of a showtime; every seat not listed is available.
    ///
    /// # Errors
    /// `Unavailable` when the states cannot be read.
    async fn taken_seats(&self, showtime: ShowtimeId) -> Result<HashMap<SeatId, SeatStatus>, MovieError>;

    /// Whether every change of these states bumps its [`seat_version_key`] in this process's
    /// key-value store: true for booking's own states in this process; a booking elsewhere
    /// bumps in the deployment's store, which is this process's only when that is Redis.
    fn versioned_here(&self) -> bool {
        false
    }
}

/// The booking events movie consumes, read as this tolerant view of
/// `booking::api::BookingEvent` (movie cannot depend on booking, which depends on it): only the
/// seats of the showtime. The root's tests (`tests/api/event_contract.rs`) check that every
/// booking event decodes here and that the keys agree.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type")]
pub enum BookingSeats {
    /// The booking's seats are taken.
    #[serde(rename = "booking.created")]
    Taken(SeatsOfBooking),
    /// The booking's seats are free again (cancelled or expired).
    #[serde(rename = "booking.cancelled")]
    Released(SeatsOfBooking),
    /// Any other booking event: it changes no seat's availability.
    #[serde(other)]
    Other,
}

impl BookingSeats {
    pub const TAKEN: &'static str = "booking.created";
    pub const RELEASED: &'static str = "booking.cancelled";
}

/// What movie reads of a booking event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SeatsOfBooking {
    pub showtime_id: ShowtimeId,
    pub seat_ids: Vec<SeatId>,
}

/// The queue movie consumes: booking events keep `seats_available`. A confirmation changes
/// nothing there, so `booking.confirmed` is not bound.
pub const QUEUE: platform::events::QueueSpec =
    platform::events::QueueSpec { name: "movie_queue", patterns: &[BookingSeats::TAKEN, BookingSeats::RELEASED] };

/// The module's configuration defaults (`config.toml` beside this crate's `Cargo.toml`): its
/// `[section]` and the URL it is reached at when served elsewhere.
pub const CONFIG: &str = include_str!("../config.toml");

#[cfg(test)]
mod tests {
    use super::*;

    /// What the REST client receives must map back to what the service returned.
    #[test]
    fn every_error_survives_the_trip_through_a_problem_document() {
        platform::problem::assert_round_trip([
            MovieError::Validation(FieldErrors::single("title", "must not be empty")),
            MovieError::NotFound("movie"),
            MovieError::NotFound("theater"),
            MovieError::NotFound("showtime"),
            MovieError::HasFutureShowtimes(3),
            MovieError::Overlap(ShowtimeId(Uuid::now_v7())),
            MovieError::Unauthenticated("token expired".to_owned()),
            MovieError::Forbidden,
            MovieError::Unavailable("movie database: down".to_owned()),
        ]);
    }
}
