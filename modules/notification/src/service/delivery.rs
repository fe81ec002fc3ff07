//! The delivery worker: hands pending notifications to the channel, at once when one is
//! stored and again at each retry's due time.
//!
//! Deliveries are claimed first, a batch in one update that counts each attempt and moves the due
//! time to the end of the claim, so two replicas never send the same notification at the
//! same time, and one whose process died mid-send is tried again after `claim_seconds`. That
//! retry may repeat a message the mail server had already accepted (at least once: an email
//! carries its notification's id as `Message-ID`, so it is recognisably the same message).
//! Each result is written conditionally on the claimed attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::channel::{Outgoing, SendError};
use super::entity::notification;
use super::{NotificationService, now};
use crate::api::{DeliveryStatus, NotificationId};

/// Notifications read per round, and sent at the same time.
const BATCH: u64 = 64;
const IN_FLIGHT: usize = 8;
/// Longest sleep between rounds (the worker is also woken by every new notification).
const IDLE: Duration = Duration::from_secs(5);

impl NotificationService {
    /// Delivers until `stop`: every due notification, then sleeps until the next is due.
    pub async fn run_deliveries(self: Arc<Self>, stop: CancellationToken) {
        loop {
            let wait = match self.deliver_due().await {
                Ok(Some(next)) => (next - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(IDLE),
                Ok(None) => IDLE,
                Err(e) => {
                    tracing::warn!(error = %e, "notification delivery round failed; retrying");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends what is due now, a batch at a time; returns when the next pending one is due.
    async fn deliver_due(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        loop {
            let claimed = self.claim_due().await?;
            let full = claimed.len() as u64 == BATCH;
            let outcomes: Vec<(notification::Model, Result<(), SendError>)> = futures_util::stream::iter(claimed)
                .map(|n| async move {
                    let outcome = self.send(&n).await;
                    (n, outcome)
                })
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            self.record_outcomes(outcomes).await?;
            if !full {
                break;
            }
        }
        let next: Option<DateTime<Utc>> = notification::Entity::find()
            .select_only()
            .column_as(notification::Column::NextAttemptAt.min(), "next")
            .filter(notification::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .into_tuple()
            .one(&self.db)
            .await?
            .flatten();
        Ok(next)
    }

    /// Claims up to a batch of due notifications in one statement: counts the attempt and moves
    /// each one's due time to the end of the claim. The outer conditions are checked again on
    /// each row as it is updated, so of two replicas claiming at once each row goes to one.
    async fn claim_due(&self) -> Result<Vec<notification::Model>, DbErr> {
        let now = now();
        let claim = chrono::Duration::seconds(i64::try_from(self.settings.claim_seconds).unwrap_or(60));
        let due = notification::Entity::find()
            .select_only()
            .column(notification::Column::Id)
            .filter(notification::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(notification::Column::NextAttemptAt.lte(now))
            .order_by_asc(notification::Column::NextAttemptAt)
            .limit(BATCH)
            .into_query();
        notification::Entity::update_many()
            .col_expr(notification::Column::Attempts, Expr::col(notification::Column::Attempts).add(1))
            .col_expr(notification::Column::NextAttemptAt, Expr::value(now + claim))
            .filter(notification::Column::Id.in_subquery(due))
            .filter(notification::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(notification::Column::NextAttemptAt.lte(now))
            .exec_with_returning(&self.db)
            .await
    }

    async fn send(&self, n: &notification::Model) -> Result<(), SendError> {
        let message = Outgoing {
            id: NotificationId(n.id),
            recipient: &n.recipient,
            subject: &n.subject,
            text: &n.body_text,
            html: &n.body_html,
        };
        self.sender.send(&message).await
    }

    /// Writes what the sends came to, each conditional on the attempt this process claimed
    /// (`n.attempts`, as the claim returned it): the ones sent in one statement per attempt
    /// number, failures one by one.
    async fn record_outcomes(&self, outcomes: Vec<(notification::Model, Result<(), SendError>)>) -> Result<(), DbErr> {
        let sender = self.sender.name();
        let mut sent: HashMap<i32, Vec<Uuid>> = HashMap::new();
        for (n, outcome) in outcomes {
            let attempt = u32::try_from(n.attempts).unwrap_or(u32::MAX);
            let (status, next, error) = match outcome {
                Ok(()) => {
                    sent.entry(n.attempts).or_default().push(n.id);
                    metrics::counter!("notification_deliveries_total", "kind" => n.kind, "sender" => sender,
                        "outcome" => "sent")
                    .increment(1);
                    continue;
                }
                Err(e) if e.permanent || attempt >= self.settings.max_attempts => {
                    tracing::warn!(notification_id = %n.id, attempt, error = %e, "notification failed; giving up");
                    (DeliveryStatus::Failed, now(), e.message)
                }
                Err(e) => {
                    let backoff = self.settings.backoff(attempt);
                    tracing::info!(notification_id = %n.id, attempt, error = %e,
                        retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX), "notification not delivered; will retry");
                    let next = now() + chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::seconds(60));
                    (DeliveryStatus::Pending, next, e.message)
                }
            };
            let outcome = if status == DeliveryStatus::Failed { "failed" } else { "retry" };
            metrics::counter!("notification_deliveries_total", "kind" => n.kind.clone(), "sender" => sender,
                "outcome" => outcome)
            .increment(1);
            notification::Entity::update_many()
                .col_expr(notification::Column::Status, Expr::value(status.as_str()))
                .col_expr(notification::Column::LastError, Expr::value(Some(error)))
                .col_expr(notification::Column::NextAttemptAt, Expr::value(next))
                .filter(notification::Column::Id.eq(n.id))
                .filter(notification::Column::Attempts.eq(n.attempts))
                .exec(&self.db)
                .await?;
        }
        for (attempts, ids) in sent {
            notification::Entity::update_many()
                .col_expr(notification::Column::Status, Expr::value(DeliveryStatus::Sent.as_str()))
                .col_expr(notification::Column::SentAt, Expr::value(Some(now())))
                .col_expr(notification::Column::LastError, Expr::value(None::<String>))
                .filter(notification::Column::Id.is_in(ids))
                .filter(notification::Column::Attempts.eq(attempts))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }
}
