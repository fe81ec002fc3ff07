//! The movie module: the catalog of movies, theaters with their seat layouts, showtimes,
//! and exact seat maps.
//!
//! - [`api`]: the [`MovieApi`](api::MovieApi) trait, its DTOs, [`MovieError`](api::MovieError),
//!   and the [`SeatStates`](api::SeatStates) port through which the seat map learns which seats
//!   are held or booked (filled by the composition root: movie never depends on booking);
//! - `service` (feature `server`): the in-process implementation, its tables, the catalog
//!   cache and the demo catalog;
//! - `http` (feature `server`): the `/api/movies` routes, calling the trait;
//! - `client` (feature `client`): the same trait over REST.

pub mod api;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod module;
#[cfg(feature = "server")]
pub mod service;
