//! The platform every boxoffice module stands on.
//!
//! Everything here is shared behaviour that would otherwise be copied into each module:
//! configuration sections and layered loading, RFC 7807 problem documents, the HTTP
//! middleware and operational routes, the database connection per module, the JWT
//! verifier with the authenticated-user extractor, the key-value / rate-limit port, and
//! the REST plumbing module clients use. Nothing in here knows about a particular module.

// Feature `server`: what serving or reaching a module takes (actix, sea-orm, Redis, RabbitMQ,
// reqwest). Without it, what a module's `api.rs` needs and nothing more.
#[cfg(feature = "server")]
pub mod amqp;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod db;
#[cfg(feature = "server")]
pub mod dead_letters;
pub mod error;
pub mod events;
#[cfg(feature = "server")]
pub mod extract;
#[cfg(feature = "server")]
pub mod health;
#[cfg(feature = "server")]
pub mod http;
pub mod identity;
#[cfg(feature = "server")]
pub mod kv;
#[cfg(feature = "server")]
pub mod module;
pub mod money;
#[cfg(feature = "server")]
pub mod outbox;
pub mod pagination;
pub mod problem;
#[cfg(feature = "server")]
pub mod rest;
#[cfg(feature = "server")]
pub mod tasks;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod trace;
pub mod validation;

/// Declares a UUID id newtype (`pub struct $name(pub Uuid)`) with the derives every module's
/// ids need: serde as a plain string, an OpenAPI schema, `Display`. The invoking crate
/// depends on `serde`, `utoipa` and `uuid`.
#[macro_export]
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub uuid::Uuid);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}
