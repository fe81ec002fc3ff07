//! The payment gateway port, and the simulated gateway behind it. A real gateway (a card
//! processor's API) is another implementation of [`PaymentGateway`].

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::card::Card;
use crate::api::PaymentId;

/// A charge to make.
pub struct Charge<'a> {
    /// The payment's id: the gateway's idempotency reference.
    pub reference: PaymentId,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub card: &'a Card,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Approved,
    /// Refused by the card's issuer; nothing was charged. The reason is the gateway's code
    /// (`card_declined`, `insufficient_funds`).
    Declined(String),
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The gateway could not be reached or did not answer: nothing is known to be charged,
    /// and the same reference may be sent again.
    #[error("payment gateway unavailable: {0}")]
    Unavailable(String),
}

/// A card processor.
#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Charges the card. Implementations MUST be idempotent per `reference`: a charge sent
    /// again with the same reference (a retry after a timeout or a crash) charges at most
    /// once and answers the first outcome.
    ///
    /// # Errors
    /// `Unavailable` when the outcome is unknown.
    async fn charge(&self, charge: &Charge<'_>) -> Result<ChargeOutcome, GatewayError>;

    /// Gives back the full amount of the charge made under `reference`; idempotent per
    /// reference like [`PaymentGateway::charge`].
    ///
    /// # Errors
    /// `Unavailable` when the outcome is unknown.
    async fn refund(&self, reference: PaymentId, amount_cents: i64, currency: &str) -> Result<(), GatewayError>;
}

/// `[payment.gateway]`.
#[derive(Debug, Clone, Deserialize)]
pub struct GatewaySettings {
    /// Added to every gateway call, as a real processor's round trip would be.
    pub latency_ms: u64,
    /// Share of calls (0.0–1.0) that fail as if the gateway were unreachable.
    pub failure_rate: f64,
}

/// Decides by card number (api.md): `4000000000000002` is declined (`card_declined`),
/// `4000000000009995` fails with `insufficient_funds`, any other valid card is approved.
/// Moves no money, so a repeated reference is trivially charged once.
pub struct SimulatedGateway {
    latency: Duration,
    failure_rate: f64,
}

impl SimulatedGateway {
    pub fn new(settings: &GatewaySettings) -> Self {
        Self { latency: Duration::from_millis(settings.latency_ms), failure_rate: settings.failure_rate }
    }

    async fn call(&self) -> Result<(), GatewayError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if self.failure_rate > 0.0 && rand::random::<f64>() < self.failure_rate {
            return Err(GatewayError::Unavailable("simulated failure (payment.gateway.failure_rate)".to_owned()));
        }
        Ok(())
    }
}

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    async fn charge(&self, charge: &Charge<'_>) -> Result<ChargeOutcome, GatewayError> {
        self.call().await?;
        Ok(match charge.card.number() {
            "4000000000000002" => ChargeOutcome::Declined("card_declined".to_owned()),
            "4000000000009995" => ChargeOutcome::Declined("insufficient_funds".to_owned()),
            _ => ChargeOutcome::Approved,
        })
    }

    async fn refund(&self, _reference: PaymentId, _amount_cents: i64, _currency: &str) -> Result<(), GatewayError> {
        self.call().await
    }
}
