//! `ping32dlp-directory`: who the sender is in the company directory (LDAP, Active Directory):
//! groups, department and manager, looked up at inspection by the milter and the proxy, cached
//! for `cache_seconds`, so that policies can say `sender_department = ["営業部"]`,
//! `recipient_group = "役員"` and `approvers = ["manager"]`.
//!
//! ```toml
//! [directory]
//! url = "ldaps://ad.example.co.jp"            # or ldap://...:389 with starttls = true
//! bind_dn = "CN=dlp,OU=Service,DC=example,DC=co,DC=jp"
//! password_file = "/etc/ping32dlp/ldap.secret"
//! base = "DC=example,DC=co,DC=jp"
//! department_attribute = "department"         # OpenLDAP: "departmentNumber" (default) or "ou"
//! nested_groups = true                         # Active Directory only (LDAP_MATCHING_RULE_IN_CHAIN)
//! fail_mode = "continue"                       # or "tempfail"
//! ```
//!
//! Over LDAP the client is `ldap3` (rustls); nothing here parses the protocol.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{ldap_escape, LdapConn, LdapConnSettings, Scope, SearchEntry};
use ping32dlp::policy::{Context, Policy};
use serde::Deserialize;

/// What a daemon does with a mail when the directory cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Judge it without the directory's facts (directory conditions do not hold, `manager`
    /// approvers fall back to the policy's default approvers); logged. The default.
    #[default]
    Continue,
    /// Refuse it for now (SMTP 451): the client or MTA tries again later.
    Tempfail,
}

/// The `[directory]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryCfg {
    /// `ldap://host:389` or `ldaps://host:636` (`""`: no directory, the default).
    pub url: String,
    /// STARTTLS on an `ldap://` URL.
    pub starttls: bool,
    /// CA certificates (PEM) for the server's certificate; default: the system trust store.
    pub ca_file: Option<PathBuf>,
    /// The account the lookups bind as (empty: anonymous).
    pub bind_dn: String,
    /// A file holding its password (mode 0600).
    pub password_file: Option<PathBuf>,
    /// Where people and groups are.
    pub base: String,
    /// How a person is found; `{mail}` is the address (escaped).
    pub user_filter: String,
    /// The department attribute: `departmentNumber` (OpenLDAP inetOrgPerson, the default),
    /// `department` (Active Directory) or `ou`.
    pub department_attribute: String,
    /// The groups attribute on a person (`memberOf`: Active Directory, OpenLDAP's memberof
    /// overlay).
    pub group_attribute: String,
    /// The manager attribute (a DN).
    pub manager_attribute: String,
    /// Nested groups through Active Directory's `LDAP_MATCHING_RULE_IN_CHAIN` (a group in a
    /// group counts); Active Directory only.
    pub nested_groups: bool,
    /// Seconds an answer (also "no such person") is kept.
    pub cache_seconds: u64,
    /// Seconds to wait for the server.
    pub timeout_seconds: u64,
    /// `continue` (the default) or `tempfail`.
    pub fail_mode: FailMode,
    /// Internal recipients looked up per mail for `recipient_group` (the rest are not).
    pub max_recipient_lookups: usize,
}

impl Default for DirectoryCfg {
    fn default() -> DirectoryCfg {
        DirectoryCfg {
            url: String::new(),
            starttls: false,
            ca_file: None,
            bind_dn: String::new(),
            password_file: None,
            base: String::new(),
            user_filter: "(mail={mail})".into(),
            department_attribute: "departmentNumber".into(),
            group_attribute: "memberOf".into(),
            manager_attribute: "manager".into(),
            nested_groups: false,
            cache_seconds: 600,
            timeout_seconds: 3,
            fail_mode: FailMode::Continue,
            max_recipient_lookups: 20,
        }
    }
}

impl DirectoryCfg {
    /// Paths relative to the configuration file's directory.
    pub fn resolve(&mut self, base: &Path) {
        for p in self.ca_file.iter_mut().chain(self.password_file.iter_mut()) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// Whether passwords sent to this directory cross the network in the clear: `ldap://`
    /// without `starttls` to a host that is not loopback.
    pub fn cleartext(&self) -> bool {
        let host = self
            .url
            .split("://")
            .nth(1)
            .unwrap_or("")
            .split(['/', ':'])
            .next()
            .unwrap_or("");
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback());
        self.url.starts_with("ldap://") && !self.starttls && !loopback
    }

