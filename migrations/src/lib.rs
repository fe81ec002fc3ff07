//! One migrator per module. Each keeps its own tracking table (`<module>_migrations`) in
//! its own schema (PostgreSQL) or file (SQLite), so modules can be deployed, migrated and
//! rolled back independently and never share a table.

pub mod auth;
pub mod booking;
pub mod events;
mod inbox_retention;
pub mod movie;
pub mod notification;
pub mod payment;
