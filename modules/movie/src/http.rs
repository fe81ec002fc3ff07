//! The `/api/movies` routes. They call [`MovieApi`], so they serve the same contract
//! whichever implementation is behind it. Reads are public; writes take the caller, and the
//! trait decides (401 without a token comes from the extractor, 403 from the trait).

use actix_web::http::header;

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use platform::extract::{Admin, Query};
use platform::identity::AuthUser;
use platform::pagination::PageRequest;
use platform::problem::{Problem, ProblemDocument};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::api::{
    Movie, MovieApi, MovieId, MovieInput, MovieQuery, PricedSeat, RowLayout, Seat, SeatMap, SeatMapEntry, SeatStatus,
    SeatType, Showtime, ShowtimeId, ShowtimeInput, ShowtimePricing, ShowtimeQuery, Theater, TheaterId, TheaterInput,
};

/// Mounts the routes under `/api/movies`. They serve the `web::Data<dyn MovieApi>` of the app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/movies")
            .service(web::resource("/movies").route(web::get().to(list_movies)).route(web::post().to(create_movie)))
            .service(
                web::resource("/movies/{id}")
                    .route(web::get().to(get_movie))
                    .route(web::put().to(update_movie))
                    .route(web::delete().to(delete_movie)),
            )
            .service(
                web::resource("/theaters").route(web::get().to(list_theaters)).route(web::post().to(create_theater)),
            )
            .service(web::resource("/theaters/{id}").route(web::get().to(get_theater)))
            .service(
                web::resource("/showtimes").route(web::get().to(list_showtimes)).route(web::post().to(create_showtime)),
            )
            .service(web::resource("/showtimes/{id}").route(web::get().to(get_showtime)))
            .service(web::resource("/showtimes/{id}/seats").route(web::get().to(seat_map)))
            .service(web::resource("/showtimes/{id}/pricing").route(web::get().to(pricing))),
    );
}

/// The OpenAPI description of these routes.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_movies, get_movie, create_movie, update_movie, delete_movie,
        list_theaters, get_theater, create_theater,
        list_showtimes, get_showtime, create_showtime, seat_map, pricing
    ),
    components(schemas(
        Movie, MovieInput, Theater, TheaterInput, RowLayout, Seat, SeatType, Showtime, ShowtimeInput,
        SeatMap, SeatMapEntry, SeatStatus, ShowtimePricing, PricedSeat, MovieId, TheaterId, ShowtimeId, ProblemDocument
    )),
    tags((name = "movies", description = "Catalog, theaters, showtimes and seat maps"))
)]
pub struct MovieDoc;

type Api = web::Data<dyn MovieApi>;

/// The catalog, by title.
#[utoipa::path(get, path = "/api/movies/movies", tag = "movies", params(MovieQuery),
    responses(
        (status = 200, description = "A page of movies", body = inline(platform::pagination::Page<Movie>)),
        (status = 422, description = "Bad pagination", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn list_movies(api: Api, query: Query<MovieQuery>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.list_movies(query.into_inner()).await?))
}

#[utoipa::path(get, path = "/api/movies/movies/{id}", tag = "movies", params(("id" = Uuid, Path, description = "The movie's id")),
    responses(
        (status = 200, description = "The movie", body = Movie),
        (status = 404, description = "No such movie", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn get_movie(api: Api, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.movie(MovieId(id.into_inner())).await?))
}

/// Admin: add a movie.
#[utoipa::path(post, path = "/api/movies/movies", tag = "movies", request_body = MovieInput, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Movie),
        (status = 401, description = "No valid token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn create_movie(api: Api, req: Admin<MovieInput>) -> Result<HttpResponse, Problem> {
    let movie = api.create_movie(&req.caller, req.body).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/movies/movies/{}", movie.id)))
        .json(movie))
}

/// Admin: replace a movie's fields.
#[utoipa::path(put, path = "/api/movies/movies/{id}", tag = "movies", params(("id" = Uuid, Path, description = "The movie's id")), request_body = MovieInput, security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = Movie),
        (status = 403, description = "Not an admin", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such movie", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The duration would change while showtimes are to come", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn update_movie(api: Api, id: web::Path<Uuid>, req: Admin<MovieInput>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.update_movie(&req.caller, MovieId(id.into_inner()), req.body).await?))
}

/// Admin: take a movie out of the catalog.
#[utoipa::path(delete, path = "/api/movies/movies/{id}", tag = "movies", params(("id" = Uuid, Path, description = "The movie's id")), security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Not an admin", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "No such movie", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The movie has showtimes to come", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn delete_movie(api: Api, caller: AuthUser, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    api.delete_movie(&caller, MovieId(id.into_inner())).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Theaters with their seats, by name.
#[utoipa::path(get, path = "/api/movies/theaters", tag = "movies", params(PageRequest),
    responses((status = 200, description = "A page of theaters", body = inline(platform::pagination::Page<Theater>))))]
