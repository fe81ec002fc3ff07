//! The delivery worker: hands pending notifications to the channel, at once when one is
//! stored and again at each retry's due time.
//!
//! A delivery is claimed first (a conditional update that counts the attempt and moves the due
//! time to the end of the claim), so two replicas never send the same notification at the
//! same time, and one whose process died mid-send is tried again after `claim_seconds`. That
//! retry may repeat a message the mail server had already accepted (at least once: an email
//! carries its notification's id as `Message-ID`, so it is recognisably the same message).
//! Each result is written conditionally on the claimed attempt.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tokio_util::sync::CancellationToken;

use super::channel::Outgoing;
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
            let due = notification::Entity::find()
                .filter(notification::Column::Status.eq(DeliveryStatus::Pending.as_str()))
                .filter(notification::Column::NextAttemptAt.lte(now()))
                .order_by_asc(notification::Column::NextAttemptAt)
                .limit(BATCH)
                .all(&self.db)
                .await?;
            let full = due.len() as u64 == BATCH;
            let results: Vec<Result<(), DbErr>> =
                futures_util::stream::iter(due).map(|n| self.deliver(n)).buffer_unordered(IN_FLIGHT).collect().await;
            results.into_iter().collect::<Result<(), DbErr>>()?;
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

    /// One attempt at one notification, if this process wins its claim.
    async fn deliver(&self, n: notification::Model) -> Result<(), DbErr> {
        let attempt = n.attempts + 1;
        let claim = chrono::Duration::seconds(i64::try_from(self.settings.claim_seconds).unwrap_or(60));
        let claimed = notification::Entity::update_many()
            .col_expr(notification::Column::Attempts, Expr::value(attempt))
            .col_expr(notification::Column::NextAttemptAt, Expr::value(now() + claim))
            .filter(notification::Column::Id.eq(n.id))
            .filter(notification::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(notification::Column::Attempts.eq(n.attempts))
            .exec(&self.db)
            .await?;
        if claimed.rows_affected != 1 {
            return Ok(());
        }
        let message = Outgoing {
            id: NotificationId(n.id),
            recipient: &n.recipient,
            subject: &n.subject,
            text: &n.body_text,
            html: &n.body_html,
        };
        let sender = self.sender.name();
        let outcome = self.sender.send(&message).await;
        let (status, sent_at, last_error, next) = match &outcome {
            Ok(()) => (DeliveryStatus::Sent, Some(now()), None, now()),
            Err(e) if e.permanent || u32::try_from(attempt).unwrap_or(u32::MAX) >= self.settings.max_attempts => {
                tracing::warn!(notification_id = %n.id, attempt, error = %e, "notification failed; giving up");
                (DeliveryStatus::Failed, None, Some(e.message.clone()), now())
            }
            Err(e) => {
                let backoff = self.settings.backoff(u32::try_from(attempt).unwrap_or(u32::MAX));
                tracing::info!(notification_id = %n.id, attempt, error = %e, retry_in_ms = backoff.as_millis() as u64,
                    "notification not delivered; will retry");
                let next = now() + chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::seconds(60));
                (DeliveryStatus::Pending, None, Some(e.message.clone()), next)
            }
        };
        let outcome_label = match status {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Pending => "retry",
        };
        metrics::counter!("notification_deliveries_total", "kind" => n.kind.clone(), "sender" => sender,
            "outcome" => outcome_label)
        .increment(1);
        notification::Entity::update_many()
            .col_expr(notification::Column::Status, Expr::value(status.as_str()))
            .col_expr(notification::Column::SentAt, Expr::value(sent_at))
            .col_expr(notification::Column::LastError, Expr::value(last_error))
            .col_expr(notification::Column::NextAttemptAt, Expr::value(next))
            .filter(notification::Column::Id.eq(n.id))
            .filter(notification::Column::Attempts.eq(attempt))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
