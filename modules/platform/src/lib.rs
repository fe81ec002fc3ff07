//! The platform every boxoffice module stands on.
//!
//! Everything here is shared behaviour that would otherwise be copied into each module:
//! configuration sections and layered loading, RFC 7807 problem documents, the HTTP
//! middleware and operational routes, the database connection per module, the JWT
//! verifier with the authenticated-user extractor, the key-value / rate-limit port, and
//! the REST plumbing module clients use. Nothing in here knows about a particular module.

pub mod amqp;
pub mod config;
pub mod db;
pub mod dead_letters;
pub mod events;
pub mod extract;
pub mod health;
pub mod http;
pub mod identity;
pub mod kv;
pub mod money;
pub mod outbox;
pub mod pagination;
pub mod problem;
pub mod rest;
pub mod tasks;
pub mod telemetry;
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
