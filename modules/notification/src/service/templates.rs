//! The messages' words: per kind a subject, a plain-text and an HTML body, minijinja templates
//! in `modules/notification/templates/` (compiled in). `notification.templates_dir` names a
//! directory whose files of the same names replace the built-in ones, so a deployer can reword
//! them without a build; every template is rendered once with sample values at start, so a
//! broken one stops the process there rather than failing mail later.
//!
//! Names ending in `.html` are HTML-escaped; `.txt` ones are not. Undefined values are errors.

use std::path::Path;

use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior, Value};
use sea_orm::{ActiveEnum, Iterable};
use serde::Serialize;

use crate::api::NotificationKind;

macro_rules! built_in {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $name)))),*]
    };
}

/// Every template file, by name.
const BUILT_IN: &[(&str, &str)] = built_in!(
    "layout.html",
    "layout.txt",
    "details.html",
    "details.txt",
    "booking_created.subject.txt",
    "booking_created.txt",
    "booking_created.html",
    "booking_confirmed.subject.txt",
    "booking_confirmed.txt",
    "booking_confirmed.html",
    "booking_cancelled.subject.txt",
    "booking_cancelled.txt",
    "booking_cancelled.html",
    "booking_expired.subject.txt",
    "booking_expired.txt",
    "booking_expired.html",
    "payment_failed.subject.txt",
    "payment_failed.txt",
    "payment_failed.html",
    "payment_refunded.subject.txt",
    "payment_refunded.txt",
    "payment_refunded.html",
);

/// What a template can use. Values a kind does not have are `none`.
#[derive(Debug, Clone, Serialize)]
pub struct MessageContext {
    /// The user's username and address.
    pub username: String,
    pub email: String,
    pub booking_id: String,
    /// The screening, when it is known.
    pub show: Option<Show>,
    /// Formatted with its currency (`25.00 EUR`): the booking's amount, the amount paid, or
    /// the amount refunded, as the kind says.
    pub amount: Option<String>,
    /// `booking_created`: until when the seats are held, and for how many minutes from now.
    pub expires_at: Option<String>,
    pub hold_minutes: Option<i64>,
    /// `booking_cancelled`: `user` or `admin`.
    pub cancelled_by: Option<String>,
    /// `booking_cancelled`: the booking had been paid (a refund follows).
    pub was_paid: bool,
    /// `payment_failed`: why, in words (`the card was declined`).
    pub failure_reason: Option<String>,
}

/// A screening as a message names it.
#[derive(Debug, Clone, Serialize)]
pub struct Show {
    pub movie_title: String,
    pub theater: String,
    pub location: String,
    /// `Tue 24 Nov 2026, 19:30 UTC`.
    pub starts_at: String,
    /// Labels (`A5`), in seat order.
    pub seats: Vec<String>,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, each replaced by the file of the same name in `dir` if there is
    /// one; then every kind rendered with sample values.
    ///
    /// # Errors
    /// An unreadable file, a syntax error, or a template that fails on the samples; the
    /// message names the file.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut syntax = env.syntax().to_builder();
        // Kept, so an included file ends its last line (`details.txt`).
        syntax.trim_blocks(true).lstrip_blocks(true).keep_trailing_newline(true);
        env.set_syntax(syntax.build().map_err(|e| format!("template syntax: {e}"))?);
        for (name, source) in BUILT_IN {
            let source = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
                None => (*source).to_owned(),
            };
            env.add_template_owned(*name, source).map_err(|e| format!("template {name}: {e}"))?;
        }
        let templates = Self { env };
        for kind in NotificationKind::iter() {
            for sample in [MessageContext::sample(true), MessageContext::sample(false)] {
                templates.render(kind, &sample)?;
            }
        }
        Ok(templates)
    }

    /// # Errors
    /// A template fails on these values (names the template).
    pub fn render(&self, kind: NotificationKind, context: &MessageContext) -> Result<Rendered, String> {
        let ctx = Value::from(Serde(context));
        let part = |suffix: &str| {
            let name = format!("{}.{suffix}", kind.to_value());
            self.env
                .get_template(&name)
                .and_then(|t| t.render(ctx.clone()))
                .map_err(|e| format!("template {name}: {e:#}"))
        };
        let subject = part("subject.txt")?.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Rendered { subject, text: single_blank_lines(&part("txt")?), html: part("html")? })
    }
}

