//! The in-process implementation of [`MovieApi`] on the module's own tables.

mod cache;
pub mod demo;
mod entity;
pub mod events;
mod search;
mod seat_maps;
mod validate;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveTime, Utc};
use platform::identity::AuthUser;
use platform::kv::{KeyValue, Versions};
use platform::money::Money;
use platform::pagination::{Page, PageRequest, Pagination};
use sea_orm::sea_query::{Expr, Func, LikeExpr};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, ExprTrait,
    Iterable, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::api::{
    Movie, MovieApi, MovieError, MovieId, MovieInput, MovieQuery, PricedSeat, Seat, SeatId, SeatMap, SeatMapDocument,
    SeatMapEntry, SeatStates, SeatStatus, SeatType, Showtime, ShowtimeId, ShowtimeInput, ShowtimePricing,
    ShowtimeQuery, Theater, TheaterId, TheaterInput,
};
use cache::CatalogCache;
use entity::{movie, seat, showtime, theater};
use platform::validation::FieldErrors;
use seat_maps::SeatMaps;

/// `[movie.price_multipliers]`: what each seat type costs relative to the showtime's price.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct PriceMultipliers {
    pub standard: f64,
    pub premium: f64,
    pub accessible: f64,
}

impl PriceMultipliers {
    fn of(&self, seat_type: SeatType) -> f64 {
        match seat_type {
            SeatType::Standard => self.standard,
            SeatType::Premium => self.premium,
            SeatType::Accessible => self.accessible,
        }
    }

    /// `base` × the multiplier of `seat_type`, in whole minor units, rounded half up. The
    /// multiplier is taken to four decimals so that float noise (1.15 = 1.1499…) cannot
    /// move a price by a cent.
    pub fn price(&self, base: Money, seat_type: SeatType) -> Money {
        #[allow(clippy::cast_possible_truncation)] // checked range: 0 < multiplier <= 100
        let basis_points = (self.of(seat_type) * 10_000.0).round() as i64;
        // Cannot overflow: the base is at most MAX_PRICE_CENTS and the multiplier at most 100.
        Money::from_cents((base.cents() * basis_points + 5_000).div_euclid(10_000))
    }
}

/// `[movie]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct MovieSettings {
    /// Minutes a theater needs between the end of one showtime and the next start.
    pub cleaning_gap_minutes: i64,
    /// How long catalog reads are cached; 0 disables the cache.
    pub cache_ttl_seconds: u64,
    pub price_multipliers: PriceMultipliers,
}

impl MovieSettings {
    /// Checks that parse but make no sense; each error names its key.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if !(0..=24 * 60).contains(&self.cleaning_gap_minutes) {
            errors.push("movie.cleaning_gap_minutes must be between 0 and 1440".to_owned());
        }
        for seat_type in SeatType::iter() {
            let m = self.price_multipliers.of(seat_type);
            if !(m > 0.0 && m <= 100.0) {
                errors.push(format!(
                    "movie.price_multipliers.{} must be greater than 0 and at most 100",
                    seat_type.to_value()
                ));
            }
        }
        errors
    }
}

pub struct MovieService {
    db: DatabaseConnection,
    settings: MovieSettings,
    cache: CatalogCache,
    /// Seat layouts by theater, kept in this process once read: a theater's seats never
    /// change after it is created (there is no route that edits them), so this can never be
    /// stale, and the seat map — read on every booking screen — costs one primary-key query.
    layouts: RwLock<HashMap<Uuid, Arc<Vec<Seat>>>>,
    seat_states: Arc<dyn SeatStates>,
    seat_maps: SeatMaps,
}

impl From<DbErr> for MovieError {
    fn from(e: DbErr) -> Self {
        platform::db::db_err("movie database", e)
    }
}

fn admin(caller: &AuthUser) -> Result<(), MovieError> {
    if caller.is_admin() { Ok(()) } else { Err(MovieError::Forbidden) }
}

