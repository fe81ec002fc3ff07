//! The booking module: seat holds and bookings — book (all or nothing), list, get, cancel,
//! and the expiry of unpaid holds.
//!
//! - [`api`]: the [`BookingApi`](api::BookingApi) trait, its DTOs and
//!   [`BookingError`](api::BookingError), and the events booking publishes;
//! - `service` (feature `server`): the in-process implementation on its own tables, the
//!   sweeper, the seat states it gives the movie module's seat map;
//! - `http` (feature `server`): the `/api/bookings` routes, calling the trait;
//! - `client` (feature `client`): the same trait over REST.
//!
//! A seat of a showtime is in at most one live booking: the `seat_claims` table's primary
//! key decides, whatever the seat locks (the fast path) say.

pub mod api;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod module;
#[cfg(feature = "server")]
pub mod service;