    /// Checks what serde cannot; errors name the field.
    pub fn check(&self) -> Result<(), String> {
        if self.url.is_empty() {
            return Ok(());
        }
        if !self.url.starts_with("ldap://") && !self.url.starts_with("ldaps://") {
            return Err(format!(
                "directory.url = \"{}\": use ldap://host:389 or ldaps://host:636",
                self.url
            ));
        }
        if self.base.is_empty() {
            return Err("directory.base: where to search (DC=example,DC=co,DC=jp)".into());
        }
        if !self.user_filter.contains("{mail}") {
            return Err(format!(
                "directory.user_filter = \"{}\": must contain {{mail}}",
                self.user_filter
            ));
        }
        if self.cleartext() && self.password_file.is_some() {
            return Err(format!(
                "directory.url = \"{}\": the bind password would cross the network in the clear; use ldaps:// or starttls = true",
                self.url
            ));
        }
        Ok(())
    }
}

/// A person in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    /// Distinguished name.
    pub dn: String,
    /// Department.
    pub department: Option<String>,
    /// Group names (the first RDN value of each group DN: `cn=sales,ou=groups,...` is `sales`).
    pub groups: Vec<String>,
    /// The manager's address.
    pub manager: Option<String>,
}

/// The directory client: one connection (made again after an error), a cache of answers.
pub struct Directory {
    cfg: DirectoryCfg,
    password: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Mutex<Option<LdapConn>>,
    cache: Mutex<HashMap<String, (Instant, Option<Person>)>>,
}

/// Answers kept at most (the cache starts again when full).
const MAX_CACHED: usize = 50_000;

impl Directory {
    /// A client for these settings (`None` when no directory is configured). Nothing is
    /// connected yet.
    pub fn new(cfg: &DirectoryCfg) -> Result<Option<Directory>, String> {
        if cfg.url.is_empty() {
            return Ok(None);
        }
        cfg.check()?;
        let password = match &cfg.password_file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("directory.password_file {}: {e}", p.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            None => String::new(),
        };
        let tls = if cfg.url.starts_with("ldaps://") || cfg.starttls {
            Some(ping32dlp::net::client_config(
                cfg.ca_file.as_deref(),
                "directory.ca_file",
            )?)
        } else {
            None
        };
        Ok(Some(Directory {
            cfg: cfg.clone(),
            password,
            tls,
            conn: Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// The settings.
    pub fn config(&self) -> &DirectoryCfg {
        &self.cfg
    }

    fn connect(&self) -> Result<LdapConn, String> {
        let mut s = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(self.cfg.timeout_seconds.max(1)))
            .set_starttls(self.cfg.starttls);
        if let Some(t) = &self.tls {
            s = s.set_config(t.clone());
        }
        let mut c = LdapConn::with_settings(s, &self.cfg.url)
            .map_err(|e| format!("directory {}: {e}", self.cfg.url))?;
        if !self.cfg.bind_dn.is_empty() {
            c.with_timeout(self.timeout())
                .simple_bind(&self.cfg.bind_dn, &self.password)
                .and_then(|r| r.success())
                .map_err(|e| format!("directory bind as {}: {e}", self.cfg.bind_dn))?;
        }
        Ok(c)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.cfg.timeout_seconds.max(1))
    }

    /// Runs `f` on the connection, connecting (once more after a failure) as needed.
    fn with_conn<T>(&self, f: impl Fn(&mut LdapConn) -> Result<T, String>) -> Result<T, String> {
        let mut g = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        for attempt in 0..2 {
            if g.is_none() {
                *g = Some(self.connect()?);
            }
            match f(g.as_mut().expect("connected above")) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    *g = None;
                    if attempt == 1 {
                        return Err(e);
                    }
                }
            }
        }
        unreachable!("two attempts")
    }

