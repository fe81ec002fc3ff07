//! The payment module: charges through a gateway port, idempotent `pay`, refunds, and the
//! transaction log.
//!
//! - [`api`]: the [`PaymentApi`](api::PaymentApi) trait, its DTOs and
//!   [`PaymentError`](api::PaymentError), and the events payment publishes;
//! - `service` (feature `server`): the in-process implementation on its own tables, the
//!   gateway port with the simulated gateway, the `booking.cancelled` consumer and the refund
//!   worker;
//! - `http` (feature `server`): the `/api/payments` routes, calling the trait;
//! - `client` (feature `client`): the same trait over REST.
//!
//! Nothing is charged twice: an `Idempotency-Key` runs once per user (its row is claimed
//! before the gateway is called, its answer saved with the payment), and a booking is charged
//! by one payment at a time (its ledger row). Card numbers never reach storage or logs whole.

pub mod api;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod module;
#[cfg(feature = "server")]
pub mod service;
