//! The notification module: email on booking and payment events.
//!
//! - [`api`]: the [`NotificationApi`](api::NotificationApi) trait, its DTOs and
//!   [`NotificationError`](api::NotificationError);
//! - `service` (feature `server`): the consumer of `notification_queue`, the templates, the
//!   channel port with its `log` and `smtp` adapters, and the delivery worker;
//! - `http` (feature `server`): the `/api/notifications` routes, calling the trait;
//! - `client` (feature `client`): the same trait over REST.
//!
//! An event becomes at most one notification (the inbox and the notification are written in
//! one transaction), rendered at once and delivered afterwards by the worker, with retries and
//! backoff: a mail server that is down delays mail and never holds up a booking.

pub mod api;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod module;
#[cfg(feature = "server")]
pub mod service;
