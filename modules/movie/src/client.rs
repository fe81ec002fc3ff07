//! [`MovieApi`] over REST, for processes where movie runs elsewhere.

use async_trait::async_trait;
use platform::identity::AuthUser;
use platform::pagination::{Page, PageRequest};
use platform::rest::RestClient;
use reqwest::Method;

use crate::api::{
    Movie, MovieApi, MovieError, MovieId, MovieInput, MovieQuery, SeatMap, Showtime, ShowtimeId, ShowtimeInput,
    ShowtimePricing, ShowtimeQuery, Theater, TheaterId, TheaterInput,
};

pub struct MovieClient {
    rest: RestClient,
}

impl MovieClient {
    /// `base_url` is where movie serves `/api/movies` (e.g. `http://movie:8002`).
    pub fn new(base_url: &str, http: reqwest::Client) -> Self {
        Self { rest: RestClient::new(base_url, http) }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, MovieError> {
        Ok(self.rest.json(self.rest.request(Method::GET, path, None)).await?)
    }
}

#[async_trait]
impl MovieApi for MovieClient {
    async fn list_movies(&self, query: MovieQuery) -> Result<Page<Movie>, MovieError> {
        Ok(self.rest.json(self.rest.request(Method::GET, "/api/movies/movies", None).query(&query)).await?)
    }

    async fn movie(&self, id: MovieId) -> Result<Movie, MovieError> {
        self.get(&format!("/api/movies/movies/{id}")).await
    }

    async fn create_movie(&self, caller: &AuthUser, input: MovieInput) -> Result<Movie, MovieError> {
        let rb = self.rest.request(Method::POST, "/api/movies/movies", Some(&caller.bearer)).json(&input);
        Ok(self.rest.json(rb).await?)
    }

    async fn update_movie(&self, caller: &AuthUser, id: MovieId, input: MovieInput) -> Result<Movie, MovieError> {
        let rb = self.rest.request(Method::PUT, &format!("/api/movies/movies/{id}"), Some(&caller.bearer)).json(&input);
        Ok(self.rest.json(rb).await?)
    }

    async fn delete_movie(&self, caller: &AuthUser, id: MovieId) -> Result<(), MovieError> {
        let rb = self.rest.request(Method::DELETE, &format!("/api/movies/movies/{id}"), Some(&caller.bearer));
        Ok(self.rest.empty(rb).await?)
    }

    async fn list_theaters(&self, page: PageRequest) -> Result<Page<Theater>, MovieError> {
        Ok(self.rest.json(self.rest.request(Method::GET, "/api/movies/theaters", None).query(&page)).await?)
    }

    async fn theater(&self, id: TheaterId) -> Result<Theater, MovieError> {
        self.get(&format!("/api/movies/theaters/{id}")).await
    }

    async fn create_theater(&self, caller: &AuthUser, input: TheaterInput) -> Result<Theater, MovieError> {
        let rb = self.rest.request(Method::POST, "/api/movies/theaters", Some(&caller.bearer)).json(&input);
        Ok(self.rest.json(rb).await?)
    }

    async fn list_showtimes(&self, query: ShowtimeQuery) -> Result<Page<Showtime>, MovieError> {
        Ok(self.rest.json(self.rest.request(Method::GET, "/api/movies/showtimes", None).query(&query)).await?)
    }

    async fn showtime(&self, id: ShowtimeId) -> Result<Showtime, MovieError> {
        self.get(&format!("/api/movies/showtimes/{id}")).await
    }

    async fn create_showtime(&self, caller: &AuthUser, input: ShowtimeInput) -> Result<Showtime, MovieError> {
        let rb = self.rest.request(Method::POST, "/api/movies/showtimes", Some(&caller.bearer)).json(&input);
        Ok(self.rest.json(rb).await?)
    }

    async fn pricing(&self, id: ShowtimeId) -> Result<ShowtimePricing, MovieError> {
        self.get(&format!("/api/movies/showtimes/{id}/pricing")).await
    }

    async fn seat_map(&self, id: ShowtimeId) -> Result<SeatMap, MovieError> {
        self.get(&format!("/api/movies/showtimes/{id}/seats")).await
    }
}
