//! Errors that keep their cause.
//!
//! A module's `Internal` variant holds a [`Failure`]: what was being done, with the error that
//! stopped it as its `source`. Nothing is flattened into a string on the way up, so the one
//! place that logs it (where it becomes a 500, see [`crate::problem::Problem::internal`], or
//! where a background task gives up on it) prints the whole chain with [`chain`].

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

/// Any error, owned and sendable: the cause a [`Failure`] keeps.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// An unexpected failure inside the process: a context (`booking database`, `event
/// payment.completed`) and, as its source, the error that caused it. Its `Display` is the
/// context alone; [`chain`] adds the causes.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct Failure {
    context: Cow<'static, str>,
    #[source]
    source: Option<BoxError>,
}

impl Failure {
    /// `context` failed because of `source`.
    pub fn new(context: impl Into<Cow<'static, str>>, source: impl Into<BoxError>) -> Self {
        Self { context: context.into(), source: Some(source.into()) }
    }

    /// A failure with no underlying error: a broken invariant (a row the code cannot read, a
    /// state that cannot happen) or a cause that only exists as text (a panic's message).
    pub fn msg(context: impl Into<Cow<'static, str>>) -> Self {
        Self { context: context.into(), source: None }
    }
}

/// Displays `error` followed by each of its causes, `outer: inner: root` — the form every log
/// line about an error uses.
pub fn chain<'a>(error: &'a (dyn Error + 'static)) -> impl fmt::Display + 'a {
    Chain(error)
}

struct Chain<'a>(&'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_shows_every_cause_once() {
        let root = std::io::Error::other("disk full");
        let failure = Failure::new("payment database", root);
        assert_eq!(chain(&failure).to_string(), "payment database: disk full");
        assert_eq!(chain(&Failure::msg("unknown state")).to_string(), "unknown state");
    }
}