fn pagination(page: Option<u64>, per_page: Option<u64>) -> Result<Pagination, MovieError> {
    PageRequest { page, per_page }.validate().map_err(MovieError::Validation)
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn movie_view(m: movie::Model) -> Movie {
    Movie {
        id: MovieId(m.id),
        title: m.title,
        description: m.description,
        duration_minutes: count(m.duration_minutes),
        genre: m.genre,
        release_date: m.release_date,
        rating: m.rating,
        poster_url: m.poster_url,
    }
}

fn seat_view(s: seat::Model) -> Seat {
    Seat { id: SeatId(s.id), row: s.row_label, number: count(s.number), seat_type: s.seat_type }
}

fn showtime_view(s: showtime::Model) -> Showtime {
    Showtime {
        id: ShowtimeId(s.id),
        movie_id: MovieId(s.movie_id),
        theater_id: TheaterId(s.theater_id),
        start_time: s.start_time,
        price_cents: Money::from_cents(s.price_cents),
        currency: s.currency,
        seats_total: count(s.seats_total),
        // The stored sum may stray out of bounds while events are in flight (events.rs).
        seats_available: count(s.seats_available.clamp(0, s.seats_total)),
    }
}

/// How many showtimes of the movie have not started yet.
async fn future_showtimes(db: &impl ConnectionTrait, id: MovieId) -> Result<u64, MovieError> {
    showtime::Entity::find()
        .filter(showtime::Column::MovieId.eq(id.0))
        .filter(showtime::Column::StartTime.gt(Utc::now()))
        .count(db)
        .await
        .map_err(Into::into)
}

/// A cache key part for free-form query text: bounded length whatever was sent.
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// `%text%` with LIKE's wildcards in `text` escaped (escape character `\`).
fn contains_pattern(text: &str) -> String {
    let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

impl MovieService {
    pub fn new(
        db: DatabaseConnection,
        settings: &MovieSettings,
        kv: Arc<dyn KeyValue>,
        seat_states: Arc<dyn SeatStates>,
        seat_versions: Option<Versions>,
    ) -> Self {
        Self {
            db,
            seat_maps: SeatMaps::new(seat_versions),
            cache: CatalogCache::new(kv, Duration::from_secs(settings.cache_ttl_seconds)),
            settings: settings.clone(),
            seat_states,
            layouts: RwLock::new(HashMap::new()),
        }
    }

    /// The seats of a theater in layout order, from the layout cache or the database.
    async fn layout(&self, theater_id: Uuid) -> Result<Arc<Vec<Seat>>, MovieError> {
        if let Some(seats) = self.layouts.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&theater_id) {
            return Ok(Arc::clone(seats));
        }
        let seats: Vec<Seat> = self.seats_of(&self.db, &[theater_id]).await?.into_iter().map(seat_view).collect();
        let seats = Arc::new(seats);
        self.layouts.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(theater_id, Arc::clone(&seats));
        Ok(seats)
    }

    async fn seats_of(&self, db: &impl ConnectionTrait, theater_ids: &[Uuid]) -> Result<Vec<seat::Model>, MovieError> {
        seat::Entity::find()
            .filter(seat::Column::TheaterId.is_in(theater_ids.iter().copied()))
            .order_by_asc(seat::Column::TheaterId)
            .order_by_asc(seat::Column::Position)
            .all(db)
            .await
            .map_err(Into::into)
    }

    async fn load_theater(&self, id: TheaterId) -> Result<Theater, MovieError> {
        let t = theater::Entity::find_by_id(id.0).one(&self.db).await?.ok_or(MovieError::NotFound("theater"))?;
        let seats = self.seats_of(&self.db, &[t.id]).await?.into_iter().map(seat_view).collect();
        Ok(Theater { id: TheaterId(t.id), name: t.name, location: t.location, seats })
    }

    /// Inserts a validated movie (authorization is the caller's business).
    async fn insert_movie(&self, valid: validate::ValidMovie) -> Result<Movie, MovieError> {
        let now = Utc::now();
        let txn = platform::db::begin(&self.db, "create movie").await?;
        let created = movie::Entity::insert(movie::ActiveModel {
            id: Set(Uuid::now_v7()),
            title: Set(valid.title),
            description: Set(valid.description),
            duration_minutes: Set(valid.duration_minutes),
            genre: Set(valid.genre),
            release_date: Set(valid.release_date),
            rating: Set(valid.rating),
            poster_url: Set(valid.poster_url),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        })
        .exec_with_returning(&txn)
        .await?;
        search::index(&txn, created.id, &created.title).await?;
        txn.commit().await?;
        self.cache.invalidate().await;
        Ok(movie_view(created))
    }

    /// Inserts a validated theater and its seats in one transaction.
    async fn insert_theater(&self, valid: validate::ValidTheater) -> Result<Theater, MovieError> {
        let theater_id = Uuid::now_v7();
        let mut seats = Vec::new();
        for row in &valid.rows {
            for number in 1..=row.seats {
                seats.push(seat::Model {
                    id: Uuid::now_v7(),
                    theater_id,
                    row_label: row.label.clone(),
                    number,
                    position: i32::try_from(seats.len()).unwrap_or(i32::MAX),
                    seat_type: row.seat_type,
                });
            }
        }
        let txn = platform::db::begin(&self.db, "insert theater").await?;
        theater::Entity::insert(theater::ActiveModel {
            id: Set(theater_id),
            name: Set(valid.name.clone()),
            location: Set(valid.location.clone()),
            created_at: Set(Utc::now()),
        })
        .exec(&txn)
        .await?;
        // One multi-row INSERT per chunk (bind-parameter limits), never one per seat.
        for chunk in seats.chunks(500) {
            let models = chunk.iter().cloned().map(|s| seat::ActiveModel {
                id: Set(s.id),
                theater_id: Set(s.theater_id),
                row_label: Set(s.row_label),
                number: Set(s.number),
                position: Set(s.position),
                seat_type: Set(s.seat_type),
            });
            seat::Entity::insert_many(models).exec(&txn).await?;
        }
        txn.commit().await?;
        self.cache.invalidate().await;
        Ok(Theater {
            id: TheaterId(theater_id),
            name: valid.name,
            location: valid.location,
            seats: seats.into_iter().map(seat_view).collect(),
        })
    }

    /// Inserts a showtime after checking, under the theater's row lock, that its movie
    /// exists and that it overlaps no other showtime of the theater (duration + cleaning gap).
    async fn insert_showtime(
        &self,
        input: &ShowtimeInput,
        valid: validate::ValidShowtime,
    ) -> Result<Showtime, MovieError> {
        let txn = platform::db::begin(&self.db, "insert showtime").await?;
        // Writing the theater's row first serialises showtime creation per theater (a row
        // lock in PostgreSQL, the write lock in SQLite), so two overlapping showtimes
        // created at once cannot both pass the check below.
        let locked = theater::Entity::update_many()
            .col_expr(theater::Column::Name, Expr::col(theater::Column::Name))
            .filter(theater::Column::Id.eq(input.theater_id.0))
            .exec(&txn)
            .await?;
        let mut errors = FieldErrors::new();
        if locked.rows_affected == 0 {
            errors.add("theater_id", "no such theater");
        }
        // The same for the movie, so it cannot be deleted while a showtime is added to it.
        let film = movie::Entity::update_many()
            .col_expr(movie::Column::UpdatedAt, Expr::col(movie::Column::UpdatedAt))
            .filter(movie::Column::Id.eq(input.movie_id.0))
            .filter(movie::Column::DeletedAt.is_null())
            .exec_with_returning(&txn)
            .await?;
        let Some(film) = film.into_iter().next() else {
            errors.add("movie_id", "no such movie");
            return Err(MovieError::Validation(errors));
        };
        errors.into_result().map_err(MovieError::Validation)?;

        let gap = chrono::Duration::minutes(self.settings.cleaning_gap_minutes);
        let start = valid.start_time;
        let end = start + chrono::Duration::minutes(i64::from(film.duration_minutes));
        let clash = showtime::Entity::find()
            .filter(showtime::Column::TheaterId.eq(input.theater_id.0))
            .filter(showtime::Column::StartTime.lt(end + gap))
            .filter(showtime::Column::EndTime.gt(start - gap))
            .one(&txn)
            .await?;
        if let Some(other) = clash {
            return Err(MovieError::Overlap(ShowtimeId(other.id)));
        }
        let seats_total =
            seat::Entity::find().filter(seat::Column::TheaterId.eq(input.theater_id.0)).count(&txn).await?;
        let seats_total = i32::try_from(seats_total).unwrap_or(i32::MAX);
        let created = showtime::Entity::insert(showtime::ActiveModel {
            id: Set(Uuid::now_v7()),
            movie_id: Set(film.id),
            theater_id: Set(input.theater_id.0),
            start_time: Set(start),
            end_time: Set(end),
            price_cents: Set(valid.price_cents.cents()),
            currency: Set(valid.currency),
            seats_total: Set(seats_total),
            seats_available: Set(seats_total),
            created_at: Set(Utc::now()),
        })
        .exec_with_returning(&txn)
        .await?;
        txn.commit().await?;
        self.cache.invalidate().await;
        Ok(showtime_view(created))
    }

    /// Adds `movie_id` / `theater_id` errors for references that do not exist.
    async fn check_references(&self, input: &ShowtimeInput, errors: &mut FieldErrors) -> Result<(), MovieError> {
        let film = movie::Entity::find_by_id(input.movie_id.0)
            .filter(movie::Column::DeletedAt.is_null())
            .one(&self.db)
            .await?;
        if film.is_none() {
            errors.add("movie_id", "no such movie");
        }
        if theater::Entity::find_by_id(input.theater_id.0).one(&self.db).await?.is_none() {
            errors.add("theater_id", "no such theater");
        }
        Ok(())
    }

    /// The handler of `movie_queue` (booking events → `seats_available`). The catalog cache
    /// is not invalidated for these: `seats_available` is eventually consistent (within
    /// `movie.cache_ttl_seconds`), and bookings must not empty the cache; the seat map is exact.
    pub fn events_handler(&self) -> Arc<dyn platform::events::EventHandler> {
        Arc::new(events::BookingEvents::new(self.db.clone()))
    }

    /// Indexes for the title search the movies it does not know yet (created before it was),
    /// returning how many.
    pub async fn index_titles(&self) -> Result<usize, MovieError> {
        let txn = platform::db::begin(&self.db, "index titles").await?;
        let indexed = search::index_missing(&txn).await?;
        txn.commit().await?;
        if indexed > 0 {
            // Answers to `q` cached while these movies had no grams missed them.
            self.cache.invalidate().await;
        }
        Ok(indexed)
    }

    /// Whether the catalog has no movie at all (deleted ones count: a catalog that was used
    /// is never re-seeded).
    pub async fn is_empty(&self) -> Result<bool, MovieError> {
        Ok(movie::Entity::find().one(&self.db).await?.is_none())
    }
}

#[async_trait]
impl MovieApi for MovieService {
    async fn list_movies(&self, query: MovieQuery) -> Result<Page<Movie>, MovieError> {
        let pagination = pagination(query.page, query.per_page)?;
        let genre = query.genre.as_deref().map(str::trim).filter(|g| !g.is_empty()).map(str::to_lowercase);
        let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(str::to_owned);
        let key = format!(
            "movies:{}:{}:{}",
            pagination.page,
            pagination.per_page,
            digest(&[genre.as_deref().unwrap_or(""), q.as_deref().unwrap_or("")])
        );
        self.cache
            .get_or_load(&key, async {
                let mut select = movie::Entity::find().filter(movie::Column::DeletedAt.is_null());
                if let Some(genre) = &genre {
                    let lower_genre = Expr::expr(Func::lower(Expr::col(movie::Column::Genre)));
                    select = select.filter(ExprTrait::eq(lower_genre, genre.as_str()));
                }
                if let Some(q) = &q {
                    let lower_title = Expr::expr(Func::lower(Expr::col(movie::Column::Title)));
                    select = select
                        .filter(search::may_contain(self.db.get_database_backend(), q))
                        .filter(ExprTrait::like(lower_title, LikeExpr::new(contains_pattern(q)).escape('\\')));
                }
                let total = select.clone().count(&self.db).await?;
                let items = select
                    .order_by_asc(movie::Column::Title)
                    .order_by_asc(movie::Column::Id)
                    .offset(pagination.offset())
                    .limit(pagination.per_page)
                    .all(&self.db)
                    .await?;
                Ok(Page::new(items.into_iter().map(movie_view).collect(), pagination, total))
            })
            .await
    }

    async fn movie(&self, id: MovieId) -> Result<Movie, MovieError> {
        self.cache
            .get_or_load(&format!("movie:{id}"), async {
                movie::Entity::find_by_id(id.0)
                    .filter(movie::Column::DeletedAt.is_null())
                    .one(&self.db)
                    .await?
                    .map(movie_view)
                    .ok_or(MovieError::NotFound("movie"))
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn create_movie(&self, caller: &AuthUser, input: MovieInput) -> Result<Movie, MovieError> {
        admin(caller)?;
        let valid = validate::movie(input).map_err(MovieError::Validation)?;
        self.insert_movie(valid).await
    }

    #[tracing::instrument(skip_all, fields(movie_id = %id))]
    async fn update_movie(&self, caller: &AuthUser, id: MovieId, input: MovieInput) -> Result<Movie, MovieError> {
        admin(caller)?;
        let valid = validate::movie(input).map_err(MovieError::Validation)?;
        let txn = platform::db::begin(&self.db, "update movie").await?;
        // Lock the row (as showtime creation does), then refuse a new duration while
        // showtimes planned with the old one are to come.
        let current = movie::Entity::update_many()
            .col_expr(movie::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(movie::Column::Id.eq(id.0))
            .filter(movie::Column::DeletedAt.is_null())
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
            .ok_or(MovieError::NotFound("movie"))?;
        if current.duration_minutes != valid.duration_minutes {
            let future = future_showtimes(&txn, id).await?;
            if future > 0 {
                return Err(MovieError::HasFutureShowtimes(future));
            }
        }
        let updated = movie::Entity::update_many()
            .col_expr(movie::Column::Title, Expr::value(valid.title))
            .col_expr(movie::Column::Description, Expr::value(valid.description))
            .col_expr(movie::Column::DurationMinutes, Expr::value(valid.duration_minutes))
            .col_expr(movie::Column::Genre, Expr::value(valid.genre))
            .col_expr(movie::Column::ReleaseDate, Expr::value(valid.release_date))
            .col_expr(movie::Column::Rating, Expr::value(valid.rating))
            .col_expr(movie::Column::PosterUrl, Expr::value(valid.poster_url))
            .col_expr(movie::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(movie::Column::Id.eq(id.0))
            .exec_with_returning(&txn)
            .await?;
        let updated = updated.into_iter().next().ok_or(MovieError::NotFound("movie"))?;
        if updated.title != current.title {
            search::reindex(&txn, updated.id, &updated.title).await?;
        }
        txn.commit().await?;
        self.cache.invalidate().await;
        Ok(movie_view(updated))
    }

    #[tracing::instrument(skip_all, fields(movie_id = %id))]
    async fn delete_movie(&self, caller: &AuthUser, id: MovieId) -> Result<(), MovieError> {
        admin(caller)?;
        let txn = platform::db::begin(&self.db, "delete movie").await?;
        // Lock the movie's row first: showtime creation takes the same lock.
        let locked = movie::Entity::update_many()
            .col_expr(movie::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(movie::Column::Id.eq(id.0))
            .filter(movie::Column::DeletedAt.is_null())
            .exec(&txn)
            .await?;
        if locked.rows_affected == 0 {
            return Err(MovieError::NotFound("movie"));
        }
        let future = future_showtimes(&txn, id).await?;
        if future > 0 {
            return Err(MovieError::HasFutureShowtimes(future));
        }
        movie::Entity::update_many()
            .col_expr(movie::Column::DeletedAt, Expr::value(Utc::now()))
            .filter(movie::Column::Id.eq(id.0))
            .exec(&txn)
            .await?;
        search::forget(&txn, id.0).await?;
        txn.commit().await?;
        self.cache.invalidate().await;
        Ok(())
    }

    async fn list_theaters(&self, page: PageRequest) -> Result<Page<Theater>, MovieError> {
        let pagination = page.validate().map_err(MovieError::Validation)?;
        self.cache
            .get_or_load(&format!("theaters:{}:{}", pagination.page, pagination.per_page), async {
                let total = theater::Entity::find().count(&self.db).await?;
                let theaters = theater::Entity::find()
                    .order_by_asc(theater::Column::Name)
                    .order_by_asc(theater::Column::Id)
                    .offset(pagination.offset())
                    .limit(pagination.per_page)
                    .all(&self.db)
                    .await?;
                let ids: Vec<Uuid> = theaters.iter().map(|t| t.id).collect();
                let mut seats: HashMap<Uuid, Vec<Seat>> = HashMap::new();
                for s in self.seats_of(&self.db, &ids).await? {
                    seats.entry(s.theater_id).or_default().push(seat_view(s));
                }
                let items = theaters
                    .into_iter()
                    .map(|t| Theater {
                        id: TheaterId(t.id),
                        seats: seats.remove(&t.id).unwrap_or_default(),
                        name: t.name,
                        location: t.location,
                    })
                    .collect();
                Ok(Page::new(items, pagination, total))
            })
            .await
    }

    async fn theater(&self, id: TheaterId) -> Result<Theater, MovieError> {
        self.cache.get_or_load(&format!("theater:{id}"), self.load_theater(id)).await
    }

    #[tracing::instrument(skip_all)]
    async fn create_theater(&self, caller: &AuthUser, input: TheaterInput) -> Result<Theater, MovieError> {
        admin(caller)?;
        let valid = validate::theater(input).map_err(MovieError::Validation)?;
        self.insert_theater(valid).await
    }

    async fn list_showtimes(&self, query: ShowtimeQuery) -> Result<Page<Showtime>, MovieError> {
        let pagination = pagination(query.page, query.per_page)?;
        // Without a day, "from now on", to the minute: one cache entry per minute at most.
        let now = Utc::now();
        let (from, until) = match query.date {
            Some(day) => {
                let start = day.and_time(NaiveTime::MIN).and_utc();
                (start, start.checked_add_signed(chrono::Duration::days(1)))
            }
            None => (whole_minute(now), None),
        };
        let key = format!(
            "showtimes:{}:{}:{}:{}:{}:{}",
            query.movie_id.map(|m| m.to_string()).unwrap_or_default(),
            query.theater_id.map(|t| t.to_string()).unwrap_or_default(),
            from.timestamp(),
            until.map(|u| u.timestamp()).unwrap_or_default(),
            pagination.page,
            pagination.per_page
        );
        self.cache
            .get_or_load(&key, async {
                let mut select = showtime::Entity::find().filter(showtime::Column::StartTime.gte(from));
                if let Some(until) = until {
                    select = select.filter(showtime::Column::StartTime.lt(until));
                }
                if let Some(movie_id) = query.movie_id {
                    select = select.filter(showtime::Column::MovieId.eq(movie_id.0));
                }
                if let Some(theater_id) = query.theater_id {
                    select = select.filter(showtime::Column::TheaterId.eq(theater_id.0));
                }
                let total = select.clone().count(&self.db).await?;
                let items = select
                    .order_by_asc(showtime::Column::StartTime)
                    .order_by_asc(showtime::Column::Id)
                    .offset(pagination.offset())
                    .limit(pagination.per_page)
                    .all(&self.db)
                    .await?;
                Ok(Page::new(items.into_iter().map(showtime_view).collect(), pagination, total))
            })
            .await
    }

    async fn showtime(&self, id: ShowtimeId) -> Result<Showtime, MovieError> {
        self.cache
            .get_or_load(&format!("showtime:{id}"), async {
                showtime::Entity::find_by_id(id.0)
                    .one(&self.db)
                    .await?
                    .map(showtime_view)
                    .ok_or(MovieError::NotFound("showtime"))
            })
            .await
    }

    #[tracing::instrument(skip_all)]
    async fn create_showtime(&self, caller: &AuthUser, input: ShowtimeInput) -> Result<Showtime, MovieError> {
        admin(caller)?;
        match validate::showtime(&input, Utc::now()) {
            Ok(valid) => self.insert_showtime(&input, valid).await,
            Err(mut errors) => {
                // Name the unknown references too, so one answer lists every bad field.
                self.check_references(&input, &mut errors).await?;
                Err(MovieError::Validation(errors))
            }
        }
    }

    /// The showtime (its price) is read from the database, not the catalog cache: these are
    /// the prices a booking charges. Only the immutable seat layout comes from memory.
    async fn pricing(&self, id: ShowtimeId) -> Result<ShowtimePricing, MovieError> {
        let show = showtime::Entity::find_by_id(id.0).one(&self.db).await?.ok_or(MovieError::NotFound("showtime"))?;
        let layout = self.layout(show.theater_id).await?;
        let prices = self.settings.price_multipliers;
        let seats = layout
            .iter()
            .map(|seat| PricedSeat {
                price_cents: prices.price(Money::from_cents(show.price_cents), seat.seat_type),
                id: seat.id,
                row: seat.row.clone(),
                number: seat.number,
                seat_type: seat.seat_type,
            })
            .collect();
        Ok(ShowtimePricing { showtime: showtime_view(show), seats })
    }

    /// [`MovieApi::pricing`] with each seat's exact state from the `SeatStates` port.
    async fn seat_map(&self, id: ShowtimeId) -> Result<SeatMap, MovieError> {
        let pricing = self.pricing(id).await?;
        let taken = self.seat_states.taken_seats(id).await?;
        let seats = pricing
            .seats
            .into_iter()
            .map(|seat| SeatMapEntry {
                status: taken.get(&seat.id).copied().unwrap_or(SeatStatus::Available),
                price_cents: seat.price_cents,
                id: seat.id,
                row: seat.row,
                number: seat.number,
                seat_type: seat.seat_type,
            })
            .collect();
        Ok(SeatMap { showtime_id: id, seats })
    }

    /// From this process's copy while the showtime's seat-state version is unchanged.
    async fn seat_map_document(&self, id: ShowtimeId) -> Result<Arc<SeatMapDocument>, MovieError> {
        self.seat_maps.get_or_build(id, self.seat_map(id)).await
    }
}

/// A time truncated to the whole minute.
pub fn whole_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t - chrono::Duration::seconds(t.timestamp().rem_euclid(60))
        - chrono::Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_round_half_up_to_the_cent() {
        let m = PriceMultipliers { standard: 1.0, premium: 1.5, accessible: 1.15 };
        let m = |base, seat_type| m.price(Money::from_cents(base), seat_type).cents();
        assert_eq!(m(1099, SeatType::Standard), 1099);
        assert_eq!(m(1099, SeatType::Premium), 1649); // 1648.5
        assert_eq!(m(1000, SeatType::Premium), 1500);
        assert_eq!(m(1, SeatType::Premium), 2); // 1.5
        assert_eq!(m(100, SeatType::Accessible), 115); // 1.15 is 1.149999… as a float
        assert_eq!(m(10, SeatType::Accessible), 12); // 11.5
    }
}
