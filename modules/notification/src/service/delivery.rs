//! The delivery worker: tries pending notifications, at once when one is stored and again at
//! each retry's due time. A try writes the message first if no earlier try did (see
//! [`compose`](super::compose)), then hands it to the channel.
//!
//! Notifications are claimed first, a batch in one update that counts each attempt and moves
//! the due time to the end of the claim, so two replicas never try the same notification at
//! the same time, and one whose process died mid-try is tried again after `claim_seconds`. A
//! try is abandoned after half the claim, so it never outlives it. The retry after a crash may
//! repeat a message the mail server had already accepted (at least once: an email carries its
//! notification's id as `Message-ID`, so it is recognisably the same message). Each result is
//! written conditionally on the claimed attempt.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use platform::db::now;
use platform::tasks::Resume;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{ActiveEnum, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::NotificationService;
use super::channel::{Outgoing, SendError};
use super::compose::Prepared;
use super::entity::notification;
use crate::api::{DeliveryStatus, NotificationId};

/// Notifications claimed per round, and tried at the same time (each within half the claim).
const BATCH: u64 = 16;
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
                    tracing::warn!(error = %platform::error::chain(&e), "notification delivery round failed; retrying");
                    Duration::from_secs(1)
                }
            };
            if platform::tasks::pause(&stop, &self.wake, wait).await == Resume::Stop {
                return;
            }
        }
    }

    /// Sends what is due now, a batch at a time; returns when the next pending one is due.
    async fn deliver_due(&self) -> Result<Option<DateTime<Utc>>, DbErr> {
        loop {
            let claimed = self.claim_due().await?;
            let full = claimed.len() as u64 == BATCH;
            let attempts = claimed.into_iter().map(|n| async move {
                let outcome = self.attempt(&n).instrument(send_span(&n)).await;
                self.record(n, outcome).await
            });
            futures_util::future::join_all(attempts).await.into_iter().collect::<Result<(), DbErr>>()?;
            if !full {
                break;
            }
        }
        let next: Option<DateTime<Utc>> = notification::Entity::find()
            .select_only()
            .column_as(notification::Column::NextAttemptAt.min(), "next")
            .filter(notification::Column::Status.eq(DeliveryStatus::Pending))
            .into_tuple()
            .one(&self.db)
            .await?
            .flatten();
        Ok(next)
    }

    /// Claims up to a batch of due notifications in one statement: counts the attempt and moves
    /// each one's due time to the end of the claim. The outer conditions are checked again on
    /// each row as it is updated, so of two replicas claiming at once each row goes to one; on
    /// PostgreSQL each skips the rows the other is claiming instead of queueing behind it (the
    /// claims of busy replicas waited on each other, row after row, in due order).
    async fn claim_due(&self) -> Result<Vec<notification::Model>, DbErr> {
        let now = now();
        let due = notification::Entity::find()
            .select_only()
            .column(notification::Column::Id)
            .filter(notification::Column::Status.eq(DeliveryStatus::Pending))
            .filter(notification::Column::NextAttemptAt.lte(now))
            .order_by_asc(notification::Column::NextAttemptAt)
            .limit(BATCH)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .into_query();
        notification::Entity::update_many()
            .col_expr(notification::Column::Attempts, Expr::col(notification::Column::Attempts).add(1))
            .col_expr(notification::Column::NextAttemptAt, Expr::value(now + self.claim()))
            .filter(notification::Column::Id.in_subquery(due))
            .filter(notification::Column::Status.eq(DeliveryStatus::Pending))
            .filter(notification::Column::NextAttemptAt.lte(now))
            .exec_with_returning(&self.db)
            .await
    }

    fn claim(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::try_from(self.settings.claim_seconds).unwrap_or(60))
    }

    /// One try: the message written if it was not yet, then sent, all within half the claim
    /// (so it ends before the claim does). Returns the message if this try wrote it (it is kept
    /// from then on, so every retry sends the same), and how the try went.
    async fn attempt(&self, n: &notification::Model) -> (Option<Prepared>, Result<(), SendError>) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.settings.claim_seconds / 2);
        let late = || SendError {
            message: "gave up: the attempt outlasted half of claim_seconds".to_owned(),
            permanent: false,
        };
        let (fresh, message) = match stored(n) {
            Some(message) => (false, message),
            None => match tokio::time::timeout_at(deadline, self.prepare(n)).await {
                Ok(Ok(message)) => (true, message),
                Ok(Err(e)) => return (None, Err(e)),
                Err(_) => return (None, Err(late())),
            },
        };
        let kind = n.kind.to_value();
        let outgoing = Outgoing {
            id: NotificationId(n.id),
            kind: &kind,
            recipient: &message.recipient,
            subject: &message.subject,
            text: &message.text,
            html: &message.html,
        };
        let outcome =
            tokio::time::timeout_at(deadline, self.sender.send(&outgoing)).await.unwrap_or_else(|_| Err(late()));
        (fresh.then_some(message), outcome)
    }

    /// Writes what a try came to, conditional on the attempt this process claimed
    /// (`n.attempts`, as the claim returned it): a replica that took over meanwhile wins.
    async fn record(
        &self,
        n: notification::Model,
        (fresh, outcome): (Option<Prepared>, Result<(), SendError>),
    ) -> Result<(), DbErr> {
        let attempt = u32::try_from(n.attempts).unwrap_or(u32::MAX);
        let (status, next, error) = match outcome {
            Ok(()) => (DeliveryStatus::Sent, now(), None),
            Err(e) if e.permanent || attempt >= self.settings.max_attempts => {
                tracing::warn!(notification_id = %n.id, attempt, error = %e, "notification failed; giving up");
                (DeliveryStatus::Failed, now(), Some(e.message))
            }
            Err(e) => {
                let backoff = self.settings.backoff(attempt);
                tracing::info!(notification_id = %n.id, attempt, error = %e,
                    retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    "notification not delivered; will retry");
                let next = now() + chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::seconds(60));
                (DeliveryStatus::Pending, next, Some(e.message))
            }
        };
        let outcome = match status {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Pending => "retry",
        };
        metrics::counter!("notification_deliveries_total", "kind" => n.kind.to_value(), "sender" => self.sender.name(),
            "outcome" => outcome)
        .increment(1);
        let mut update = notification::Entity::update_many()
            .col_expr(notification::Column::Status, Expr::value(status))
            .col_expr(notification::Column::SentAt, Expr::value((status == DeliveryStatus::Sent).then(now)))
            .col_expr(notification::Column::LastError, Expr::value(error))
            .col_expr(notification::Column::NextAttemptAt, Expr::value(next));
        if let Some(message) = fresh {
            update = update
                .col_expr(notification::Column::Recipient, Expr::value(Some(message.recipient)))
                .col_expr(notification::Column::Subject, Expr::value(Some(message.subject)))
                .col_expr(notification::Column::BodyText, Expr::value(Some(message.text)))
                .col_expr(notification::Column::BodyHtml, Expr::value(Some(message.html)));
        }
        update
            .filter(notification::Column::Id.eq(n.id))
            .filter(notification::Column::Attempts.eq(n.attempts))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}

/// The message a previous try wrote, if one did.
/// A try's span: it continues the trace of the event handling that stored the notification.
fn send_span(n: &notification::Model) -> tracing::Span {
    let span = tracing::info_span!(
        "send",
        otel.name = %format_args!("send {}", n.kind.to_value()),
        otel.kind = "client",
        trace_id = tracing::field::Empty,
        notification_id = %n.id,
        attempt = n.attempts,
    );
    platform::trace::follow(&span, n.traceparent.as_deref());
    span
}

fn stored(n: &notification::Model) -> Option<Prepared> {
    Some(Prepared {
        recipient: n.recipient.clone()?,
        subject: n.subject.clone()?,
        text: n.body_text.clone()?,
        html: n.body_html.clone()?,
    })
}
