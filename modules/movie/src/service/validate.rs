//! Validation of admin input: every bad field is named in one 422.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use platform::money::Money;
use platform::validation::FieldErrors;
use sea_orm::ActiveEnum;

use crate::api::{MovieInput, SeatType, ShowtimeInput, TheaterInput};

pub const MAX_SEATS_PER_ROW: i64 = 50;
/// A ceiling far above any real ticket that keeps price arithmetic far from overflow.
pub const MAX_PRICE_CENTS: i64 = 100_000_000;

fn text(errors: &mut FieldErrors, field: &str, value: &str, max: usize) -> String {
    let value = value.trim();
    if value.is_empty() {
        errors.add(field, "must not be empty");
    } else if value.chars().count() > max {
        errors.add(field, format!("must be at most {max} characters"));
    }
    value.to_owned()
}

pub struct ValidMovie {
    pub title: String,
    pub description: String,
    pub duration_minutes: i32,
    pub genre: String,
    pub release_date: NaiveDate,
    pub rating: Option<String>,
    pub poster_url: Option<String>,
}

/// # Errors
/// Every invalid field, named.
pub fn movie(input: MovieInput) -> Result<ValidMovie, FieldErrors> {
    let mut errors = FieldErrors::new();
    let title = text(&mut errors, "title", &input.title, 200);
    let genre = text(&mut errors, "genre", &input.genre, 50);
    if input.description.chars().count() > 10_000 {
        errors.add("description", "must be at most 10000 characters");
    }
    let duration_minutes = match i32::try_from(input.duration_minutes) {
        Ok(d) if (1..=1440).contains(&d) => d,
        _ => {
            errors.add("duration_minutes", "must be between 1 and 1440");
            0
        }
    };
    let rating = input.rating.map(|r| text(&mut errors, "rating", &r, 16));
    if let Some(url) = &input.poster_url {
        let ok = (url.starts_with("https://") || url.starts_with("http://")) && url.len() <= 2048;
        if !ok {
            errors.add("poster_url", "must be an http(s) URL of at most 2048 characters");
        }
    }
    errors.into_result().map(|()| ValidMovie {
        title,
        description: input.description.trim().to_owned(),
        duration_minutes,
        genre,
        release_date: input.release_date,
        rating,
        poster_url: input.poster_url,
    })
}

/// The seat type a layout row names.
fn seat_type(name: &str) -> Result<SeatType, String> {
    SeatType::try_from_value(&name.to_owned())
        .map_err(|_| format!("unknown seat type {name:?}: expected standard, premium or accessible"))
}

pub struct ValidRow {
    pub label: String,
    pub seats: i32,
    pub seat_type: SeatType,
}

pub struct ValidTheater {
    pub name: String,
    pub location: String,
    pub rows: Vec<ValidRow>,
}

/// # Errors
/// Every invalid field, named by its path (e.g. `layout[2].seats`).
pub fn theater(input: TheaterInput) -> Result<ValidTheater, FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = text(&mut errors, "name", &input.name, 200);
    let location = text(&mut errors, "location", &input.location, 200);
    if input.layout.is_empty() {
        errors.add("layout", "must have at least one row");
    }
    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(input.layout.len());
    for (i, row) in input.layout.into_iter().enumerate() {
        let label = row.row.trim().to_uppercase();
        if label.is_empty() || label.len() > 8 || !label.bytes().all(|b| b.is_ascii_alphanumeric()) {
            errors.add(&format!("layout[{i}].row"), "must be 1-8 letters or digits");
        } else if !seen.insert(label.clone()) {
            errors.add(&format!("layout[{i}].row"), format!("row {label} appears twice"));
        }
        let seats = match i32::try_from(row.seats) {
            Ok(n) if (1..=MAX_SEATS_PER_ROW).contains(&i64::from(n)) => n,
            _ => {
                errors.add(&format!("layout[{i}].seats"), format!("must be between 1 and {MAX_SEATS_PER_ROW}"));
                0
            }
        };
        let seat_type = errors.check(&format!("layout[{i}].type"), seat_type(&row.seat_type));
        if let Some(seat_type) = seat_type {
            rows.push(ValidRow { label, seats, seat_type });
        }
    }
    errors.into_result().map(|()| ValidTheater { name, location, rows })
}

pub struct ValidShowtime {
    pub start_time: DateTime<Utc>,
    pub price_cents: Money,
    pub currency: String,
}

/// Checks the showtime's own fields; the movie and theater are checked against the database.
///
/// # Errors
/// Every invalid field, named.
pub fn showtime(input: &ShowtimeInput, now: DateTime<Utc>) -> Result<ValidShowtime, FieldErrors> {
    let mut errors = FieldErrors::new();
    if input.start_time <= now {
        errors.add("start_time", "must be in the future");
    }
    if !(1..=MAX_PRICE_CENTS).contains(&input.price_cents.cents()) {
        errors.add("price_cents", format!("must be between 1 and {MAX_PRICE_CENTS}"));
    }
    let currency = input.currency.clone().unwrap_or_else(|| "USD".to_owned());
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.add("currency", "must be an ISO 4217 code of three upper-case letters");
    }
    errors.into_result().map(|()| ValidShowtime {
        start_time: input.start_time,
        price_cents: input.price_cents,
        currency,
    })
}
