//! Failed-login limits, after OWASP's Authentication Cheat Sheet ("Login Throttling"): an
//! attacker may neither guess a password (every account gets a bounded number of guesses per
//! window, from however many addresses) nor lock its owner out (no limit an attacker elsewhere
//! can spend applies to the owner's own address).
//!
//! Three throttles, each "N free attempts per window, then one attempt per wait, the wait
//! doubling" ([`Backoff`]), never a hard lockout:
//! - per account and address: every attempt;
//! - per account, and per address: only attempts from an address the account has not logged
//!   in from before ("known": remembered after a success). Neither can lock a victim out of
//!   the address they use, nor a gateway's known users out of the gateway's address.
//!
//! Each attempt is counted *before* its password is verified, atomically ([`KeyValue::throttle`]),
//! so concurrent guesses cannot all slip past one check; a success gives its counts back.
//!
//! When the shared store (Redis) fails or hangs, the attempt (and every attempt in the next
//! second, so a hung Redis does not slow each login by its timeout) is limited by this
//! process's own store instead: an attacker who can slow Redis gains at most one budget per replica, and
//! logins go on (failing closed would let that attacker lock everybody out).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use platform::error::Failure;
use platform::kv::{Backoff, KeyValue, KvError, MemoryKv, Throttled};

use super::AuthSettings;
use crate::api::AuthError;

pub struct LoginLimiter {
    shared: Arc<dyn KeyValue>,
    /// This process's fallback while `shared` is unavailable.
    local: MemoryKv,
    pair: Backoff,
    account: Backoff,
    address: Backoff,
    known_for: Duration,
    /// When the shared store last failed; short lock, never held across an await.
    shared_failed_at: Mutex<Option<Instant>>,
}

/// After the shared store fails, how long attempts skip it before trying it again.
const SHARED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// An attempt that passed the limits: the keys it was counted on, in the store that counted it.
#[must_use]
pub struct Attempt<'a> {
    store: &'a dyn KeyValue,
    counted: Vec<String>,
    known_key: String,
}

impl LoginLimiter {
    pub fn new(shared: Arc<dyn KeyValue>, settings: &AuthSettings) -> Self {
        let window = Duration::from_secs(settings.login_failure_window_seconds);
        let backoff = |free| Backoff {
            free,
            first_wait: Duration::from_secs(settings.login_first_wait_seconds),
            max_wait: window,
            window,
        };
        Self {
            shared,
            local: MemoryKv::new(),
            pair: backoff(settings.login_max_failures_per_account_address),
            account: backoff(settings.login_max_failures_per_account),
            address: backoff(settings.login_max_failures_per_address),
            known_for: Duration::from_secs(settings.login_known_address_days.saturating_mul(24 * 3600)),
            shared_failed_at: Mutex::new(None),
        }
    }

    /// Counts an attempt on `account` (an account id, or a digest of an unknown name) from
    /// `client`, before its password is verified.
    ///
    /// # Errors
    /// `TooManyAttempts` with the wait until this attempt could pass.
    pub async fn begin(&self, account: &str, client: Option<IpAddr>) -> Result<Attempt<'_>, AuthError> {
        if !self.shared_failed_recently() {
            match self.begin_in(&*self.shared, account, client).await {
                Ok(answer) => return answer,
                Err(e) => {
                    tracing::warn!(error = %e, "login limiter store unavailable; limiting in this process");
                    *self.shared_failed_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                }
            }
        }
        metrics::counter!("auth_login_limiter_fallbacks_total").increment(1);
        match self.begin_in(&self.local, account, client).await {
            Ok(answer) => answer,
            Err(e) => Err(AuthError::Internal(Failure::new("in-process login limiter", e))),
        }
    }

    /// Whether the shared store failed within [`SHARED_RETRY_AFTER`]: then attempts go straight
    /// to the local store, so a hung Redis costs one login its timeout per period, not every login.
    fn shared_failed_recently(&self) -> bool {
        let failed_at = *self.shared_failed_at.lock().unwrap_or_else(PoisonError::into_inner);
        failed_at.is_some_and(|at| at.elapsed() < SHARED_RETRY_AFTER)
    }

    async fn begin_in<'a>(
        &self,
        store: &'a dyn KeyValue,
        account: &str,
        client: Option<IpAddr>,
    ) -> Result<Result<Attempt<'a>, AuthError>, KvError> {
        let address = client.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        // Kept for weeks, so it names the pair by a digest: no address stays readable in the store.
        let known_key = format!("auth:login:known:{}", super::token_hash(&format!("{account} {address}")));
        let mut limits = vec![(format!("auth:login:pair:{account}:{address}"), self.pair)];
        if store.get(&known_key).await?.is_none() {
            limits.push((format!("auth:login:account:{account}"), self.account));
            limits.push((format!("auth:login:address:{address}"), self.address));
        }
        let mut attempt = Attempt { store, counted: Vec::new(), known_key };
        for (key, backoff) in limits {
            // On an error the counts taken so far stay: giving them back would wait on the failing
            // store again, and an extra count only tightens a limit for one window.
            match store.throttle(&key, backoff).await? {
                Throttled::Passed { .. } => attempt.counted.push(key),
                Throttled::Wait { retry_after } => {
                    // Only attempts that are verified count.
                    attempt.give_back().await;
                    let retry_after_seconds = retry_after.as_millis().div_ceil(1000).try_into().unwrap_or(u64::MAX);
                    return Ok(Err(AuthError::TooManyAttempts { retry_after_seconds }));
                }
            }
        }
        Ok(Ok(attempt))
    }

    /// The password was right: the attempt's counts are given back, and its address becomes
    /// known for the account.
    pub async fn succeeded(&self, attempt: Attempt<'_>) {
        if let Err(e) = attempt.store.set(&attempt.known_key, b"1", self.known_for).await {
            tracing::warn!(error = %e, "could not remember the address of a successful login");
        }
        attempt.give_back().await;
    }
}

impl Attempt<'_> {
    async fn give_back(&self) {
        for key in &self.counted {
            if let Err(e) = self.store.unthrottle(key).await {
                tracing::warn!(error = %e, "could not give back a login attempt");
            }
        }
    }
}
