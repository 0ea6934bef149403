//! Accounts (Argon2id password hashes), sessions with CSRF tokens, and login throttling.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Deserialize;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees and decides the requests assigned to them.
    Approver,
    /// Sees and decides every request; audit search, dashboard, histories.
    Admin,
}

/// A local account (`[[account]]` in the configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// Sign-in name; approvers are matched against a request's approvers by it (an address).
    pub name: String,
    /// Argon2 hash in PHC form (`ping32dlp-console hash-password` makes one).
    pub password_hash: String,
    /// `approver` or `admin`.
    pub role: Role,
    /// Approver groups the account is in (a rule's `approver_group`).
    #[serde(default)]
    pub groups: Vec<String>,
}

/// An Argon2id hash (PHC string) of a password with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks that a PHC string is an Argon2 hash we can verify.
pub fn check_hash(phc: &str) -> Result<(), String> {
    let h = PasswordHash::new(phc).map_err(|e| format!("not a PHC password hash: {e}"))?;
    if !h.algorithm.as_str().starts_with("argon2") {
        return Err(format!("`{}` is not an Argon2 hash", h.algorithm));
    }
    Ok(())
}

/// Argon2 takes tens of milliseconds and megabytes per check: one at a time.
static VERIFYING: Mutex<()> = Mutex::new(());

/// A hash that no password matches, checked for unknown names so that they take as long.
const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$6wM0iqW1c7wCa6tFKUo6xQfWxxdbgtkR+p/kp8W3XTo";

/// Verifies a password against an account's hash (or the dummy when there is no account).
pub fn verify(phc: Option<&str>, password: &str) -> bool {
    let _one = VERIFYING.lock().unwrap_or_else(|e| e.into_inner());
    let Ok(h) = PasswordHash::new(phc.unwrap_or(DUMMY)) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &h)
        .is_ok();
    ok && phc.is_some()
}

/// Random hex.
pub fn random_token() -> String {
    ping32dlp::workflow::random_hex(32)
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    /// Account name (or the approver address of a sign-in link).
    pub user: String,
    /// Role.
    pub role: Role,
    /// Approver groups.
    pub groups: Vec<String>,
    /// CSRF token of every form of this session.
    pub csrf: String,
    /// A sign-in link's session sees only this request.
    pub scope: Option<String>,
    created: Instant,
    last: Instant,
}

/// Sessions in memory (a restart signs everybody out).
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
    max: Duration,
}

impl Sessions {
    /// Sessions that end after `idle` without a request, or `max` after sign-in.
    pub fn new(idle: Duration, max: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
            max,
        }
    }

    /// Starts a session; returns its id (the cookie value).
    pub fn create(
        &self,
        user: &str,
        role: Role,
        groups: Vec<String>,
        scope: Option<String>,
    ) -> String {
        let id = random_token();
        let now = Instant::now();
        let s = Session {
            user: user.into(),
            role,
            groups,
            csrf: random_token(),
            scope,
            created: now,
            last: now,
        };
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (idle, max) = (self.idle, self.max);
        m.retain(|_, s| now.duration_since(s.last) < idle && now.duration_since(s.created) < max);
        m.insert(id.clone(), s);
        id
    }

    /// The live session of a cookie value.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let s = m.get_mut(id)?;
        if now.duration_since(s.last) >= self.idle || now.duration_since(s.created) >= self.max {
            m.remove(id);
            return None;
        }
        s.last = now;
        Some(s.clone())
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// Failed sign-ins per key (an account name, a client address) in a sliding window.
pub struct Throttle {
    map: Mutex<HashMap<String, (u32, Instant)>>,
    window: Duration,
}

impl Throttle {
    /// Counts failures over `window`.
    pub fn new(window: Duration) -> Throttle {
        Throttle {
            map: Mutex::new(HashMap::new()),
            window,
        }
    }

    /// Seconds to wait when `key` has `limit` failures in the window already.
    pub fn blocked(&self, key: &str, limit: u32) -> Option<u64> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (n, since) = m.get(key)?;
        let gone = since.elapsed();
        (*n >= limit && gone < self.window).then(|| (self.window - gone).as_secs().max(1))
    }

    /// Counts a failure.
    pub fn fail(&self, key: &str) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.window;
        if m.len() > 100_000 {
            m.retain(|_, (_, t)| t.elapsed() < window);
        }
        let e = m.entry(key.to_string()).or_insert((0, Instant::now()));
        if e.1.elapsed() >= window {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    /// Forgets a key's failures (after a good sign-in).
    pub fn clear(&self, key: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        check_hash(&h).unwrap();
        assert!(check_hash("plaintext").is_err());
        assert!(verify(Some(&h), "correct horse"));
        assert!(!verify(Some(&h), "wrong"));
        assert!(!verify(None, "anything"));
        assert!(!verify(Some("garbage"), "x"));
    }

    #[test]
    fn sessions_end_and_throttle_counts() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(3600));
        let id = s.create("a@x", Role::Approver, vec![], None);
        assert_eq!(s.get(&id).unwrap().user, "a@x");
        assert!(s.get("nope").is_none());
        s.remove(&id);
        assert!(s.get(&id).is_none());
        let short = Sessions::new(Duration::from_millis(1), Duration::from_secs(3600));
        let id = short.create("a@x", Role::Admin, vec![], None);
        std::thread::sleep(Duration::from_millis(5));
        assert!(short.get(&id).is_none());

        let t = Throttle::new(Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.blocked("k", 3).is_none());
            t.fail("k");
        }
        assert!(t.blocked("k", 3).unwrap() >= 1);
        t.clear("k");
        assert!(t.blocked("k", 3).is_none());
    }
}