async fn list_theaters(api: Api, page: Query<PageRequest>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.list_theaters(page.into_inner()).await?))
}

#[utoipa::path(get, path = "/api/movies/theaters/{id}", tag = "movies", params(("id" = Uuid, Path, description = "The theater's id")),
    responses(
        (status = 200, description = "The theater and its seats", body = Theater),
        (status = 404, description = "No such theater", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn get_theater(api: Api, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.theater(TheaterId(id.into_inner())).await?))
}

/// Admin: add a theater; its seats are generated from the row layout.
#[utoipa::path(post, path = "/api/movies/theaters", tag = "movies", request_body = TheaterInput, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created with its seats", body = Theater),
        (status = 403, description = "Not an admin", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid layout", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn create_theater(api: Api, req: Admin<TheaterInput>) -> Result<HttpResponse, Problem> {
    let theater = api.create_theater(&req.caller, req.body).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/movies/theaters/{}", theater.id)))
        .json(theater))
}

/// Showtimes by start time.
#[utoipa::path(get, path = "/api/movies/showtimes", tag = "movies", params(ShowtimeQuery),
    responses(
        (status = 200, description = "A page of showtimes", body = inline(platform::pagination::Page<Showtime>)),
        (status = 422, description = "Bad filter or pagination", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn list_showtimes(api: Api, query: Query<ShowtimeQuery>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.list_showtimes(query.into_inner()).await?))
}

#[utoipa::path(get, path = "/api/movies/showtimes/{id}", tag = "movies", params(("id" = Uuid, Path, description = "The showtime's id")),
    responses(
        (status = 200, description = "The showtime", body = Showtime),
        (status = 404, description = "No such showtime", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn get_showtime(api: Api, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.showtime(ShowtimeId(id.into_inner())).await?))
}

/// Admin: schedule a showtime.
#[utoipa::path(post, path = "/api/movies/showtimes", tag = "movies", request_body = ShowtimeInput, security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Showtime),
        (status = 403, description = "Not an admin", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Overlaps another showtime in the theater", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn create_showtime(api: Api, req: Admin<ShowtimeInput>) -> Result<HttpResponse, Problem> {
    let showtime = api.create_showtime(&req.caller, req.body).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/movies/showtimes/{}", showtime.id)))
        .json(showtime))
}

/// Every seat of the showtime with its price and state.
#[utoipa::path(get, path = "/api/movies/showtimes/{id}/seats", tag = "movies", params(("id" = Uuid, Path, description = "The showtime's id")),
    responses(
        (status = 200, description = "The seat map, with its `ETag`", body = SeatMap),
        (status = 304, description = "Unchanged since the `If-None-Match` tag"),
        (status = 404, description = "No such showtime", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn seat_map(api: Api, id: web::Path<Uuid>, req: HttpRequest) -> Result<HttpResponse, Problem> {
    let document = api.seat_map_document(ShowtimeId(id.into_inner())).await?;
    let tag = header::EntityTag::new_weak(document.tag.clone());
    // `no-cache`: a client (or a cache between) may keep the map but must ask again each
    // time; the answer to a matching `If-None-Match` is a body-less 304.
    let revalidate = (header::CACHE_CONTROL, header::CacheControl(vec![header::CacheDirective::NoCache]));
    let unchanged = match req.get_header::<header::IfNoneMatch>() {
        Some(header::IfNoneMatch::Any) => true,
        Some(header::IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&tag)),
        None => false,
    };
    if unchanged {
        return Ok(HttpResponse::NotModified().insert_header(header::ETag(tag)).insert_header(revalidate).finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header(header::ETag(tag))
        .insert_header(revalidate)
        .content_type(header::ContentType::json())
        .body(document.json.clone()))
}

/// The showtime and every seat with its price, read uncached: what a booking charges
/// (booking's REST client reads it).
#[utoipa::path(get, path = "/api/movies/showtimes/{id}/pricing", tag = "movies", params(("id" = Uuid, Path, description = "The showtime's id")),
    responses(
        (status = 200, description = "The showtime and its priced seats", body = ShowtimePricing),
        (status = 404, description = "No such showtime", body = ProblemDocument, content_type = "application/problem+json"),
    ))]
async fn pricing(api: Api, id: web::Path<Uuid>) -> Result<HttpResponse, Problem> {
    Ok(HttpResponse::Ok().json(api.pricing(ShowtimeId(id.into_inner())).await?))
}
