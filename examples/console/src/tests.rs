//! HTTP-level tests: a real console on a loopback port over a real state directory, every route
//! for every role, forbidden ones, CSRF failures, throttling, link sign-in, and what is
//! recorded.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ping32dlp::pipeline::Pipeline;
use ping32dlp::policy::Context;
use ping32dlp::service::PipelineSettings;
use ping32dlp::workflow::{Approval, ApprovalState};

use crate::app::{App, Settings};
use crate::auth::{self, Account, Role};
use crate::i18n::Lang;

const BOSS: (&str, &str) = ("boss@example.co.jp", "boss-password-1");
const OTHER: (&str, &str) = ("other@example.co.jp", "other-password-1");
const LEGAL: (&str, &str) = ("legal@example.co.jp", "legal-password-1");
const ADMIN: (&str, &str) = ("admin", "admin-password-1");
/// An admin limited to 営業部.
const SALES_ADMIN: (&str, &str) = ("eigyo-admin", "eigyo-password-1");

fn policy(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"
[policy]
internal_domains = ["example.co.jp"]

[approval]
release_command = "echo released {{queue_id}} >> {d}/commands.log"
discard_command = "echo discarded {{queue_id}} >> {d}/commands.log"
notify_command = "cat >> {d}/mail.log"
console_url = "http://console.test/"

[[rule]]
id = "hold-ids"
action = "hold"
approvers = ["boss@example.co.jp"]
expires = "1h"
when = {{ all = [{{ recipients = "any_external" }}, {{ detector = ["jp_my_number"] }}] }}

[[rule]]
id = "hold-cards"
action = "hold"
approver_group = "legal"
expires = "1h"
when = {{ all = [{{ recipients = "any_external" }}, {{ detector = ["credit_card"] }}] }}
"#
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    addr: SocketAddr,
    app: Arc<App>,
    /// The request held for boss (My Numbers, an xlsx).
    ids: Approval,
    /// The request held for the legal group (a card number).
    cards: Approval,
    /// Raw values found in the held mail (never to be shown).
    raw_values: Vec<String>,
    /// The attachment's bytes.
    xlsx: Vec<u8>,
}

fn corpus(name: &str) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/policy");
    std::fs::read(root.join(name)).unwrap()
}

fn ctx(queue_id: &str) -> Context {
    Context {
        channel: "milter".into(),
        user: Some("ichiro".into()),
        queue_id: Some(queue_id.into()),
        ..Context::default()
    }
}

fn account(who: (&str, &str), role: Role, groups: &[&str]) -> Account {
    Account {
        name: who.0.into(),
        password_hash: auth::hash_password(who.1).unwrap(),
        role,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        departments: Vec::new(),
    }
}

fn fixture_with(settings: impl FnOnce(&mut Settings)) -> Fixture {
    fixture_full(settings, None)
}

