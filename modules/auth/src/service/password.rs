//! Argon2id hashing, run on the blocking pool (never on the async workers) and bounded to
//! one hash per core at a time, so a login storm queues instead of starving everything.

use std::sync::Arc;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use platform::error::Failure;
use tokio::sync::Semaphore;

use crate::api::AuthError;

pub struct Passwords {
    argon: Arc<Argon2<'static>>,
    permits: Semaphore,
    /// A hash of a random password: verified against when the user does not exist, so an
    /// unknown user costs the same time as a wrong password.
    decoy: String,
}

impl Passwords {
    /// # Errors
    /// Parameters Argon2 rejects (named in the message).
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, String> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| format!("auth.argon2_* parameters rejected: {e}"))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let decoy = argon
            .hash_password(uuid::Uuid::new_v4().as_bytes())
            .map_err(|e| format!("argon2 self-test failed: {e}"))?
            .to_string();
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        Ok(Self { argon: Arc::new(argon), permits: Semaphore::new(cores), decoy })
    }

    /// A PHC string (`$argon2id$v=19$…`) with a fresh random salt.
    ///
    /// # Errors
    /// `Internal` if hashing fails.
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        let argon = Arc::clone(&self.argon);
        self.run(move || argon.hash_password(password.as_bytes()).map(|h| h.to_string()))
            .await?
            .map_err(|e| AuthError::Internal(Failure::new("argon2", e)))
    }

    /// Whether `password` matches `phc`; with `None`, checks against the decoy (always false).
    ///
    /// # Errors
    /// `Internal` if the blocking pool is gone.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, AuthError> {
        let argon = Arc::clone(&self.argon);
        let known = phc.is_some();
        let phc = phc.unwrap_or_else(|| self.decoy.clone());
        let matches = self.run(move || argon.verify_password(password.as_bytes(), phc.as_str()).is_ok()).await?;
        Ok(known && matches)
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, AuthError> {
        let _permit =
            self.permits.acquire().await.map_err(|e| AuthError::Internal(Failure::new("hashing permits", e)))?;
        tokio::task::spawn_blocking(work).await.map_err(|e| AuthError::Internal(Failure::new("hashing task", e)))
    }
}
