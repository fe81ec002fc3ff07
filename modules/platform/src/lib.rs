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
pub mod events;
pub mod extract;
pub mod health;
pub mod http;
pub mod identity;
pub mod kv;
pub mod locks;
pub mod outbox;
pub mod pagination;
pub mod problem;
pub mod rest;
pub mod telemetry;
pub mod validation;