/// Runs of blank lines made one, so a template need not count the blank lines its optional
/// parts leave.
fn single_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut newlines = 0;
    for c in text.chars() {
        newlines = if c == '\n' { newlines + 1 } else { 0 };
        if newlines <= 2 {
            out.push(c);
        }
    }
    out
}

impl MessageContext {
    /// Values for the start-up check: everything known, or only what every event carries.
    fn sample(complete: bool) -> Self {
        let known = |s: &str| complete.then(|| s.to_owned());
        Self {
            username: "sample".to_owned(),
            email: "sample@example.com".to_owned(),
            booking_id: "00000000-0000-0000-0000-000000000000".to_owned(),
            show: complete.then(|| Show {
                movie_title: "Sample <Movie> & Co".to_owned(),
                theater: "Screen 1".to_owned(),
                location: "Level 2".to_owned(),
                starts_at: "Tue 24 Nov 2026, 19:30 UTC".to_owned(),
                seats: vec!["A1".to_owned(), "A2".to_owned()],
            }),
            amount: known("25.00 EUR"),
            expires_at: known("Tue 24 Nov 2026, 19:10 UTC"),
            hold_minutes: complete.then_some(10),
            cancelled_by: known("user"),
            was_paid: complete,
            failure_reason: known("the card was declined"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_built_in_templates_render_every_kind_and_escape_html_only() {
        let templates = Templates::load(None).unwrap();
        let context = MessageContext::sample(true);
        let confirmed = templates.render(NotificationKind::BookingConfirmed, &context).unwrap();
        assert!(confirmed.subject.contains("Sample <Movie> & Co"), "{}", confirmed.subject);
        assert!(!confirmed.subject.contains('\n'));
        for needle in [
            "Sample <Movie> & Co",
            "Screen 1",
            "Tue 24 Nov 2026, 19:30 UTC",
            "A1, A2",
            "25.00 EUR",
            context.booking_id.as_str(),
        ] {
            assert!(confirmed.text.contains(needle), "text lacks {needle}: {}", confirmed.text);
        }
        assert!(confirmed.html.contains("Sample &lt;Movie&gt; &amp; Co"), "{}", confirmed.html);
        for kind in NotificationKind::iter() {
            for sample in [MessageContext::sample(true), MessageContext::sample(false)] {
                let text = templates.render(kind, &sample).unwrap().text;
                assert!(!text.contains("\n\n\n"), "{kind:?}: more than one blank line in a row: {text}");
            }
        }
        // Every line of the screening is a line of its own.
        for line in ["Seats:    A1, A2", "Paid:     25.00 EUR"] {
            assert!(confirmed.text.lines().any(|l| l.trim_end() == line), "no line {line:?} in {}", confirmed.text);
        }
        assert!(!confirmed.html.contains("<Movie>"));
    }

    #[test]
    fn a_template_directory_replaces_files_by_name_and_a_broken_one_is_refused_at_load() {
        let dir = std::env::temp_dir().join(format!("boxoffice-templates-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("booking_created.subject.txt"), "Held: {{ booking_id }}").unwrap();
        let templates = Templates::load(Some(&dir)).unwrap();
        let rendered = templates.render(NotificationKind::BookingCreated, &MessageContext::sample(false)).unwrap();
        assert_eq!(rendered.subject, "Held: 00000000-0000-0000-0000-000000000000");

        std::fs::write(dir.join("payment_failed.txt"), "{{ show.movie_title }}").unwrap();
        let err = Templates::load(Some(&dir)).err().unwrap();
        assert!(err.contains("payment_failed.txt"), "{err}");
        std::fs::write(dir.join("payment_failed.txt"), "{% if show %}").unwrap();
        let err = Templates::load(Some(&dir)).err().unwrap();
        assert!(err.contains("payment_failed.txt"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