    /// The person with this address (cached, "not found" too).
    pub fn lookup(&self, mail: &str) -> Result<Option<Person>, String> {
        let key = mail.trim().to_lowercase();
        if key.is_empty() {
            return Ok(None);
        }
        {
            let c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, p)) = c.get(&key) {
                if at.elapsed() < Duration::from_secs(self.cfg.cache_seconds) {
                    return Ok(p.clone());
                }
            }
        }
        let person = self.with_conn(|c| self.find(c, &key))?;
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if c.len() >= MAX_CACHED {
            c.clear();
        }
        c.insert(key, (Instant::now(), person.clone()));
        Ok(person)
    }

    fn find(&self, c: &mut LdapConn, mail: &str) -> Result<Option<Person>, String> {
        let cfg = &self.cfg;
        let filter = cfg.user_filter.replace("{mail}", &ldap_escape(mail));
        let attrs = [
            cfg.department_attribute.as_str(),
            cfg.group_attribute.as_str(),
            cfg.manager_attribute.as_str(),
        ];
        let (entries, _) = c
            .with_timeout(self.timeout())
            .search(&cfg.base, Scope::Subtree, &filter, attrs.to_vec())
            .and_then(|r| r.success())
            .map_err(|e| format!("directory search {filter}: {e}"))?;
        let Some(e) = entries.into_iter().next() else {
            return Ok(None);
        };
        let e = SearchEntry::construct(e);
        let first = |a: &str| {
            e.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(a))
                .and_then(|(_, v)| v.first().cloned())
        };
        let mut groups: Vec<String> = e
            .attrs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(&cfg.group_attribute))
            .flat_map(|(_, v)| v.iter().map(|dn| rdn_value(dn)))
            .collect();
        if cfg.nested_groups {
            let f = format!(
                "(member:1.2.840.113556.1.4.1941:={})",
                ldap_escape(e.dn.as_str())
            );
            let (g, _) = c
                .with_timeout(self.timeout())
                .search(&cfg.base, Scope::Subtree, &f, vec!["cn"])
                .and_then(|r| r.success())
                .map_err(|e| format!("directory nested groups: {e}"))?;
            groups.extend(
                g.into_iter()
                    .map(|x| rdn_value(&SearchEntry::construct(x).dn)),
            );
        }
        groups.sort();
        groups.dedup();
        let manager = match first(&cfg.manager_attribute) {
            Some(dn) => {
                let (m, _) = c
                    .with_timeout(self.timeout())
                    .search(&dn, Scope::Base, "(objectClass=*)", vec!["mail"])
                    .and_then(|r| r.success())
                    .map_err(|e| format!("directory manager {dn}: {e}"))?;
                m.into_iter().next().and_then(|x| {
                    let x = SearchEntry::construct(x);
                    x.attrs
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("mail"))
                        .and_then(|(_, v)| v.first().map(|s| s.to_lowercase()))
                })
            }
            None => None,
        };
        Ok(Some(Person {
            dn: e.dn.clone(),
            department: first(&cfg.department_attribute),
            groups,
            manager,
        }))
    }

    /// Signs a person in with their directory password (console sign-in): finds the entry
    /// by `mail` with the service account (not from the cache, so that a removed group or
    /// account counts at once), then binds as that entry with `password` on a connection of
    /// its own. `Ok(None)`: no such person, or the password is wrong (an empty password is
    /// refused before anything is sent: LDAP takes it as an anonymous bind that "succeeds").
    /// `Err`: the directory cannot be asked.
    pub fn authenticate(&self, mail: &str, password: &str) -> Result<Option<Person>, String> {
        let key = mail.trim().to_lowercase();
        if key.is_empty() || password.is_empty() || password.len() > 1024 {
            return Ok(None);
        }
        let Some(person) = self.with_conn(|c| self.find(c, &key))? else {
            return Ok(None);
        };
        let mut s = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_starttls(self.cfg.starttls);
        if let Some(t) = &self.tls {
            s = s.set_config(t.clone());
        }
        let mut c = LdapConn::with_settings(s, &self.cfg.url)
            .map_err(|e| format!("directory {}: {e}", self.cfg.url))?;
        let r = c
            .with_timeout(self.timeout())
            .simple_bind(&person.dn, password)
            .map_err(|e| format!("directory bind as {}: {e}", person.dn))?;
        let _ = c.unbind();
        match r.rc {
            0 => Ok(Some(person)),
            // invalidCredentials; also a locked or disabled account in Active Directory.
            49 => Ok(None),
            rc => Err(format!(
                "directory bind as {}: result {rc} {}",
                person.dn, r.text
            )),
        }
    }

    /// Adds what the directory knows to a mail's context: the sender's groups, department
    /// and manager, and the groups of up to `max_recipient_lookups` recipients the policy
    /// calls internal. An error is the directory's failure; whether the mail waits for it is
    /// [`Directory::tempfail`].
    pub fn enrich(&self, ctx: &mut Context, policy: &Policy) -> Result<(), String> {
        let sender = ctx
            .envelope_from
            .as_deref()
            .map(ping32dlp::policy::envelope_address)
            .unwrap_or_default();
        self.fill(ctx, &|r| policy.is_internal(r, &sender))
    }

    /// `fail_mode = "tempfail"`: a mail the directory could not answer for is refused for now.
    pub fn tempfail(&self) -> bool {
        self.cfg.fail_mode == FailMode::Tempfail
    }

    /// [`Directory::enrich`] with the test for internal recipients given.
    fn fill(&self, ctx: &mut Context, internal: &dyn Fn(&str) -> bool) -> Result<(), String> {
        if let Some(from) = ctx.envelope_from.clone() {
            if let Some(p) = self.lookup(&ping32dlp::policy::envelope_address(&from))? {
                for g in p.groups {
                    if !ctx.groups.contains(&g) {
                        ctx.groups.push(g);
                    }
                }
                ctx.department = p.department;
                ctx.manager = p.manager;
            }
        }
        let rcpts: Vec<String> = ctx
            .envelope_to
            .iter()
            .map(|r| ping32dlp::policy::envelope_address(r))
            .filter(|r| internal(r))
            .take(self.cfg.max_recipient_lookups)
            .collect();
        for r in rcpts {
            if let Some(p) = self.lookup(&r)? {
                if !p.groups.is_empty() {
                    ctx.recipient_groups.push((r, p.groups));
                }
            }
        }
        Ok(())
    }
}

