//! Accounts (Argon2id password hashes), sessions with CSRF tokens, and login throttling.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use ping32dlp::workflow::{Store, StoredSession};
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
    /// An admin limited to these departments (the sender's department from the directory):
    /// audit search, records and requests of those departments only, and no company-wide
    /// pages (dashboard, agents, admin log). Empty: the whole company.
    #[serde(default)]
    pub departments: Vec<String>,
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
    /// An admin limited to these departments (from the account; `None`: no limit).
    pub departments: Option<Vec<String>>,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "approver" => Some(Role::Approver),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The key a session is stored under: the SHA-256 of its cookie value, so that whoever reads
/// the store cannot take over sessions.
fn session_key(id: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sessions in the store: every console process on it knows every session, and a restart
/// signs nobody out.
pub struct Sessions {
    store: Arc<dyn Store>,
    idle: Duration,
    max: Duration,
}

impl Sessions {
    /// Sessions that end after `idle` without a request, or `max` after sign-in.
    pub fn new(store: Arc<dyn Store>, idle: Duration, max: Duration) -> Sessions {
        Sessions { store, idle, max }
    }

    /// Starts a session; returns its id (the cookie value).
    pub fn create(
        &self,
        user: &str,
        role: Role,
        groups: Vec<String>,
        scope: Option<String>,
    ) -> Result<String, String> {
        let id = random_token();
        let now = ping32dlp::timeutil::now();
        let s = StoredSession {
            user: user.into(),
            role: role.as_str().into(),
            groups,
            csrf: random_token(),
            scope,
            created: now,
            last: now,
        };
        self.store
            .session_put(&session_key(&id), &s)
            .map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// The live session of a cookie value. A store that cannot be read signs nobody in.
    pub fn get(&self, id: &str) -> Option<Session> {
        let s = self
            .store
            .session_get(
                &session_key(id),
                ping32dlp::timeutil::now(),
                self.idle.as_secs() as i64,
                self.max.as_secs() as i64,
            )
            .ok()??;
        Some(Session {
            user: s.user,
            role: Role::parse(&s.role)?,
            groups: s.groups,
            csrf: s.csrf,
            scope: s.scope,
            departments: None,
        })
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        let _ = self.store.session_delete(&session_key(id));
    }

    /// Backdates a session (tests of the timeouts).
    #[cfg(test)]
    pub fn age(&self, id: &str, secs: i64) {
        let key = session_key(id);
        if let Ok(Some(mut s)) =
            self.store
                .session_get(&key, ping32dlp::timeutil::now(), i64::MAX / 2, i64::MAX / 2)
        {
            s.created -= secs;
            s.last -= secs;
            let _ = self.store.session_put(&key, &s);
        }
    }
}

/// Sign-in attempts per key (an account name, a client address) in a window, counted in the
/// store. An attempt is counted before its password is checked, atomically, so that
/// concurrent attempts cannot all pass the check while none has been counted yet (the review
/// sent 40 wrong passwords at once, then the right one, and got in), and two console processes
/// count together. A good sign-in clears the account's count and gives the address its attempt
/// back.
pub struct Throttle {
    store: Arc<dyn Store>,
    window: Duration,
}

impl Throttle {
    /// Counts attempts over `window`.
    pub fn new(store: Arc<dyn Store>, window: Duration) -> Throttle {
        Throttle { store, window }
    }

    /// Takes an attempt for `key`: `Err(seconds to wait)` when `limit` attempts are counted in
    /// the window already (or the store cannot count: then nobody signs in for a minute).
    pub fn attempt(&self, key: &str, limit: u32) -> Result<(), u64> {
        match self.store.attempt(
            key,
            limit,
            self.window.as_secs().max(1) as i64,
            ping32dlp::timeutil::now(),
        ) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => Err(wait.max(1) as u64),
            Err(_) => Err(60),
        }
    }

    /// Gives one attempt back (it succeeded).
    pub fn refund(&self, key: &str) {
        let _ = self.store.attempt_refund(key);
    }

    /// Forgets a key's attempts (after a good sign-in).
    pub fn clear(&self, key: &str) {
        let _ = self.store.attempts_clear(key);
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
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = ping32dlp::workflow::open_store(dir.path(), None).unwrap();
        let s = Sessions::new(
            store.clone(),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        );
        let id = s.create("a@x", Role::Approver, vec![], None).unwrap();
        assert_eq!(s.get(&id).unwrap().user, "a@x");
        assert!(s.get("nope").is_none());
        // Another process on the same store knows it.
        let other = Sessions::new(
            store.clone(),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        );
        assert_eq!(other.get(&id).unwrap().role, Role::Approver);
        s.remove(&id);
        assert!(s.get(&id).is_none());
        let id = s.create("a@x", Role::Admin, vec![], None).unwrap();
        s.age(&id, 120);
        assert!(s.get(&id).is_none(), "idle for longer than a minute");

        let t = Throttle::new(store.clone(), Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.attempt("k", 3).is_ok());
        }
        assert!(t.attempt("k", 3).unwrap_err() >= 1);
        t.refund("k");
        assert!(t.attempt("k", 3).is_ok());
        t.clear("k");
        assert!(t.attempt("k", 3).is_ok());
        // Counted before any check: of 40 threads at once, exactly `limit` get through.
        let t = Arc::new(Throttle::new(store, Duration::from_secs(60)));
        let passed: usize = (0..40)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || t.attempt("acct", 5).is_ok() as usize)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(passed, 5);
    }
}
