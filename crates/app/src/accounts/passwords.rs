//! Password hashing: argon2id at OWASP's parameters (m = 19456 KiB, t = 2,
//! p = 1), PHC strings, always on the blocking pool so a burst of logins
//! never stalls the async workers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use argon2::password_hash::phc::PasswordHash as PhcHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use specgen_domain::{Password, PasswordAttempt, PasswordHash};

/// Passwords of 8+ characters with a letter and a digit from Django's list of
/// the 20,000 most common passwords (itself derived from Royce Williams'
/// breached-password top list), lowercased: only those can pass our policy.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON_PASSWORDS.lines().map(str::trim).filter(|l| !l.is_empty()).collect())
}

/// True when the password, ignoring case, is one of the most common ones.
pub fn is_common(password: &Password) -> bool {
    common_passwords().contains(password.expose().to_lowercase().as_str())
}

/// Hashes each core may have waiting before new ones are turned away. At
/// about 30 ms a hash, 64 per core is about two seconds of work: a sign-in
/// that would wait longer gets a quick "busy, retry" instead of piling up
/// (each waiting request holds memory and a connection) behind a flood.
const WAITING_PER_CORE: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too many hashes already wait for a core.
    #[error("too many password checks are waiting")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

#[derive(Clone)]
pub struct Passwords {
    argon2: Arc<Argon2<'static>>,
    /// Verified against when the email is unknown, so both paths cost the same.
    dummy: Arc<String>,
    /// One hash per core at a time: each takes 19 MiB, and a burst spread
    /// over many blocking threads would leave the allocator holding that
    /// much per thread long after (hundreds of MiB); queued hashes lose no
    /// throughput, the work is CPU-bound anyway.
    permits: Arc<tokio::sync::Semaphore>,
    /// Hashes waiting for a permit now, and how many may.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

/// One place in the queue for a permit, given back when dropped (also when
/// the request goes away while it waits).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Passwords {
    pub fn new() -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self::with_limits(cores, cores * WAITING_PER_CORE)
    }

    /// `running` hashes at a time, at most `max_waiting` more queued.
    fn with_limits(running: usize, max_waiting: usize) -> anyhow::Result<Self> {
        let params = Params::new(19_456, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 params: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = argon2
            .hash_password(b"not anybody's password: timing equaliser")
            .map_err(|e| anyhow::anyhow!("argon2 hash: {e}"))?
            .to_string();
        Ok(Self {
            argon2: Arc::new(argon2),
            dummy: Arc::new(dummy),
            permits: Arc::new(tokio::sync::Semaphore::new(running)),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
        })
    }

    async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, PasswordError> {
        // The semaphore is fair: while anyone waits, no permit is free here.
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        let ahead = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _place = Waiting(Arc::clone(&self.waiting));
        if ahead >= self.max_waiting {
            metrics::counter!("requests_turned_away_total", "work" => "password_check").increment(1);
            return Err(PasswordError::Busy);
        }
        Ok(Arc::clone(&self.permits).acquire_owned().await.map_err(|e| anyhow::anyhow!("hashing closed: {e}"))?)
    }

    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, PasswordError> {
        let argon2 = Arc::clone(&self.argon2);
        let plain = password.expose().to_owned();
        let permit = self.permit().await?;
        let phc = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            argon2.hash_password(plain.as_bytes()).map(|h| h.to_string())
        })
        .await
        .map_err(|e| anyhow::anyhow!("hashing task failed: {e}"))?
        .map_err(|e| anyhow::anyhow!("argon2 hash: {e}"))?;
        Ok(PasswordHash::from_phc(phc).map_err(|e| anyhow::anyhow!("{e}"))?)
    }

    /// `Ok(false)` for a wrong password; `Err` only if hashing itself broke.
    pub async fn verify(&self, attempt: &PasswordAttempt, hash: &PasswordHash) -> Result<bool, PasswordError> {
        self.verify_phc(attempt, hash.as_str().to_owned()).await
    }

    /// Spends one verification on the dummy hash; always `false`.
    pub async fn verify_dummy(&self, attempt: &PasswordAttempt) -> Result<bool, PasswordError> {
        self.verify_phc(attempt, self.dummy.as_ref().clone()).await.map(|_| false)
    }

    async fn verify_phc(&self, attempt: &PasswordAttempt, phc: String) -> Result<bool, PasswordError> {
        let argon2 = Arc::clone(&self.argon2);
        let plain = attempt.expose().to_owned();
        let permit = self.permit().await?;
        let verified = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let parsed = PhcHash::new(&phc).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
            anyhow::Ok(argon2.verify_password(plain.as_bytes(), &parsed).is_ok())
        })
        .await
        .map_err(|e| anyhow::anyhow!("verification task failed: {e}"))??;
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_owasp_params() {
        let passwords = Passwords::new().unwrap();
        let hash = passwords.hash(&Password::parse("Sturdy-Otter-42").unwrap()).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{}", hash.as_str());
        assert!(passwords.verify(&PasswordAttempt::parse("Sturdy-Otter-42").unwrap(), &hash).await.unwrap());
        assert!(!passwords.verify(&PasswordAttempt::parse("sturdy-otter-42").unwrap(), &hash).await.unwrap());
        assert!(!passwords.verify_dummy(&PasswordAttempt::parse("anything").unwrap()).await.unwrap());
    }

    #[tokio::test]
    async fn a_hash_past_the_queue_is_turned_away_and_the_others_run() {
        let passwords = Passwords::with_limits(1, 1).unwrap();
        let password = Password::parse("Sturdy-Otter-42").unwrap();
        // Polled in order: the first runs, the second waits, the third finds the queue full.
        let (running, queued, turned_away) =
            tokio::join!(passwords.hash(&password), passwords.hash(&password), passwords.hash(&password));
        assert!(running.is_ok() && queued.is_ok(), "{running:?} {queued:?}");
        assert!(matches!(turned_away, Err(PasswordError::Busy)), "{turned_away:?}");
        // Places are given back: with the queue empty again, a hash runs.
        assert_eq!(passwords.waiting.load(Ordering::Acquire), 0);
        assert!(
            passwords.verify(&PasswordAttempt::parse("Sturdy-Otter-42").unwrap(), &running.unwrap()).await.unwrap()
        );
    }

    #[tokio::test]
    async fn a_request_that_goes_away_while_queued_gives_its_place_back() {
        let passwords = Passwords::with_limits(1, 1).unwrap();
        let password = Password::parse("Sturdy-Otter-42").unwrap();
        let running = passwords.hash(&password);
        let abandoned = passwords.hash(&password);
        tokio::pin!(running, abandoned);
        // Poll each once: the first takes the permit, the second queues; then drop the second.
        assert!(futures::poll!(running.as_mut()).is_pending());
        assert!(futures::poll!(abandoned.as_mut()).is_pending());
        assert_eq!(passwords.waiting.load(Ordering::Acquire), 1);
        abandoned.set(passwords.hash(&password));
        // The replacement was not polled yet; the dropped one's place is free again.
        assert_eq!(passwords.waiting.load(Ordering::Acquire), 0);
        let (first, second) = tokio::join!(running, abandoned);
        assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
    }

    #[test]
    fn common_passwords_are_caught_case_insensitively() {
        assert!(common_passwords().len() > 4_000);
        assert!(is_common(&Password::parse("Password1").unwrap()));
        assert!(is_common(&Password::parse("Qwerty123").unwrap()));
        assert!(!is_common(&Password::parse("Sturdy-Otter-42").unwrap()));
    }
}