/// The value of a DN's first RDN (`cn=営業部,ou=groups,dc=...` → `営業部`), with `\,`-style
/// escapes removed.
pub fn rdn_value(dn: &str) -> String {
    let mut out = String::new();
    let mut chars = dn.chars();
    let mut in_value = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if in_value {
                        out.push(n);
                    }
                }
            }
            '=' if !in_value => in_value = true,
            ',' | '+' if in_value => break,
            _ if in_value => out.push(c),
            _ => {}
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let mut c = DirectoryCfg {
            url: "ldap://ad.example.co.jp".into(),
            base: "dc=example".into(),
            password_file: Some("x".into()),
            ..DirectoryCfg::default()
        };
        assert!(c.check().unwrap_err().contains("in the clear"));
        c.starttls = true;
        c.check().unwrap();
        c.url = "ldap://127.0.0.1:3389".into();
        c.starttls = false;
        c.check().unwrap();
        c.url = "http://x".into();
        assert!(c.check().unwrap_err().contains("directory.url"));
        c.url = "ldaps://x".into();
        c.user_filter = "(uid=x)".into();
        assert!(c.check().unwrap_err().contains("{mail}"));
        c.user_filter = "(mail={mail})".into();
        c.base.clear();
        assert!(c.check().unwrap_err().contains("directory.base"));
        assert!(Directory::new(&DirectoryCfg::default()).unwrap().is_none());
    }

    #[test]
    fn group_names_are_the_first_rdn_value() {
        assert_eq!(rdn_value("cn=sales,ou=groups,dc=example"), "sales");
        assert_eq!(rdn_value("CN=営業部,OU=Groups,DC=example"), "営業部");
        assert_eq!(rdn_value("cn=R\\, D,ou=x"), "R, D");
        assert_eq!(rdn_value(""), "");
    }
}
