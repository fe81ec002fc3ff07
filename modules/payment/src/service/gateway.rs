//! The payment gateway port, and the simulated gateway behind it. A real gateway (a card
//! processor's API) is another implementation of [`PaymentGateway`].

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::Deserialize;

use super::card::Card;
use super::entity::gateway_charge::{self, Outcome};
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

    /// What the gateway did with the charge sent under `reference`: its outcome, or `None`
    /// if it never received one (nothing was charged). The reconciler asks this about a
    /// charge whose request died; it asks only after that request's gateway call was given
    /// up (`payment.lease_seconds` after its claim, twice the call's timeout), so no call
    /// under the reference is still on its way.
    ///
    /// # Errors
    /// `Unavailable` when the gateway cannot say.
    async fn status(&self, reference: PaymentId) -> Result<Option<ChargeOutcome>, GatewayError>;
}

/// `[payment.gateway]`.
#[derive(Debug, Clone, Deserialize)]
pub struct GatewaySettings {
    /// Added to every gateway call, as a real processor's round trip would be.
    pub latency_ms: u64,
    /// Share of calls (0.0–1.0) that fail as if the gateway were unreachable.
    pub failure_rate: f64,
}

/// Decides by card number (the test cards of docs/rules.md): `4000000000000002` is declined (`card_declined`),
/// `4000000000009995` fails with `insufficient_funds`, any other valid card is approved.
///
/// Moves no money, but remembers each reference as a real processor does, in its own table
/// (`simulated_gateway_charges`), written on its own before the simulated latency and
/// outside any transaction of payment's: a charge is "made" the moment it is recorded, so a
/// payment process killed during the latency leaves a charge behind, and the first outcome of
/// a reference is the one every retry and status query gets.
pub struct SimulatedGateway {
    db: DatabaseConnection,
    latency: Duration,
    failure_rate: f64,
}

fn unavailable(e: sea_orm::DbErr) -> GatewayError {
    GatewayError::Unavailable(format!("simulated gateway's store: {e}"))
}

impl SimulatedGateway {
    pub fn new(db: DatabaseConnection, settings: &GatewaySettings) -> Self {
        Self { db, latency: Duration::from_millis(settings.latency_ms), failure_rate: settings.failure_rate }
    }

    /// As if the gateway could not be reached: nothing happens.
    fn unreachable(&self) -> Result<(), GatewayError> {
        if self.failure_rate > 0.0 && rand::random::<f64>() < self.failure_rate {
            return Err(GatewayError::Unavailable("simulated failure (payment.gateway.failure_rate)".to_owned()));
        }
        Ok(())
    }

    async fn round_trip(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    async fn find(&self, reference: PaymentId) -> Result<Option<gateway_charge::Model>, GatewayError> {
        gateway_charge::Entity::find_by_id(reference.0).one(&self.db).await.map_err(unavailable)
    }
}

fn outcome(row: &gateway_charge::Model) -> ChargeOutcome {
    match &row.decline_reason {
        Some(reason) if row.outcome != Outcome::Approved => ChargeOutcome::Declined(reason.clone()),
        _ => ChargeOutcome::Approved,
    }
}

#[async_trait]
impl PaymentGateway for SimulatedGateway {
    async fn charge(&self, charge: &Charge<'_>) -> Result<ChargeOutcome, GatewayError> {
        self.unreachable()?;
        let decline = match charge.card.number() {
            "4000000000000002" => Some("card_declined"),
            "4000000000009995" => Some("insufficient_funds"),
            _ => None,
        };
        let row = gateway_charge::ActiveModel {
            reference: Set(charge.reference.0),
            outcome: Set(if decline.is_some() { Outcome::Declined } else { Outcome::Approved }),
            decline_reason: Set(decline.map(str::to_owned)),
            amount_cents: Set(charge.amount_cents),
            currency: Set(charge.currency.to_owned()),
            refunded: Set(false),
            created_at: Set(platform::db::now()),
        };
        // The first charge under a reference decides; a retry gets its outcome again.
        gateway_charge::Entity::insert(row)
            .on_conflict(OnConflict::column(gateway_charge::Column::Reference).do_nothing().to_owned())
            .exec_without_returning(&self.db)
            .await
            .map_err(unavailable)?;
        let recorded = self
            .find(charge.reference)
            .await?
            .ok_or_else(|| GatewayError::Unavailable("simulated gateway lost a charge".to_owned()))?;
        self.round_trip().await;
        Ok(outcome(&recorded))
    }

    async fn refund(&self, reference: PaymentId, _amount_cents: i64, _currency: &str) -> Result<(), GatewayError> {
        self.unreachable()?;
        gateway_charge::Entity::update_many()
            .col_expr(gateway_charge::Column::Refunded, Expr::value(true))
            .filter(gateway_charge::Column::Reference.eq(reference.0))
            .exec(&self.db)
            .await
            .map_err(unavailable)?;
        self.round_trip().await;
        Ok(())
    }

    async fn status(&self, reference: PaymentId) -> Result<Option<ChargeOutcome>, GatewayError> {
        self.unreachable()?;
        Ok(self.find(reference).await?.as_ref().map(outcome))
    }
}
