//! Readiness: each configured dependency (a module's database, Redis, later RabbitMQ)
//! registers a check; `/health/ready` runs them all concurrently with a deadline.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use serde::Serialize;

/// A dependency whose failure makes this process not ready.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Stable name shown in the readiness report (e.g. `database:auth`, `redis`).
    fn name(&self) -> &str;

    /// # Errors
    /// A short reason when the dependency does not answer correctly.
    async fn check(&self) -> Result<(), String>;
}

/// Every check of this process.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn HealthCheck>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReadinessReport {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    /// Each dependency's state: `ok` or the reason it failed.
    #[schema(value_type = Object)]
    pub checks: serde_json::Map<String, serde_json::Value>,
}

impl Readiness {
    pub fn add(&mut self, check: Arc<dyn HealthCheck>) {
        self.checks.push(check);
    }

    /// Runs every check (each bounded by `timeout`) and sets the gauge `ready` to the
    /// outcome (1 or 0); `ready` is true when all passed.
    pub async fn report(&self, timeout: Duration) -> (bool, ReadinessReport) {
        let results = join_all(self.checks.iter().map(|c| async move {
            let outcome = match tokio::time::timeout(timeout, c.check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(reason),
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            };
            (c.name().to_owned(), outcome)
        }))
        .await;
        let ready = results.iter().all(|(_, r)| r.is_ok());
        metrics::gauge!("ready").set(if ready { 1.0 } else { 0.0 });
        let checks = results
            .into_iter()
            .map(|(name, r)| (name, serde_json::Value::String(r.err().unwrap_or_else(|| "ok".to_owned()))))
            .collect();
        (ready, ReadinessReport { status: if ready { "ok" } else { "unavailable" }, checks })
    }
}
