//! The auth module: registration, login, access tokens (EdDSA JWTs) and rotating refresh
//! tokens.
//!
//! - [`api`]: the [`AuthApi`](api::AuthApi) trait, its DTOs and [`AuthError`](api::AuthError)
//!   — the only thing other modules see;
//! - `service` (feature `server`): the in-process implementation on its own tables;
//! - `http` (feature `server`): the `/api/auth` routes, calling the trait;
//! - `client` (feature `client`): the same trait over REST, for processes without auth.

pub mod api;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod module;
#[cfg(feature = "server")]
pub mod service;
