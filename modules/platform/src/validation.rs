//! Field-level validation errors, collected so that one 422 names every bad field, and the
//! bounds every request shares: no control characters in text (PostgreSQL cannot store NUL,
//! and nothing we keep needs the others), dates within years 1–9999 (what RFC 3339 can write,
//! both databases store, and date arithmetic never overflows).

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Deserializer, Serialize};

/// One invalid field: the JSON path of the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every invalid field of one request. Empty means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// A single-field error, for checks that stop at the first problem.
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError { field: field.to_owned(), message: message.into() });
    }

    /// Records the error of `result` under `field` and returns its value, if any.
    pub fn check<T, E: fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[FieldError] {
        &self.0
    }

    /// `Ok(())` when nothing was recorded.
    pub fn into_result(self) -> Result<(), Self> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// Whether `text` holds a control character other than tab, line feed and carriage return.
/// The extractors of [`crate::extract`] refuse such text in every field of every request.
pub fn has_control_char(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

pub const CONTROL_CHAR_MESSAGE: &str = "must not contain control characters";

/// The first and last year a client may send in a date or time.
pub const MIN_YEAR: i32 = 1;
pub const MAX_YEAR: i32 = 9999;

fn year_in_range<E: serde::de::Error>(year: i32) -> Result<(), E> {
    if (MIN_YEAR..=MAX_YEAR).contains(&year) {
        Ok(())
    } else {
        Err(E::custom(format!("the year must be between {MIN_YEAR} and {MAX_YEAR}")))
    }
}

/// Serde `deserialize_with` helpers for the dates and times clients send: chrono alone
/// accepts years up to ±262142, which overflow date arithmetic, cannot be written back as
/// RFC 3339, and fail in PostgreSQL before 4713 BC. A value out of range is a serde error,
/// so the extractors answer 422 naming the field.
pub mod bounded {
    use super::{DateTime, Datelike, Deserialize, Deserializer, NaiveDate, Utc, year_in_range};

    /// A `YYYY-MM-DD` date in years 1–9999.
    ///
    /// # Errors
    /// Not a date, or out of range.
    pub fn date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        let date = NaiveDate::deserialize(d)?;
        year_in_range(date.year())?;
        Ok(date)
    }

    /// An optional [`date`] (with `#[serde(default)]`).
    ///
    /// # Errors
    /// As [`date`].
    pub fn optional_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
        let date = Option::<NaiveDate>::deserialize(d)?;
        if let Some(date) = date {
            year_in_range(date.year())?;
        }
        Ok(date)
    }

    /// An RFC 3339 time in years 1–9999 (UTC).
    ///
    /// # Errors
    /// Not a time, or out of range.
    pub fn datetime<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let time = DateTime::<Utc>::deserialize(d)?;
        year_in_range(time.year())?;
        Ok(time)
    }
}
