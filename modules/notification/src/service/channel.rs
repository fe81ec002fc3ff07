//! The channel port: how a rendered notification leaves the system, and its email adapters.
//!
//! - [`LogEmail`] (`notification.email = "log"`, the single binary's default): the message
//!   is written to the log; the notifications table keeps it whole.
//! - [`SmtpEmail`] (`"smtp"`): lettre's pooled SMTP transport with the configured host, port,
//!   TLS mode and credentials.
//!
//! SMS and push are later channels of the same port: an adapter per provider, with
//! [`Channel::Sms`] / [`Channel::Push`] and a phone number or device token as recipient.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use platform::config::Secret;
use serde::Deserialize;

use crate::api::{Channel, NotificationId};

/// A rendered notification on its way to `recipient`.
pub struct Outgoing<'a> {
    /// Also the message's identity where the channel has one (email: its `Message-ID`), so a
    /// message sent again after a crash is recognisably the same message.
    pub id: NotificationId,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
}

/// Why a send failed, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    /// The other side refused this message for good (e.g. SMTP 5xx: no such mailbox).
    pub permanent: bool,
}

/// The channel port.
#[async_trait]
pub trait Sender: Send + Sync {
    fn channel(&self) -> Channel;

    /// The adapter's name in metrics and logs (`log`, `smtp`).
    fn name(&self) -> &'static str;

    /// Hands the message over; returns once the other side has accepted it.
    ///
    /// # Errors
    /// The message was not accepted.
    async fn send(&self, message: &Outgoing<'_>) -> Result<(), SendError>;
}

/// `notification.email`: which adapter sends email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailAdapter {
    Log,
    Smtp,
}

/// `notification.smtp.tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: a mail server on loopback or a private network only.
    None,
    /// Plain connection upgraded with STARTTLS, which is required (usually port 587).
    Starttls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

/// `[notification.smtp]`.
#[derive(Debug, Clone, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// Empty: no authentication.
    pub username: String,
    pub password: Secret,
    /// Connecting, and each SMTP command, give up after this long.
    pub timeout_seconds: u64,
}

/// Email written to the log.
pub struct LogEmail;

#[async_trait]
impl Sender for LogEmail {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, message: &Outgoing<'_>) -> Result<(), SendError> {
        tracing::info!(notification_id = %message.id, to = message.recipient, subject = message.subject,
            body = message.text, "email (notification.email = \"log\": not sent anywhere)");
        Ok(())
    }
}

/// Email through an SMTP server.
pub struct SmtpEmail {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpEmail {
    /// # Errors
    /// TLS parameters that cannot be built for `host`.
    pub fn new(settings: &SmtpSettings, from: Mailbox) -> Result<Self, String> {
        let tls = |host: &str| TlsParameters::new(host.to_owned()).map_err(|e| format!("notification.smtp.tls: {e}"));
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .timeout(Some(Duration::from_secs(settings.timeout_seconds)))
            .tls(match settings.tls {
                SmtpTls::None => Tls::None,
                SmtpTls::Starttls => Tls::Required(tls(&settings.host)?),
                SmtpTls::Tls => Tls::Wrapper(tls(&settings.host)?),
            });
        if !settings.username.is_empty() {
            builder =
                builder.credentials(Credentials::new(settings.username.clone(), settings.password.expose().to_owned()));
        }
        // As many connections as the delivery worker tries notifications at once.
        builder = builder.pool_config(PoolConfig::new().max_size(16));
        Ok(Self { transport: builder.build(), from })
    }
}

#[async_trait]
impl Sender for SmtpEmail {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn name(&self) -> &'static str {
        "smtp"
    }

    async fn send(&self, message: &Outgoing<'_>) -> Result<(), SendError> {
        let to: Mailbox = message
            .recipient
            .parse()
            .map_err(|e| SendError { message: format!("recipient address: {e}"), permanent: true })?;
        let domain = self.from.email.domain();
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject)
            .message_id(Some(format!("<{}@{domain}>", message.id)))
            .multipart(MultiPart::alternative_plain_html(message.text.to_owned(), message.html.to_owned()))
            .map_err(|e| SendError { message: format!("building the message: {e}"), permanent: true })?;
        self.transport
            .send(email)
            .await
            .map(drop)
            .map_err(|e| SendError { message: format!("smtp: {e}"), permanent: e.is_permanent() })
    }
}
