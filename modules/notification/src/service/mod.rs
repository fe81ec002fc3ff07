//! The in-process implementation of [`NotificationApi`] on the module's own tables.
//!
//! An event on `notification_queue` becomes a `pending` notification, stored in one
//! transaction with the inbox record ([`events`]); nothing else happens on the consumer. The
//! delivery worker ([`delivery`]) then writes the message once ([`compose`]: the user's address
//! through [`AuthApi`], the screening through [`MovieApi`], the [`templates`]) and hands it to
//! the channel ([`channel`]), retrying with backoff until it is `sent`, or `failed` after
//! `notification.max_attempts`. Nothing on the booking or payment path waits for auth, movie or
//! mail.

pub mod channel;
mod compose;
mod delivery;
mod entity;
mod events;
pub mod templates;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use auth::api::AuthApi;
use lettre::message::Mailbox;
use movie::api::MovieApi;
use platform::events::{EventHandler, RetryPolicy};
use platform::identity::AuthUser;
use platform::pagination::{Page, PageRequest};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Deserialize;
use tokio::sync::Notify;

use crate::api::{Notification, NotificationApi, NotificationError, NotificationId};
use channel::{EmailAdapter, FileEmail, LogEmail, Sender, SmtpEmail, SmtpSettings};
use entity::notification;
use templates::Templates;

/// The file outbox of `notification.email = "file"`, under `data_dir`.
pub const OUTBOX_DIR: &str = "outbox";

/// `[notification]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct NotificationSettings {
    /// Which adapter sends email: `file`, `log` or `smtp`.
    pub email: EmailAdapter,
    /// The sender of every email, e.g. `boxoffice <tickets@example.com>`.
    pub from: String,
    /// Deliveries tried before a notification is `failed`.
    pub max_attempts: u32,
    /// Wait before the second try; doubled for each further one, up to `retry_max_ms`.
    pub retry_first_ms: u64,
    pub retry_max_ms: u64,
    /// A try not finished by then is presumed dead (its process crashed) and is tried again;
    /// a try is given up after half of it. At least twice `smtp.timeout_seconds`.
    pub claim_seconds: u64,
    /// A directory whose files replace the built-in templates of the same names; empty: none.
    pub templates_dir: String,
    pub smtp: SmtpSettings,
}

impl NotificationSettings {
    /// Checks that parse but make no sense; each error names its key.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if let Err(e) = self.from.parse::<Mailbox>() {
            errors.push(format!("notification.from: {:?} is not an email address ({e})", self.from));
        }
        if self.max_attempts == 0 {
            errors.push("notification.max_attempts must be at least 1".to_owned());
        }
        if self.retry_first_ms == 0 || self.retry_first_ms > self.retry_max_ms {
            errors.push("notification.retry_first_ms must be at least 1 and at most retry_max_ms".to_owned());
        }
        // A try is given half the claim: room for a whole SMTP timeout.
        if self.claim_seconds < 2 * self.smtp.timeout_seconds {
            errors
                .push("notification.claim_seconds must be at least twice notification.smtp.timeout_seconds".to_owned());
        }
        if self.email == EmailAdapter::Smtp && self.smtp.host.is_empty() {
            errors.push("notification.smtp.host must be set when notification.email = \"smtp\"".to_owned());
        }
        if self.smtp.timeout_seconds == 0 {
            errors.push("notification.smtp.timeout_seconds must be at least 1".to_owned());
        }
        errors
    }

    /// The wait after `attempts` failed tries: the event bus's doubling, capped.
    fn backoff(&self, attempts: u32) -> Duration {
        let policy =
            RetryPolicy { max_attempts: self.max_attempts, first_backoff: Duration::from_millis(self.retry_first_ms) };
        policy.backoff(attempts).min(Duration::from_millis(self.retry_max_ms))
    }
}

pub struct NotificationService {
    db: DatabaseConnection,
    settings: NotificationSettings,
    auth: Arc<dyn AuthApi>,
    movies: Arc<dyn MovieApi>,
    templates: Templates,
    sender: Arc<dyn Sender>,
    /// Wakes the delivery worker when a notification was stored.
    wake: Notify,
}

impl From<DbErr> for NotificationError {
    fn from(e: DbErr) -> Self {
        platform::db::db_err("notification database", e)
    }
}

impl NotificationService {
    /// # Errors
    /// The templates do not load (a file of `templates_dir` is unreadable or broken), or the
    /// email adapter cannot be built (SMTP's TLS, the file outbox's directory under
    /// `data_dir`); the message names the key or file.
    pub fn new(
        db: DatabaseConnection,
        settings: &NotificationSettings,
        data_dir: &Path,
        auth: Arc<dyn AuthApi>,
        movies: Arc<dyn MovieApi>,
    ) -> Result<Self, String> {
        let dir = Some(Path::new(&settings.templates_dir)).filter(|d| !d.as_os_str().is_empty());
        let templates = Templates::load(dir).map_err(|e| format!("notification.templates_dir: {e}"))?;
        let from = || settings.from.parse().map_err(|e| format!("notification.from: {e}"));
        let sender: Arc<dyn Sender> = match settings.email {
            EmailAdapter::File => Arc::new(FileEmail::new(data_dir.join(OUTBOX_DIR), from()?)?),
            EmailAdapter::Log => Arc::new(LogEmail),
            EmailAdapter::Smtp => Arc::new(SmtpEmail::new(&settings.smtp, from()?)?),
        };
        Ok(Self { db, settings: settings.clone(), auth, movies, templates, sender, wake: Notify::new() })
    }

    /// The consumer of `notification_queue`.
    pub fn events_handler(self: &Arc<Self>) -> Arc<dyn EventHandler> {
        Arc::new(events::BookingAndPaymentEvents::new(Arc::clone(self)))
    }
}

fn view(n: notification::Model) -> Notification {
    Notification {
        id: NotificationId(n.id),
        kind: n.kind,
        channel: n.channel,
        // Written by the first delivery try, moments after the event as a rule.
        subject: n.subject.unwrap_or_default(),
        status: n.status,
        created_at: n.created_at,
        sent_at: n.sent_at,
    }
}

#[async_trait]
impl NotificationApi for NotificationService {
    async fn list(&self, caller: &AuthUser, page: PageRequest) -> Result<Page<Notification>, NotificationError> {
        let pagination = page.validate().map_err(NotificationError::Validation)?;
        let select = notification::Entity::find().filter(notification::Column::UserId.eq(caller.id.0));
        let total = select.clone().count(&self.db).await?;
        let rows = select
            .order_by_desc(notification::Column::CreatedAt)
            .order_by_desc(notification::Column::Id)
            .offset(pagination.offset())
            .limit(pagination.per_page)
            .all(&self.db)
            .await?;
        let items = rows.into_iter().map(view).collect();
        Ok(Page::new(items, pagination, total))
    }
}
