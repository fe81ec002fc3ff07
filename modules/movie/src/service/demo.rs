//! The demo catalog: what a newcomer sees on the first `cargo run`. Created only on an empty
//! catalog, with showtimes over the next seven days counted from today, so it never runs
//! stale.

use chrono::{Duration, NaiveDate, NaiveTime, Utc};
use platform::money::Money;

use super::{MovieService, validate};
use crate::api::{MovieError, MovieInput, RowLayout, ShowtimeInput, TheaterInput};

struct DemoMovie {
    title: &'static str,
    description: &'static str,
    duration_minutes: i64,
    genre: &'static str,
    released: (i32, u32, u32),
    rating: &'static str,
}

const MOVIES: &[DemoMovie] = &[
    DemoMovie {
        title: "The Lighthouse Keeper's Daughter",
        description: "A storm cuts an island off the mainland, and a family secret surfaces with the tide.",
        duration_minutes: 118,
        genre: "Drama",
        released: (2026, 9, 12),
        rating: "PG-13",
    },
    DemoMovie {
        title: "Orbit of Ashes",
        description: "The last crew of a failing station has eleven hours to decide who goes home.",
        duration_minutes: 142,
        genre: "Sci-Fi",
        released: (2026, 10, 3),
        rating: "PG-13",
    },
    DemoMovie {
        title: "Paper Dragons",
        description: "An origami dragon comes to life and wants to see the sea.",
        duration_minutes: 94,
        genre: "Animation",
        released: (2026, 8, 21),
        rating: "G",
    },
    DemoMovie {
        title: "Wrong Number, Right Person",
        description: "Two strangers keep calling each other by mistake until they stop pretending it is a mistake.",
        duration_minutes: 104,
        genre: "Comedy",
        released: (2026, 7, 30),
        rating: "PG-13",
    },
    DemoMovie {
        title: "The Quiet Ledger",
        description: "An auditor finds one transaction too many and nobody wants her to count again.",
        duration_minutes: 127,
        genre: "Thriller",
        released: (2026, 10, 17),
        rating: "R",
    },
    DemoMovie {
        title: "Salt Road",
        description: "Caravans, bandits and a map drawn on the back of a wedding invitation.",
        duration_minutes: 135,
        genre: "Action",
        released: (2026, 11, 6),
        rating: "PG-13",
    },
    DemoMovie {
        title: "Bees of the Night City",
        description: "A year on the rooftops with the urban beekeepers of four cities.",
        duration_minutes: 88,
        genre: "Documentary",
        released: (2026, 6, 14),
        rating: "G",
    },
];

fn row(label: &str, seats: i64, seat_type: &str) -> RowLayout {
    RowLayout { row: label.to_owned(), seats, seat_type: seat_type.to_owned() }
}

/// Theaters of three sizes, each with an accessible front row and premium rows.
fn theaters() -> Vec<TheaterInput> {
    let grand = std::iter::once(row("A", 10, "accessible"))
        .chain(["B", "C", "D", "E"].map(|r| row(r, 18, "standard")))
        .chain(["F", "G", "H"].map(|r| row(r, 18, "premium")))
        .chain(["J", "K", "L", "M"].map(|r| row(r, 18, "standard")))
        .collect();
    let studio = std::iter::once(row("A", 6, "accessible"))
        .chain(["B", "C", "D", "E", "F", "G"].map(|r| row(r, 14, "standard")))
        .chain(["H", "J"].map(|r| row(r, 14, "premium")))
        .collect();
    let small = std::iter::once(row("A", 4, "accessible"))
        .chain(["B", "C", "D", "E"].map(|r| row(r, 10, "standard")))
        .chain(std::iter::once(row("F", 10, "premium")))
        .collect();
    vec![
        TheaterInput { name: "Grand Hall".to_owned(), location: "Level 1, east wing".to_owned(), layout: grand },
        TheaterInput { name: "Studio 2".to_owned(), location: "Level 2".to_owned(), layout: studio },
        TheaterInput {
            name: "Screening Room".to_owned(),
            location: "Level 2, behind the bar".to_owned(),
            layout: small,
        },
    ]
}

/// Showtime prices through the day: later is dearer.
const PRICES: [i64; 4] = [1099, 1199, 1399, 1499];

impl MovieService {
    /// Creates the demo catalog if the catalog is empty; says whether it did.
    ///
    /// # Errors
    /// Database failures.
    pub async fn seed_demo(&self) -> Result<bool, MovieError> {
        if !self.is_empty().await? {
            return Ok(false);
        }
        let mut movies = Vec::new();
        for m in MOVIES {
            let (y, mo, d) = m.released;
            let input = MovieInput {
                title: m.title.to_owned(),
                description: m.description.to_owned(),
                duration_minutes: m.duration_minutes,
                genre: m.genre.to_owned(),
                release_date: NaiveDate::from_ymd_opt(y, mo, d).unwrap_or_default(),
                rating: Some(m.rating.to_owned()),
                poster_url: None,
            };
            movies.push(self.insert_movie(validate::movie(input).map_err(MovieError::Validation)?).await?);
        }
        let mut halls = Vec::new();
        for t in theaters() {
            halls.push(self.insert_theater(validate::theater(t).map_err(MovieError::Validation)?).await?);
        }
        let now = Utc::now();
        let today = now.date_naive();
        // Slots from 12:00 UTC, spaced by the longest movie plus the cleaning gap rounded
        // up to the half hour (three hours with the defaults), at most four a day.
        let longest = MOVIES.iter().map(|m| m.duration_minutes).max().unwrap_or(0);
        let spacing = (longest + self.settings.cleaning_gap_minutes + 29) / 30 * 30;
        let slots = usize::try_from((24 * 60 / spacing.max(1)).clamp(1, 4)).unwrap_or(1);
        let mut showtimes = 0;
        for day in 0..7 {
            for (slot, price_cents) in PRICES.iter().take(slots).enumerate() {
                for (h, hall) in halls.iter().enumerate() {
                    let offset = Duration::hours(12) + Duration::minutes(spacing * i64::try_from(slot).unwrap_or(0));
                    let start = (today + Duration::days(day)).and_time(NaiveTime::MIN).and_utc() + offset;
                    if start <= now + Duration::minutes(10) {
                        continue;
                    }
                    // Rotate movies across halls, slots and days so every movie plays daily-ish.
                    let index = usize::try_from(day).unwrap_or(0) * 3 + slot * 2 + h;
                    let film = &movies[index % movies.len()];
                    let input = ShowtimeInput {
                        movie_id: film.id,
                        theater_id: hall.id,
                        start_time: start,
                        price_cents: Money::from_cents(*price_cents),
                        currency: None,
                    };
                    let valid = validate::showtime(&input, now).map_err(MovieError::Validation)?;
                    self.insert_showtime(&input, valid).await?;
                    showtimes += 1;
                }
            }
        }
        tracing::info!(movies = movies.len(), theaters = halls.len(), showtimes, "seeded the demo catalog");
        Ok(true)
    }
}