fn fixture_full(
    settings: impl FnOnce(&mut Settings),
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let pol = dir.join("policy.toml");
    std::fs::write(&pol, policy(&dir)).unwrap();
    let open = || -> Pipeline {
        PipelineSettings {
            policy: Some(pol.clone()),
            state_dir: Some(dir.join("state")),
            ..PipelineSettings::default()
        }
        .open(|_| {})
        .unwrap()
    };
    // The integration's pipeline holds the mail; the console opens its own over the same state.
    let mta = open();
    let d = mta
        .process_message(
            &corpus("mixed.eml"),
            &Context {
                department: Some("営業部".into()),
                ..ctx("Q1A2B3")
            },
            &[],
            false,
        )
        .unwrap();
    let ids = d.approval.clone().expect("held");
    // The values (not keywords such as 社外秘, which are words anyone may see).
    let raw_values: Vec<String> = d
        .report
        .findings
        .iter()
        .filter(|f| f.value.chars().filter(char::is_ascii_digit).count() >= 8)
        .map(|f| f.value.to_string())
        .collect();
    assert!(raw_values.len() >= 3, "{raw_values:?}");
    let xlsx = d.report.kept.first().expect("attachment kept").1.clone();
    let cards = mta
        .process_message(
            b"From: ichiro@example.co.jp\r\nTo: shop@partner.example.com\r\nSubject: card\r\n\r\n\
              \xe3\x82\xab\xe3\x83\xbc\xe3\x83\x89\xe7\x95\xaa\xe5\x8f\xb7 4742 1809 6792 9089\r\n",
            &Context {
                department: Some("経理部".into()),
                ..ctx("Q9C8D7")
            },
            &[],
            false,
        )
        .unwrap()
        .approval
        .expect("card mail held");
    let mut s = Settings {
        default_lang: Lang::En,
        secure_cookies: false,
        login_attempts: 3,
        login_window: Duration::from_secs(600),
        session_idle: Duration::from_secs(600),
        session_max: Duration::from_secs(3600),
        agent_api: true,
        public_url: "http://127.0.0.1:8025".into(),
    };
    settings(&mut s);
    let accounts = vec![
        account(BOSS, Role::Approver, &[]),
        account(OTHER, Role::Approver, &[]),
        account(LEGAL, Role::Approver, &["legal"]),
        account(ADMIN, Role::Admin, &[]),
        Account {
            departments: vec!["営業部".into()],
            ..account(SALES_ADMIN, Role::Admin, &[])
        },
    ];
    let app = Arc::new(App::new(open(), accounts, s));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = app.clone();
    let h2 = app.metrics().clone();
    let tls = tls.clone();
    std::thread::spawn(move || {
        crate::http::serve(
            listener,
            crate::http::Limits::default(),
            tls,
            Arc::new(move |r| h.handle(r)),
            Some(h2),
        )
    });
    Fixture {
        _dir: tmp,
        dir,
        addr,
        app,
        ids,
        cards,
        raw_values,
        xlsx,
    }
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

/// A response as the tests see it.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The value of a hidden `csrf` field on the page.
    fn csrf(&self) -> String {
        let t = self.text();
        let i = t
            .find(r#"name="csrf" value=""#)
            .expect("a form with a CSRF field");
        let rest = &t[i + 19..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Got {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // One request per connection here: the server keeps connections alive otherwise.
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Got {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn enc(s: &str) -> String {
    ping32dlp::text::percent_encode(s)
}

/// A browser: keeps cookies.
struct Browser {
    addr: SocketAddr,
    cookies: Vec<(String, String)>,
    lang: &'static str,
}

impl Browser {
    fn new(f: &Fixture) -> Browser {
        Browser {
            addr: f.addr,
            cookies: Vec::new(),
            lang: "en",
        }
    }
    fn go(&mut self, method: &str, path: &str, body: &str, extra: &[(&str, &str)]) -> Got {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut h: Vec<(&str, &str)> = vec![("Accept-Language", self.lang)];
        if !cookie.is_empty() {
            h.push(("Cookie", &cookie));
        }
        h.extend_from_slice(extra);
        let g = send(self.addr, method, path, &h, body);
        for c in g.cookies() {
            let (kv, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() && !c.contains("Max-Age=0") {
                self.cookies.push((k.into(), v.into()));
            }
        }
        g
    }
    fn get(&mut self, path: &str) -> Got {
        self.go("GET", path, "", &[])
    }
    fn post(&mut self, path: &str, body: &str) -> Got {
        self.go("POST", path, body, &[])
    }
    fn sign_in(&mut self, who: (&str, &str)) -> Got {
        let page = self.get("/login");
        assert_eq!(page.status, 200);
        let g = self.post(
            "/login",
            &format!(
                "csrf={}&user={}&password={}",
                page.csrf(),
                enc(who.0),
                enc(who.1)
            ),
        );
        assert_eq!(g.status, 303, "{}", g.text());
        g
    }
    fn signed_in(f: &Fixture, who: (&str, &str)) -> Browser {
        let mut b = Browser::new(f);
        b.sign_in(who);
        b
    }
}

fn events(f: &Fixture, id: &str) -> Vec<(String, String, String)> {
    f.app
        .pipeline()
        .workflow()
        .store()
        .events(id)
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.kind, e.detail))
        .collect()
}

fn state(f: &Fixture, id: &str) -> ApprovalState {
    f.app
        .pipeline()
        .workflow()
        .store()
        .approval(id)
        .unwrap()
        .unwrap()
        .state
}

#[test]
fn anonymous_visitors_are_sent_to_sign_in_and_refused_on_posts() {
    let f = fixture();
    let id = &f.ids.id;
    for path in [
        "/".to_string(),
        "/requests".into(),
        format!("/requests/{id}"),
        format!("/requests/{id}/attachments/0"),
        format!("/requests/{id}/attachments/0/download"),
        format!("/requests/{id}/message"),
        "/audit?sender=x".into(),
        "/audit/1".into(),
        "/dashboard".into(),
    ] {
        let g = send(f.addr, "GET", &path, &[], "");
        assert_eq!(g.status, 303, "{path}");
        let loc = g.header("Location").unwrap();
        assert!(loc.starts_with("/login?next="), "{path}: {loc}");
    }
    assert_eq!(
        send(f.addr, "GET", "/audit?sender=x", &[], "")
            .header("Location")
            .unwrap(),
        "/login?next=%2Faudit%3Fsender%3Dx"
    );
    for path in [format!("/requests/{id}/decide"), "/logout".into()] {
        let g = send(f.addr, "POST", &path, &[], "decision=approve");
        assert!(matches!(g.status, 403 | 303), "{path}: {}", g.status);
    }
    assert_eq!(state(&f, id), ApprovalState::Pending);
    let g = send(f.addr, "GET", "/login", &[], "");
    assert_eq!(g.status, 200);
    let pre = g.cookies().join("\n");
    assert!(
        pre.contains("p32_pre=") && pre.contains("HttpOnly") && pre.contains("SameSite=Strict")
    );
    assert!(!pre.contains("Secure"));
    assert!(g
        .header("Content-Security-Policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(send(f.addr, "GET", "/style.css", &[], "").status, 200);
    assert_eq!(send(f.addr, "GET", "/healthz", &[], "").status, 200);
    assert_eq!(send(f.addr, "GET", "/nothing-here", &[], "").status, 404);
    assert_eq!(send(f.addr, "DELETE", "/requests", &[], "").status, 405);
    assert_eq!(send(f.addr, "POST", "/dashboard", &[], "").status, 405);
    assert_eq!(send(f.addr, "HEAD", "/healthz", &[], "").body.len(), 0);
}

#[test]
fn sign_in_checks_csrf_and_password_and_throttles() {
    let f = fixture();
    let mut b = Browser::new(&f);
    let page = b.get("/login");
    let csrf = page.csrf();
    let body = |c: &str, pw: &str| format!("csrf={c}&user={}&password={}", enc(BOSS.0), enc(pw));
    // No token, a wrong token, a token without its cookie.
    assert_eq!(b.post("/login", "user=x&password=y").status, 403);
    assert_eq!(b.post("/login", &body("0000", BOSS.1)).status, 403);
    assert_eq!(
        send(f.addr, "POST", "/login", &[], &body(&csrf, BOSS.1)).status,
        403
    );
    // From another site, even with the right token.
    assert_eq!(
        b.go(
            "POST",
            "/login",
            &body(&csrf, BOSS.1),
            &[("Sec-Fetch-Site", "cross-site")]
        )
        .status,
        403
    );
    // Wrong passwords, then the pause (the right password is refused too, with Retry-After).
    for _ in 0..3 {
        let g = b.post("/login", &body(&csrf, "wrong"));
        assert_eq!(g.status, 403);
        assert!(g.text().contains("The account or the password is wrong."));
    }
    let g = b.post("/login", &body(&csrf, BOSS.1));
    assert_eq!(g.status, 429);
    assert!(g.header("Retry-After").unwrap().parse::<u64>().unwrap() > 0);
    // Unknown accounts fail the same way.
    let g = b.post(
        "/login",
        &format!("csrf={csrf}&user=nobody&password=whatever"),
    );
    assert_eq!(g.status, 403);
    // Another account still signs in; its cookie is HttpOnly and SameSite=Strict.
    let g = b.post(
        "/login",
        &format!(
            "csrf={csrf}&user={}&password={}&next=%2Faudit",
            enc(ADMIN.0),
            enc(ADMIN.1)
        ),
    );
    assert_eq!(g.status, 303);
    assert_eq!(g.header("Location"), Some("/audit"));
    let c = g.cookies().join("\n");
    assert!(c.contains("p32_session=") && c.contains("HttpOnly") && c.contains("SameSite=Strict"));
    // Only local paths are followed after sign-in.
    let mut b2 = Browser::new(&f);
    let p2 = b2.get("/login");
    let g = b2.post(
        "/login",
        &format!(
            "csrf={}&user={}&password={}&next=%2F%2Fevil.example",
            p2.csrf(),
            enc(OTHER.0),
            enc(OTHER.1)
        ),
    );
    assert_eq!(g.header("Location"), Some("/"));
    // Sign-out needs the session's token, and ends the session.
    assert_eq!(b2.post("/logout", "csrf=bad").status, 403);
    let home = b2.get("/requests");
    assert_eq!(home.status, 200);
    assert_eq!(
        b2.post("/logout", &format!("csrf={}", home.csrf())).status,
        303
    );
    assert_eq!(b2.get("/requests").status, 303);
}

#[test]
fn secure_cookies_behind_tls() {
    let f = fixture_with(|s| s.secure_cookies = true);
    let mut b = Browser::new(&f);
    let g = b.sign_in(ADMIN);
    assert!(
        g.cookies().iter().all(|c| c.contains("; Secure")),
        "{:?}",
        g.cookies()
    );
}

#[test]
fn approvers_see_only_their_requests_and_no_admin_pages() {
    let f = fixture();
    let mut boss = Browser::signed_in(&f, BOSS);
    let list = boss.get("/requests");
    assert_eq!(list.status, 200);
    let t = list.text();
    assert!(t.contains(&f.ids.id) && !t.contains(&f.cards.id), "{t}");
    assert!(t.contains("external"));
    for path in ["/dashboard", "/audit", "/audit?sender=x", "/audit/1"] {
        assert_eq!(boss.get(path).status, 403, "{path}");
    }
    assert_eq!(boss.get(&format!("/requests/{}", f.cards.id)).status, 403);
    assert_eq!(
        boss.get(&format!("/requests/{}/attachments/0", f.cards.id))
            .status,
        403
    );
    let mut other = Browser::signed_in(&f, OTHER);
    let t = other.get("/requests?status=all").text();
    assert!(!t.contains(&f.ids.id) && !t.contains(&f.cards.id));
    assert_eq!(other.get(&format!("/requests/{}", f.ids.id)).status, 403);
    assert_eq!(
        other
            .get(&format!("/requests/{}/attachments/0/download", f.ids.id))
            .status,
        403
    );
    assert_eq!(
        other.get(&format!("/requests/{}/message", f.ids.id)).status,
        403
    );
    let c = other.get("/requests").csrf();
    let decide = format!("/requests/{}/decide", f.cards.id);
    assert_eq!(
        other
            .post(&decide, &format!("csrf={c}&decision=approve"))
            .status,
        403
    );
    // The legal group's member sees the card request.
    let mut legal = Browser::signed_in(&f, LEGAL);
    let t = legal.get("/requests").text();
    assert!(t.contains(&f.cards.id) && !t.contains(&f.ids.id));
    // Admins see both and the admin pages.
    let mut admin = Browser::signed_in(&f, ADMIN);
    let t = admin.get("/requests?status=all").text();
    assert!(t.contains(&f.cards.id) && t.contains(&f.ids.id));
    assert_eq!(admin.get("/").header("Location"), Some("/dashboard"));
    assert_eq!(
        admin
            .get(&format!("/requests/{}/attachments/0", f.ids.id))
            .status,
        200
    );
    assert!(events(&f, &f.ids.id)
        .iter()
        .any(|(w, k, _)| w == ADMIN.0 && k == "view_attachment"));
    assert_eq!(boss.get("/").header("Location"), Some("/requests"));
    assert_eq!(admin.get("/requests/nope").status, 404);
}

#[test]
fn request_page_shows_why_masked_and_records_the_view() {
    let f = fixture();
    let mut boss = Browser::signed_in(&f, BOSS);
    let g = boss.get(&format!("/requests/{}", f.ids.id));
    assert_eq!(g.status, 200);
    let t = g.text();
    for want in [
        "ichiro@example.co.jp",
        r#"<span class="ext">a@partner.example.com</span>"#,
        r#"<span class="int">hanako@example.co.jp</span>"#,
        "hold-ids",
        "顧客一覧.xlsx",
        &f.ids.subject,
        "Approve and send",
        "My Number",
        "/attachments/0",
    ] {
        assert!(t.contains(want), "missing {want}");
    }
    for v in &f.raw_values {
        assert!(!t.contains(v.as_str()), "raw value {v} on the page");
    }
    assert!(events(&f, &f.ids.id)
        .iter()
        .any(|(who, kind, _)| who == BOSS.0 && kind == "view"));
    // Japanese from the browser's language.
    boss.lang = "ja,en;q=0.8";
    let t = boss.get(&format!("/requests/{}", f.ids.id)).text();
    assert!(t.contains("承認して送信") && t.contains("社外") && t.contains("lang=\"ja\""));
}

#[test]
fn attachment_views_and_downloads_are_recorded_and_masked() {
    let f = fixture();
    let mut boss = Browser::signed_in(&f, BOSS);
    let base = format!("/requests/{}/attachments/0", f.ids.id);
    let g = boss.get(&base);
    assert_eq!(g.status, 200, "{}", g.text());
    let t = g.text();
    assert!(t.contains("顧客一覧.xlsx") && t.contains("masked"), "{t}");
    for v in &f.raw_values {
        assert!(!t.contains(v.as_str()), "raw value {v} in the view");
    }
    let g = boss.get(&format!("{base}/download"));
    assert_eq!(g.status, 200);
    assert_eq!(g.header("Content-Type"), Some("application/octet-stream"));
    let cd = g.header("Content-Disposition").unwrap();
    assert!(
        cd.starts_with("attachment;") && cd.contains("filename*=UTF-8''%E9%A1%A7"),
        "{cd}"
    );
    assert_eq!(g.body, f.xlsx);
    let ev = events(&f, &f.ids.id);
    assert!(ev
        .iter()
        .any(|(w, k, d)| w == BOSS.0 && k == "view_attachment" && d == "顧客一覧.xlsx"));
    assert!(ev
        .iter()
        .any(|(w, k, d)| w == BOSS.0 && k == "download" && d == "顧客一覧.xlsx"));
    assert_eq!(
        boss.get(&format!("/requests/{}/attachments/7", f.ids.id))
            .status,
        404
    );
    assert_eq!(
        boss.get(&format!("/requests/{}/attachments/x", f.ids.id))
            .status,
        404
    );
    // The milter's mail is in the MTA's queue, not here.
    assert_eq!(
        boss.get(&format!("/requests/{}/message", f.ids.id)).status,
        404
    );
}

#[test]
fn decisions_need_csrf_and_assignment_and_release_once() {
    let f = fixture();
    let id = &f.ids.id;
    let mut other = Browser::signed_in(&f, OTHER);
    let token = other.get("/requests").csrf();
    assert_eq!(
        other
            .post(
                &format!("/requests/{id}/decide"),
                &format!("csrf={token}&decision=approve")
            )
            .status,
        403
    );
    let mut boss = Browser::signed_in(&f, BOSS);
    let page = boss.get(&format!("/requests/{id}"));
    let csrf = page.csrf();
    let path = format!("/requests/{id}/decide");
    assert_eq!(boss.post(&path, "decision=approve").status, 403);
    assert_eq!(
        boss.post(&path, &format!("csrf={token}&decision=approve"))
            .status,
        403
    );
    assert_eq!(
        boss.go(
            "POST",
            &path,
            &format!("csrf={csrf}&decision=approve"),
            &[("Sec-Fetch-Site", "cross-site")]
        )
        .status,
        403
    );
    assert_eq!(
        boss.post(&path, &format!("csrf={csrf}&decision=maybe"))
            .status,
        400
    );
    assert_eq!(state(&f, id), ApprovalState::Pending);
    let g = boss.post(
        &path,
        &format!(
            "csrf={csrf}&decision=approve&comment={}",
            enc("契約確認済み")
        ),
    );
    assert_eq!(g.status, 303);
    assert_eq!(
        g.header("Location").unwrap(),
        format!("/requests/{id}?done=approved")
    );
    assert_eq!(state(&f, id), ApprovalState::Released);
    let log = std::fs::read_to_string(f.dir.join("commands.log")).unwrap();
    assert!(log.contains("released Q1A2B3"), "{log}");
    let ev = events(&f, id);
    assert!(ev
        .iter()
        .any(|(w, k, d)| w == BOSS.0 && k == "approve" && d == "契約確認済み"));
    assert!(ev.iter().any(|(_, k, _)| k == "release"));
    let t = boss.get(&format!("/requests/{id}?done=approved")).text();
    assert!(t.contains("Approved. The mail is released") && !t.contains("Approve and send"));
    assert_eq!(
        boss.post(&path, &format!("csrf={csrf}&decision=reject"))
            .status,
        409
    );
    // The group's member rejects the card mail: discarded, the sender told.
    let mut legal = Browser::signed_in(&f, LEGAL);
    let p = format!("/requests/{}", f.cards.id);
    let c = legal.get(&p).csrf();
    assert_eq!(
        legal
            .post(
                &format!("{p}/decide"),
                &format!("csrf={c}&decision=reject&comment=no")
            )
            .status,
        303
    );
    assert_eq!(state(&f, &f.cards.id), ApprovalState::Discarded);
    let log = std::fs::read_to_string(f.dir.join("commands.log")).unwrap();
    assert!(log.contains("discarded Q9C8D7"), "{log}");
    assert!(events(&f, &f.cards.id)
        .iter()
        .any(|(_, k, _)| k == "notify"));
}

#[test]
fn admin_search_record_pages_dashboard_and_histories() {
    let f = fixture();
    let mut admin = Browser::signed_in(&f, ADMIN);
    let g = admin.get("/dashboard");
    assert_eq!(g.status, 200);
    let t = g.text();
    assert!(
        t.contains("<svg")
            && t.contains("partner.example.com")
            && t.contains("ichiro@example.co.jp")
    );
    assert!(t.contains("Files sent outside repeatedly") && t.contains("Top detectors"));
    assert_eq!(admin.get("/dashboard?days=7").status, 200);
    let t = admin
        .get("/audit?sender=ichiro%40example.co.jp&verdict=hold&since=30d")
        .text();
    assert!(t.contains("2 records"), "{t}");
    let t = admin
        .get("/audit?detector=credit_card&domain=partner.example.com")
        .text();
    assert!(t.contains("records") && t.contains("/audit/"));
    let search = t.split(r#"action="/audit">"#).nth(1).unwrap();
    let search = &search[..search.find("</form>").unwrap()];
    assert!(
        !search.contains("csrf"),
        "a CSRF token in the GET search form"
    );
    assert_eq!(admin.get("/audit?since=yesterday-ish").status, 400);
    assert_eq!(admin.get("/audit?verdict=maybe").status, 400);
    // Recipient roles: a filter of their own (To here; an unknown role is refused).
    let t = admin.get("/audit?role=to&since=30d").text();
    assert!(
        t.contains(r#"<option value="to" selected>To</option>"#) && !t.contains(">0 records"),
        "{t}"
    );
    assert_eq!(admin.get("/audit?role=sometimes").status, 400);
    let rid = f.ids.record_id;
    let t = admin.get(&format!("/audit/{rid}")).text();
    assert!(t.contains("Q1A2B3") && t.contains(&f.ids.id));
    for v in &f.raw_values {
        assert!(!t.contains(v.as_str()), "raw value {v} on the record page");
    }
    assert_eq!(admin.get("/audit/999999").status, 404);
    // Admins decide any request; the history shows views, decision and release.
    let p = format!("/requests/{}", f.ids.id);
    let c = admin.get(&p).csrf();
    assert_eq!(
        admin
            .post(
                &format!("{p}/decide"),
                &format!("csrf={c}&decision=approve")
            )
            .status,
        303
    );
    let t = admin.get(&p).text();
    for want in ["viewed the request", "approved", "released", "held"] {
        assert!(t.contains(want), "history lacks {want}");
    }
    // Reports: departments and each sender's risk with its reasons; CSV for Excel.
    let g = admin.get("/reports?days=30");
    assert_eq!(g.status, 200);
    let t = g.text();
    assert!(
        t.contains("営業部") && t.contains("経理部") && t.contains("highest mail risk"),
        "{t}"
    );
    let g = admin.get("/reports/senders.csv?days=30");
    assert_eq!(g.status, 200);
    assert!(g.body.starts_with(&[0xEF, 0xBB, 0xBF]), "BOM for Excel");
    assert!(String::from_utf8_lossy(&g.body).contains("ichiro@example.co.jp"));
    let g = admin.get("/reports/departments.csv?days=30&encoding=cp932");
    assert_eq!(
        g.header("Content-Type"),
        Some("text/csv; charset=Shift_JIS")
    );
    // Every search and view above is in the admin log, with its filters and from where.
    admin.get(&format!("/requests/{}/attachments/0/download", f.ids.id));
    let log = admin.get("/admin-log");
    assert_eq!(log.status, 200);
    let t = log.text();
    for want in [
        "audit_search",
        "sender=ichiro@example.co.jp verdict=hold since=30d",
        "record_view",
        &format!(">{rid}<"),
        "request_view",
        "attachment_download",
        "顧客一覧.xlsx",
        "127.0.0.1",
    ] {
        assert!(t.contains(want), "admin log lacks {want}: {t}");
    }
    let t = admin.get("/admin-log?actor=nobody%40example.co.jp").text();
    assert!(
        !t.contains("audit_search") && t.contains("Nothing yet."),
        "{t}"
    );
    let mut boss = Browser::signed_in(&f, BOSS);
    assert_eq!(boss.get("/admin-log").status, 403);
    // The approver's attachment view is in the admin log as well.
    boss.get(&format!("/requests/{}/attachments/0", f.ids.id));
    let t = admin
        .get(&format!("/admin-log?actor={}", enc(BOSS.0)))
        .text();
    assert!(t.contains("attachment_view"), "{t}");
}

/// The sign-in link mailed to the approver when the mail was held.
fn mailed_link(f: &Fixture) -> String {
    let mail = std::fs::read_to_string(f.dir.join("mail.log")).unwrap();
    let line = mail
        .lines()
        .find(|l| l.starts_with("http://console.test/link/"))
        .expect("a link in the approver's mail");
    line.trim_start_matches("http://console.test")
        .trim()
        .to_string()
}

#[test]
fn sign_in_links_work_once_and_only_for_their_request() {
    let f = fixture();
    let link = mailed_link(&f);
    assert!(link.starts_with(&format!("/link/{}?u=boss%40example.co.jp&t=", f.ids.id)));
    let mut b = Browser::new(&f);
    // Showing the link's page does not use it (mail scanners fetch links).
    assert_eq!(b.get(&link).status, 200);
    let page = b.get(&link);
    let t = page.text();
    assert!(t.contains("boss@example.co.jp"));
    let tok = link.split("&t=").nth(1).unwrap();
    let form = |csrf: &str, tok: &str| format!("csrf={csrf}&u={}&t={tok}", enc(BOSS.0));
    let post = format!("/link/{}", f.ids.id);
    assert_eq!(b.post(&post, &form("bad", tok)).status, 403);
    let csrf = page.csrf();
    let mut forged = tok.to_string();
    forged.replace_range(20..21, if &tok[20..21] == "0" { "1" } else { "0" });
    assert_eq!(b.post(&post, &form(&csrf, &forged)).status, 403);
    assert_eq!(
        b.post(&format!("/link/{}", f.cards.id), &form(&csrf, tok))
            .status,
        403
    );
    let g = b.post(&post, &form(&csrf, tok));
    assert_eq!(g.status, 303, "{}", g.text());
    assert_eq!(
        g.header("Location").unwrap(),
        format!("/requests/{}", f.ids.id)
    );
    assert_eq!(b.get(&format!("/requests/{}", f.ids.id)).status, 200);
    // Scoped to its request.
    assert_eq!(b.get("/requests").status, 403);
    assert_eq!(b.get(&format!("/requests/{}", f.cards.id)).status, 403);
    assert_eq!(b.get("/dashboard").status, 403);
    assert_eq!(b.get("/audit").status, 403);
    let home = format!("/requests/{}", f.ids.id);
    assert_eq!(b.get("/").header("Location"), Some(home.as_str()));
    assert!(events(&f, &f.ids.id)
        .iter()
        .any(|(w, k, _)| w == BOSS.0 && k == "link_signin"));
    // Used once.
    let mut again = Browser::new(&f);
    let p = again.get(&link);
    let g = again.post(&post, &form(&p.csrf(), tok));
    assert_eq!(g.status, 403);
    assert!(g.text().contains("used already"));
    // The link's session decides its request.
    let c = b.get(&format!("/requests/{}", f.ids.id)).csrf();
    assert_eq!(
        b.post(&format!("{post}/../../requests/{}/decide", f.ids.id), "")
            .status,
        404
    );
    let g = b.post(
        &format!("/requests/{}/decide", f.ids.id),
        &format!("csrf={c}&decision=reject&comment=wrong+file"),
    );
    assert_eq!(g.status, 303);
    assert_eq!(state(&f, &f.ids.id), ApprovalState::Discarded);
}

#[test]
fn expired_requests_are_shown_expired_and_cannot_be_decided() {
    let f = fixture();
    let store = f.app.pipeline().workflow().store().clone();
    let mut old = f.ids.clone();
    old.id = "00aa11bb22cc33dd44ee55ff".into();
    old.created -= 7200;
    old.expires = ping32dlp::timeutil::now() - 60;
    store.insert_approval(&old).unwrap();
    let mut boss = Browser::signed_in(&f, BOSS);
    let t = boss.get("/requests").text();
    assert!(!t.contains(&old.id));
    let t = boss.get("/requests?status=done").text();
    assert!(t.contains(&old.id) && t.contains(">expired<"), "{t}");
    let g = boss.get(&format!("/requests/{}", old.id));
    let t = g.text();
    assert!(t.contains(">expired<") && !t.contains("Approve and send"));
    let c = boss.get("/requests").csrf();
    let g = boss.post(
        &format!("/requests/{}/decide", old.id),
        &format!("csrf={c}&decision=approve"),
    );
    assert_eq!(g.status, 409);
    assert_eq!(state(&f, &old.id), ApprovalState::Discarded);
}

#[test]
fn odd_requests_get_clean_errors() {
    let f = fixture();
    let mut admin = Browser::signed_in(&f, ADMIN);
    for path in [
        "/requests/%00%ff",
        "/requests/../../etc/passwd",
        "/audit/-1",
        "/requests/x/attachments/99999999999999999999",
    ] {
        let g = admin.get(path);
        assert!(matches!(g.status, 403 | 404), "{path}: {}", g.status);
    }
    let g = admin.get("/audit?user=%3Cscript%3Ealert(1)%3C%2Fscript%3E");
    assert!(!g.text().contains("<script>"));
    let g = send(f.addr, "GET", "/", &[("Cookie", "p32_session=forged")], "");
    assert_eq!(g.status, 303);
}

#[test]
fn https_with_a_certificate_and_secure_cookies() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let server = ping32dlp::service::tls_server_config(&cert, &key).unwrap();
    let f = fixture_full(|s| s.secure_cookies = true, Some(server));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(client, name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, TcpStream::connect(f.addr).unwrap());
    s.write_all(b"GET /login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        text.contains("p32_pre=") && text.contains("; Secure"),
        "{text}"
    );
    // Plain HTTP to the HTTPS port gets nothing useful.
    let mut plain = TcpStream::connect(f.addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain.write_all(b"GET /login HTTP/1.1\r\n\r\n").unwrap();
    let mut junk = Vec::new();
    let _ = plain.read_to_end(&mut junk);
    assert!(!String::from_utf8_lossy(&junk).contains("p32_pre"));
}

#[test]
fn config_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("console.toml");
    std::fs::write(&f, "listen = \"127.0.0.1:1\"\nlanguag = \"ja\"\n").unwrap();
    let e = crate::Config::load(&f).unwrap_err();
    assert!(
        e.contains("console.toml:2:1") && e.contains("languag"),
        "{e}"
    );
    std::fs::write(&f, "language = \"fr\"\n").unwrap();
    assert!(crate::Config::load(&f)
        .unwrap_err()
        .contains("language `fr`"));
    std::fs::write(&f, "tls_cert = \"c.pem\"\n").unwrap();
    assert!(crate::Config::load(&f).unwrap_err().contains("tls_key"));
    // Directory sign-in: needs [directory]; its groups need sign_in.directory; typos named.
    std::fs::write(&f, "[sign_in]\ndirectory = true\n").unwrap();
    let e = crate::Config::load(&f).unwrap_err();
    assert!(
        e.contains("sign_in.directory") && e.contains("[directory]"),
        "{e}"
    );
    std::fs::write(&f, "[sign_in]\nadmin_groups = [\"it\"]\n").unwrap();
    let e = crate::Config::load(&f).unwrap_err();
    assert!(e.contains("sign_in.directory = true"), "{e}");
    std::fs::write(&f, "[sign_in]\ndirectory = true\nadmin_group = [\"it\"]\n").unwrap();
    let e = crate::Config::load(&f).unwrap_err();
    assert!(
        e.contains("console.toml:3") && e.contains("admin_group"),
        "{e}"
    );
    std::fs::write(
        &f,
        "[directory]\nurl = \"ldap://127.0.0.1:1\"\nbase = \"dc=example,dc=co,dc=jp\"\n[sign_in]\ndirectory = true\nadmin_groups = [\"it\"]\n",
    )
    .unwrap();
    let c = crate::Config::load(&f).unwrap();
    assert!(c.sign_in.directory && c.sign_in.admin_groups == ["it"]);
    std::fs::write(
        &f,
        "[directory]\nurl = \"ldap://dc1.example.co.jp\"\nbase = \"dc=example\"\n[sign_in]\ndirectory = true\n",
    )
    .unwrap();
    let e = crate::Config::load(&f).unwrap_err();
    assert!(e.contains("in the clear"), "{e}");
    std::fs::write(
        &f,
        "[[account]]\nname = \"a\"\npassword_hash = \"secret\"\nrole = \"approver\"\n",
    )
    .unwrap();
    let e = crate::Config::load(&f).unwrap_err();
    assert!(e.contains("account[0].password_hash"), "{e}");
    std::fs::write(
        &f,
        "[[account]]\nname = \"a\"\npassword_hash = \"x\"\nrole = \"boss\"\n",
    )
    .unwrap();
    let e = crate::Config::load(&f).unwrap_err();
    assert!(e.contains("console.toml:4") && e.contains("boss"), "{e}");
    let h = auth::hash_password("long enough").unwrap();
    std::fs::write(
        &f,
        format!("state_dir = \"st\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n[[account]]\nname = \"a\"\npassword_hash = \"{h}\"\nrole = \"admin\"\n[[account]]\nname = \"A\"\npassword_hash = \"{h}\"\nrole = \"approver\"\n"),
    )
    .unwrap();
    assert!(crate::Config::load(&f)
        .unwrap_err()
        .contains("listed twice"));
    std::fs::write(
        &f,
        format!("state_dir = \"st\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n[[account]]\nname = \"a\"\npassword_hash = \"{h}\"\nrole = \"admin\"\n"),
    )
    .unwrap();
    let c = crate::Config::load(&f).unwrap();
    assert_eq!(
        c.dlp.state_dir.as_deref(),
        Some(dir.path().join("st").as_path())
    );
    assert_eq!(
        c.tls_key.as_deref(),
        Some(dir.path().join("k.pem").as_path())
    );
    assert!(c.settings().secure_cookies, "TLS makes cookies Secure");
}

#[test]
fn without_accounts_an_admin_is_made_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = crate::initial_admin(dir.path()).unwrap();
    assert_eq!((a.name.as_str(), a.role), ("admin", Role::Admin));
    let b = crate::initial_admin(dir.path()).unwrap();
    assert_eq!(
        a.password_hash, b.password_hash,
        "the second start reads the same hash"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["console-admin.hash", "console-admin.password"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
    // The password is in its file (not in the log), and it is the right one.
    let pw = std::fs::read_to_string(dir.path().join("console-admin.password")).unwrap();
    assert!(auth::verify(Some(&a.password_hash), pw.trim()));
}

#[test]
fn sign_in_attempts_are_counted_before_the_password_check() {
    // The review: 40 concurrent wrong passwords were all checked, then the right one worked.
    let f = fixture_with(|s| s.login_attempts = 5);
    let handles: Vec<_> = (0..40)
        .map(|i| {
            let addr = f.addr;
            std::thread::spawn(move || {
                let mut b = Browser {
                    addr,
                    cookies: Vec::new(),
                    lang: "en",
                };
                let page = b.get("/login");
                b.post(
                    "/login",
                    &format!(
                        "csrf={}&user={}&password=wrong-{i}",
                        page.csrf(),
                        enc(BOSS.0)
                    ),
                )
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        35,
        "{statuses:?}"
    );
    let mut b = Browser::new(&f);
    let page = b.get("/login");
    let g = b.post(
        "/login",
        &format!(
            "csrf={}&user={}&password={}",
            page.csrf(),
            enc(BOSS.0),
            enc(BOSS.1)
        ),
    );
    assert_eq!(g.status, 429, "the right password waits too");
}

#[test]
fn after_sign_in_only_paths_on_this_site() {
    let f = fixture();
    for (next, want) in [
        // The tab goes; what is left, `//evil.example`, is another site.
        ("/%09/evil.example", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/%0d%0a/evil.example", "/"),
        ("/re%09quests", "/requests"),
        ("/requests?state=all", "/requests?state=all"),
    ] {
        let mut b = Browser::new(&f);
        let page = b.get(&format!("/login?next={}", enc(next)));
        let g = b.post(
            "/login",
            &format!(
                "csrf={}&user={}&password={}&next={}",
                page.csrf(),
                enc(ADMIN.0),
                enc(ADMIN.1),
                enc(&ping32dlp::text::percent_decode(next, false)
                    .iter()
                    .map(|b| *b as char)
                    .collect::<String>())
            ),
        );
        assert_eq!(g.status, 303, "{next}");
        assert_eq!(g.header("Location"), Some(want), "{next}");
    }
}

#[test]
fn fuzz_findings_stay_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/console_http");
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries {
            crate::fuzz_request(&std::fs::read(e.unwrap().path()).unwrap());
        }
    }
    // The fuzz entry reaches the download listener's router too.
    let t = "0123456789abcdef".repeat(3);
    crate::fuzz_request(format!("GET /d/{t} HTTP/1.1\r\nHost: dl\r\n\r\n").as_bytes());
    crate::fuzz_request(format!("POST /d/{t} HTTP/1.1\r\nHost: dl\r\n\r\npassword=%ff").as_bytes());
}

/// The fuzz seeds for the agents' API (`scripts/fuzz-seeds.py`) get past the credential check
/// and the JSON reading of the fuzzed console, so the fuzzer starts inside every call: a
/// change of the API or of the seeds that turns them into 400s or 401s fails here, not
/// silently in a fuzz run that never reaches the calls.
#[test]
fn fuzz_seeds_reach_the_agent_calls() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ok = std::process::Command::new("python3")
        .arg(root.join("scripts/fuzz-seeds.py"))
        .arg(dir.path())
        .status()
        .expect("python3 runs the seed script");
    assert!(ok.success());
    let seed = |name: &str| std::fs::read(dir.path().join("console_http").join(name)).unwrap();
    let mut calls = 0;
    for e in std::fs::read_dir(dir.path().join("console_http")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Some(n) = name
            .strip_prefix("agent")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let (status, _) = crate::fuzz_request(&seed(&name)).expect("a whole request");
        assert_eq!(status, 200, "seed agent{n}");
        calls += 1;
    }
    assert!(calls >= 7, "a seed for every call ({calls})");
    // The enrolment goes through once (then the name is taken); the wrong secret is refused.
    assert_eq!(crate::fuzz_request(&seed("agent-enrol")).unwrap().0, 201);
    assert_eq!(crate::fuzz_request(&seed("agent-enrol")).unwrap().0, 409);
    assert_eq!(crate::fuzz_request(&seed("agent-wrong")).unwrap().0, 401);
}

/// Endpoint fleet: an admin makes tokens on the Agents page, agents enrol once, their
/// forwarders upload the records of their local stores (once, under their own names), and a
/// credential reaches nothing else.
#[test]
fn agents_enrol_once_upload_their_own_records_and_can_be_revoked() {
    use ping32dlp::workflow::{agent, fleet, open_store, AuditRecord, Recipient, StoreConfig};
    let f = fixture();
    let mut admin = Browser::signed_in(&f, ADMIN);
    let page = admin.get("/agents");
    assert_eq!(page.status, 200);
    assert!(
        page.text().contains("No agent is enrolled yet."),
        "{}",
        page.text()
    );
    let token_of = |admin: &mut Browser, label: &str| -> String {
        let page = admin.get("/agents");
        let g = admin.post(
            "/agents/tokens",
            &format!("csrf={}&label={}&days=2", page.csrf(), enc(label)),
        );
        assert_eq!(g.status, 200, "{}", g.text());
        assert_eq!(g.header("cache-control"), Some("no-store"));
        let t = g.text();
        let i = t.find(r#"<p class="mono big">"#).expect("the token") + 20;
        t[i..i + 48].to_string()
    };
    // Without the CSRF token, no token.
    assert_eq!(admin.post("/agents/tokens", "label=x").status, 403);
    let token = token_of(&mut admin, "sales PC 1");
    let server = format!("http://{}", f.addr);
    let cfg = StoreConfig::new(server.clone());
    let dir_a = f.dir.join("agent-a");
    let (name, cred_path) = agent::enrol(&dir_a, &cfg, &token, "pc-a").unwrap();
    assert_eq!(name, "pc-a");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cred_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A token works once.
    let e = agent::enrol(&f.dir.join("agent-x"), &cfg, &token, "pc-x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown, used or expired"), "{e}");
    // Enrolled already: refused locally.
    let e = agent::enrol(&dir_a, &cfg, &token, "pc-a")
        .unwrap_err()
        .to_string();
    assert!(e.contains("enrolled already"), "{e}");
    let dir_b = f.dir.join("agent-b");
    let token_b = token_of(&mut admin, "sales PC 2");
    // A taken name leaves the token good.
    let e = agent::enrol(&dir_b, &cfg, &token_b, "pc-a")
        .unwrap_err()
        .to_string();
    assert!(e.contains("another agent has that name"), "{e}");
    agent::enrol(&dir_b, &cfg, &token_b, "pc-b").unwrap();
    let cred_b = std::fs::read_to_string(dir_b.join(agent::CREDENTIAL_FILE)).unwrap();
    let cred_b = cred_b.trim();

    // Agent a judges mail into its local store; its forwarder uploads it.
    let local = open_store(&dir_a, Some(&cfg)).unwrap();
    let rec = |i: usize| AuditRecord {
        time: ping32dlp::timeutil::now(),
        channel: "proxy".into(),
        sender: format!("u{i}@example.co.jp"),
        recipients: vec![Recipient {
            address: "x@partner.example.com".into(),
            external: true,
            role: None,
        }],
        subject: format!("mail {i}"),
        action: "allow".into(),
        would_action: "allow".into(),
        gateway: Some("pc-b".into()), // what the agent says is not what is stored
        ..AuditRecord::default()
    };
    for i in 0..5 {
        local.record(&rec(i)).unwrap();
    }
    let server_store = f.app.pipeline().workflow().store().clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server_store.agent("pc-a").unwrap().unwrap().last_seq < 5 {
        assert!(std::time::Instant::now() < deadline, "not uploaded in time");
        std::thread::sleep(Duration::from_millis(100));
    }
    let q = |gw: &str| ping32dlp::workflow::AuditQuery {
        gateway: Some(gw.into()),
        limit: 100,
        ..Default::default()
    };
    let got = server_store.search(&q("pc-a")).unwrap();
    assert_eq!(got.len(), 5);
    assert!(server_store.search(&q("pc-b")).unwrap().is_empty());
    let a = server_store.agent("pc-a").unwrap().unwrap();
    assert_eq!(a.status.host, Some(ping32dlp::workflow::host_name()));
    assert!(a
        .status
        .version
        .unwrap()
        .contains(env!("CARGO_PKG_VERSION")));
    drop(local);

    // The same batch twice (an answer lost on the way) is stored once.
    let auth_b = format!("Bearer {cred_b}");
    let body = serde_json::json!({"records": [{"seq": 1, "record": rec(9)}, {"seq": 2, "record": rec(10)}]})
        .to_string();
    for stored in [2, 0] {
        let g = send(
            f.addr,
            "POST",
            "/agent/v1/records",
            &[("Authorization", &auth_b)],
            &body,
        );
        assert_eq!(g.status, 200, "{}", g.text());
        let v: serde_json::Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(
            (v["last_seq"].as_i64(), v["stored"].as_u64()),
            (Some(2), Some(stored))
        );
    }
    assert_eq!(server_store.search(&q("pc-b")).unwrap().len(), 2);
    // A mail held on b's PC: its request is stored with it; only b learns the decision and
    // only b can say it was carried out.
    let mut held_rec = rec(11);
    held_rec.approval = Some("abcdef012345".into());
    let now = ping32dlp::timeutil::now();
    let held = serde_json::json!({
        "approval": {
            "id": "abcdef012345", "record_id": 77, "state": "pending", "created": now,
            "expires": now + 3600, "approvers": ["boss@example.co.jp"], "approver_group": null,
            "rule": "hold-x", "channel": "proxy", "queue_id": null, "sender": "u11@example.co.jp",
            "recipients": ["x@partner.example.com"], "subject": "mail 11", "decided_by": null,
            "decided_at": null, "comment": null, "closed_at": null, "gateway": "pc-a"
        },
        "evidence": [{"location": "a.txt", "sha256": fleet::secret_digest("hello"), "size": 5,
                      "data": ping32dlp::text::base64_encode(b"hello")}]
    });
    let up =
        serde_json::json!({"records": [{"seq": 3, "record": held_rec, "held": held}]}).to_string();
    let g = send(
        f.addr,
        "POST",
        "/agent/v1/records",
        &[("Authorization", &auth_b)],
        &up,
    );
    assert_eq!(g.status, 200, "{}", g.text());
    let ap = server_store.approval("abcdef012345").unwrap().unwrap();
    assert_eq!(
        ap.gateway.as_deref(),
        Some("pc-b"),
        "the server names the holder"
    );
    let rec_b = server_store.get_record(ap.record_id).unwrap().unwrap();
    assert_eq!(rec_b.approval.as_deref(), Some("abcdef012345"));
    assert_eq!(server_store.evidence_of(ap.record_id).unwrap().len(), 1);
    f.app
        .pipeline()
        .workflow()
        .decide("abcdef012345", "admin", true, "ok", true)
        .unwrap();
    let auth_a0 = format!(
        "Bearer {}",
        std::fs::read_to_string(dir_a.join(agent::CREDENTIAL_FILE))
            .unwrap()
            .trim()
    );
    let decisions = |auth: &str| -> Vec<String> {
        let g = send(
            f.addr,
            "POST",
            "/agent/v1/decisions",
            &[("Authorization", auth)],
            "{}",
        );
        assert_eq!(g.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&g.body).unwrap();
        v["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        decisions(&auth_a0).is_empty(),
        "a does not see b's decisions"
    );
    assert_eq!(decisions(&auth_b), vec!["abcdef012345".to_string()]);
    let closed =
        format!(r#"{{"closed": [{{"id": "abcdef012345", "state": "released", "time": {now}}}]}}"#);
    let done = |auth: &str| -> i64 {
        let g = send(
            f.addr,
            "POST",
            "/agent/v1/closed",
            &[("Authorization", auth)],
            &closed,
        );
        serde_json::from_slice::<serde_json::Value>(&g.body).unwrap()["done"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(done(&auth_a0), 0, "a cannot close b's request");
    assert_eq!(done(&auth_b), 1);
    assert_eq!(
        server_store
            .approval("abcdef012345")
            .unwrap()
            .unwrap()
            .state,
        ping32dlp::workflow::ApprovalState::Released
    );
    // Out of order: refused whole.
    let bad = serde_json::json!({"records": [{"seq": 5, "record": rec(1)}, {"seq": 4, "record": rec(2)}]})
        .to_string();
    let g = send(
        f.addr,
        "POST",
        "/agent/v1/records",
        &[("Authorization", &auth_b)],
        &bad,
    );
    assert_eq!(g.status, 400, "{}", g.text());

    // A credential reaches nothing but its own calls.
    let (name_b, secret_b) = fleet::split_credential(cred_b).unwrap();
    assert_eq!(name_b, "pc-b");
    for (auth, status) in [
        (format!("Bearer pc-a:{secret_b}"), 401), // b's secret under a's name
        (format!("Bearer pc-b:{}", "0".repeat(64)), 401),
        ("Bearer nonsense".to_string(), 401),
        (String::new(), 401),
    ] {
        let h: Vec<(&str, &str)> = if auth.is_empty() {
            vec![]
        } else {
            vec![("Authorization", auth.as_str())]
        };
        let g = send(f.addr, "POST", "/agent/v1/status", &h, r#"{"status": {}}"#);
        assert_eq!(g.status, status, "{auth}: {}", g.text());
    }
    for path in ["/audit", "/agents", "/requests", "/dashboard"] {
        let g = send(f.addr, "GET", path, &[("Authorization", &auth_b)], "");
        assert_eq!(
            g.status, 303,
            "{path}: an agent credential is no console session"
        );
    }
    assert_eq!(
        send(
            f.addr,
            "GET",
            "/agent/v1/records",
            &[("Authorization", &auth_b)],
            ""
        )
        .status,
        405
    );

    // The dashboard of one agent counts its mail only.
    let d = admin.get("/dashboard?days=7&gateway=pc-a").text();
    assert!(d.contains("@ pc-a") && d.contains("gateway=pc-a"), "{d}");
    let tile = |page: &str| -> String {
        let i = page.find(r#"<div class="tile"><b>"#).unwrap() + 21;
        page[i..i + page[i..].find('<').unwrap()].to_string()
    };
    assert_eq!(tile(&d), "5", "pc-a's mails");
    let all = admin.get("/dashboard?days=7").text();
    assert!(tile(&all).parse::<u64>().unwrap() > 5);
    // The Agents page lists both; revoking b shuts it out.
    let page = admin.get("/agents");
    let t = page.text();
    assert!(
        t.contains("pc-a") && t.contains("pc-b") && t.contains("sales PC 2"),
        "{t}"
    );
    let g = admin.post("/agents/pc-b/revoke", &format!("csrf={}", page.csrf()));
    assert_eq!(g.status, 303);
    let g = send(
        f.addr,
        "POST",
        "/agent/v1/records",
        &[("Authorization", &auth_b)],
        &body,
    );
    assert_eq!(g.status, 403, "{}", g.text());
    assert!(g.text().contains("revoked"));
    assert_eq!(
        admin
            .post("/agents/pc-b/revoke", &format!("csrf={}", page.csrf()))
            .status,
        404
    );
    // Approvers do not see the Agents page.
    let mut boss = Browser::signed_in(&f, BOSS);
    assert_eq!(boss.get("/agents").status, 403);

    // A policy for the agents: refused with its position when wrong, else stored and served.
    let auth_a = format!(
        "Bearer {}",
        std::fs::read_to_string(dir_a.join(agent::CREDENTIAL_FILE))
            .unwrap()
            .trim()
    );
    let ask = |have: &str| {
        let g = send(
            f.addr,
            "POST",
            "/agent/v1/policy",
            &[("Authorization", &auth_a)],
            &format!(r#"{{"have": {have}}}"#),
        );
        assert_eq!(g.status, 200, "{}", g.text());
        serde_json::from_slice::<serde_json::Value>(&g.body).unwrap()
    };
    assert!(ask("null")["version"].is_null());
    let bad = "[policy]\nname = \"fleet\"\n\n[[rule]]\nid = \"x\"\naction = \"block\"\nwhen = { detector = [\"no_such_detector\"] }\n";
    let page = admin.get("/agents");
    let g = admin.post(
        "/agents/policy",
        &format!("csrf={}&policy={}", page.csrf(), enc(bad)),
    );
    assert_eq!(g.status, 400);
    assert!(
        g.text().contains("uploaded policy:7:") && g.text().contains("no_such_detector"),
        "{}",
        g.text()
    );
    let good = bad.replace("no_such_detector", "credit_card");
    let g = admin.post(
        "/agents/policy",
        &format!("csrf={}&policy={}", page.csrf(), enc(&good)),
    );
    assert_eq!(g.status, 303, "{}", g.text());
    let v = ask("null");
    assert_eq!(v["text"].as_str(), Some(good.as_str()));
    let version = v["version"].as_i64().unwrap();
    assert!(
        ask(&version.to_string())["text"].is_null(),
        "unchanged: no text"
    );
    // A revoked agent gets no policy either.
    let g = send(
        f.addr,
        "POST",
        "/agent/v1/policy",
        &[("Authorization", &auth_b)],
        r#"{"have": null}"#,
    );
    assert_eq!(g.status, 403);
    assert!(admin.get("/agents").text().contains("Policy for agents"));
}

#[test]
fn the_agent_api_is_off_unless_asked_for() {
    let f = fixture_with(|s| s.agent_api = false);
    let g = send(
        f.addr,
        "POST",
        "/agent/v1/enrol",
        &[],
        r#"{"token": "x", "name": "pc"}"#,
    );
    assert_eq!(g.status, 404);
    let mut admin = Browser::signed_in(&f, ADMIN);
    assert!(admin.get("/agents").text().contains("The agent API is off"));
}

#[test]
fn admins_limited_to_departments_see_only_theirs() {
    let f = fixture();
    let mut sales = Browser::signed_in(&f, SALES_ADMIN);
    // Requests: the 営業部 mail's, not 経理部's.
    let t = sales.get("/requests?status=all").text();
    assert!(t.contains(&f.ids.id) && !t.contains(&f.cards.id), "{t}");
    assert_eq!(sales.get(&format!("/requests/{}", f.ids.id)).status, 200);
    assert_eq!(sales.get(&format!("/requests/{}", f.cards.id)).status, 403);
    assert_eq!(
        sales
            .get(&format!("/requests/{}/attachments/0", f.cards.id))
            .status,
        403
    );
    // The audit search returns 営業部's records only; 経理部's record page is not there.
    let t = sales.get("/audit?since=30d").text();
    assert!(
        t.contains(&format!("/audit/{}", f.ids.record_id))
            && !t.contains(&format!("/audit/{}\"", f.cards.record_id)),
        "{t}"
    );
    assert_eq!(
        sales.get(&format!("/audit/{}", f.ids.record_id)).status,
        200
    );
    assert_eq!(
        sales.get(&format!("/audit/{}", f.cards.record_id)).status,
        404
    );
    // Reports: their department only.
    let t = sales.get("/reports?days=30").text();
    assert!(t.contains("営業部") && !t.contains("経理部"), "{t}");
    // No company-wide pages, and no links to them.
    for p in ["/dashboard", "/agents", "/admin-log"] {
        assert_eq!(sales.get(p).status, 403, "{p}");
    }
    let t = sales.get("/requests").text();
    assert!(
        t.contains(r#"href="/audit""#) && !t.contains(r#"href="/dashboard""#),
        "{t}"
    );
    // The unlimited admin sees both.
    let mut admin = Browser::signed_in(&f, ADMIN);
    let t = admin.get("/audit?since=30d").text();
    assert!(
        t.contains(&format!("/audit/{}", f.ids.record_id))
            && t.contains(&format!("/audit/{}", f.cards.record_id)),
        "{t}"
    );
}
