//! The channel port: how a rendered notification leaves the system, and its email adapters.
//!
//! - [`FileEmail`] (`notification.email = "file"`, the single binary's default): a file outbox,
//!   one RFC 5322 `<notification id>.eml` per message under `<data_dir>/outbox/`, owner-only.
//! - [`LogEmail`] (`"log"`): nothing is sent; one line per message is logged, without address
//!   or content (the log is no place for personal data); the notifications table keeps it whole.
//! - [`SmtpEmail`] (`"smtp"`): lettre's pooled SMTP transport with the configured host, port,
//!   TLS mode and credentials.
//!
//! SMS and push are later channels of the same port: an adapter per provider, with
//! [`Channel::Sms`] / [`Channel::Push`] and a phone number or device token as recipient.

use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// The notification's kind (`booking_confirmed`, …).
    pub kind: &'a str,
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

impl SendError {
    /// A failure to send `message`, its recipient's address blanked out of `text`: a mail
    /// server's reply often quotes it ("550 <ada@…>: recipient rejected"), and the text goes to
    /// the log and the notification's `error`, which keep no address.
    fn of(message: &Outgoing<'_>, text: &str, permanent: bool) -> Self {
        let mut text = text.to_owned();
        for address in [message.recipient.to_owned(), message.recipient.to_lowercase()] {
            if !address.is_empty() {
                text = text.replace(&address, "<recipient>");
            }
        }
        Self { message: text, permanent }
    }
}

/// The channel port.
#[async_trait]
pub trait Sender: Send + Sync {
    fn channel(&self) -> Channel;

    /// The adapter's name in metrics and logs (`file`, `log`, `smtp`).
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
    File,
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

/// Email that goes nowhere: one line in the log per message, naming the notification and its
/// kind only. The address and the message are personal data, and logs are kept, shipped and
/// read far more widely than the database; the notification's row has the whole message.
pub struct LogEmail;

impl LogEmail {
    fn log(message: &Outgoing<'_>) {
        tracing::info!(notification_id = %message.id, kind = message.kind,
            "email not sent (notification.email = \"log\")");
    }
}

#[async_trait]
impl Sender for LogEmail {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, message: &Outgoing<'_>) -> Result<(), SendError> {
        Self::log(message);
        Ok(())
    }
}

/// The email message of `message`, from `from`; its `Message-ID` is the notification id, so
/// a message sent again is recognisably the same one.
fn email(from: &Mailbox, message: &Outgoing<'_>) -> Result<Message, SendError> {
    let to: Mailbox =
        message.recipient.parse().map_err(|e| SendError::of(message, &format!("recipient address: {e}"), true))?;
    let domain = from.email.domain();
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(message.subject)
        .message_id(Some(format!("<{}@{domain}>", message.id)))
        .multipart(MultiPart::alternative_plain_html(message.text.to_owned(), message.html.to_owned()))
        .map_err(|e| SendError { message: format!("building the message: {e}"), permanent: true })
}

/// Email as files: each message is written whole to `<dir>/<notification id>.eml` (RFC 5322,
/// what a mail program reads or `sendmail -t` sends), owner-only. The file appears at once,
/// complete, or not at all (written beside it, then renamed), so a crash never leaves half a
/// message, and a retry of the same notification replaces its file instead of adding one.
/// Nothing deletes the files: whoever picks them up does.
pub struct FileEmail {
    dir: PathBuf,
    from: Mailbox,
}

impl FileEmail {
    /// The outbox at `dir`, created owner-only (0700) if missing.
    ///
    /// # Errors
    /// The directory cannot be created; the message names it.
    pub fn new(dir: PathBuf, from: Mailbox) -> Result<Self, String> {
        platform::config::private_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self { dir, from })
    }
}

#[async_trait]
impl Sender for FileEmail {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn name(&self) -> &'static str {
        "file"
    }

    async fn send(&self, message: &Outgoing<'_>) -> Result<(), SendError> {
        let bytes = email(&self.from, message)?.formatted();
        let dir = self.dir.clone();
        let name = format!("{}.eml", message.id);
        tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
            .await
            .map_err(|e| SendError { message: format!("outbox: {e}"), permanent: false })?
            .map_err(|e| SendError { message: format!("outbox {}: {e}", self.dir.display()), permanent: false })
    }
}

/// Writes `contents` to `dir/name`, owner-only, durably and all at once: into a temporary
/// file of the same directory (a name of its own, so two tries at once cannot mix their
/// bytes), flushed to disk, renamed over `name`, then the directory flushed so the rename
/// survives a crash too. A leftover `.*.tmp` file is a try that crashed before its rename.
fn write_atomically(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;

    let temp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temp, dir.join(name))
    })();
    if written.is_err() {
        // Nothing to do if this fails too: the first error is the one to report.
        drop(std::fs::remove_file(&temp));
    }
    written?;
    std::fs::File::open(dir)?.sync_all()
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
        let email = email(&self.from, message)?;
        self.transport
            .send(email)
            .await
            .map(drop)
            .map_err(|e| SendError::of(message, &format!("smtp: {e}"), e.is_permanent()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn a_send_error_keeps_no_recipient_address() {
        let message = Outgoing {
            id: crate::api::NotificationId(uuid::Uuid::nil()),
            kind: "booking_confirmed",
            recipient: "Ada@Example.com",
            subject: "s",
            text: "t",
            html: "h",
        };
        let e = SendError::of(&message, "smtp: 550 <ada@example.com> (Ada@Example.com) rejected", true);
        assert_eq!(e.message, "smtp: 550 <<recipient>> (<recipient>) rejected");
    }

    /// A log destination kept in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_log_channel_logs_one_line_without_address_or_content() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        // This test's thread only: the current-thread runtime runs `send` here.
        let _guard = tracing::subscriber::set_default(subscriber);
        let id = NotificationId(uuid::Uuid::now_v7());
        let message = Outgoing {
            id,
            kind: "booking_confirmed",
            recipient: "carol@example.com",
            subject: "Your tickets for Paper Dragons",
            text: "Hi carol, BOOKING 0123",
            html: "<p>Hi carol, BOOKING 0123</p>",
        };

        LogEmail.send(&message).await.unwrap();

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains(&id.to_string()) && log.contains("booking_confirmed"), "{log}");
        for personal in ["carol", "example.com", "Paper Dragons", "BOOKING"] {
            assert!(!log.contains(personal), "the log names {personal:?}: {log}");
        }
    }
}
