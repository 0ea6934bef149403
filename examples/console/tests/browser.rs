//! End-to-end in a real browser: Debian's Chromium, driven over WebDriver (chromedriver) by the
//! small client below, against a running console whose request was held by the real milter in
//! front of a real Postfix. `scripts/console-test.sh` sets all of that up and runs this test
//! with `--ignored`; alone it has nothing to talk to.
//!
//! Sign in, open the held request, view its attachment, approve; then the views and the
//! decision are in the store and the mail reached the recipient's mailbox. Screenshots of the
//! request list, the request page, the attachment view, the dashboard and the history go to
//! `$ARTIFACTS`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// W3C WebDriver's element key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    agent: ureq::Agent,
    base: String,
}

impl Driver {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, b) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(b.unwrap_or_else(|| json!({})).to_string()),
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(
            status == 200,
            "{method} {path}: {status} {}",
            text.chars().take(600).collect::<String>()
        );
        v["value"].clone()
    }
}

struct Browser {
    d: Driver,
    session: String,
    console: String,
}

impl Browser {
    fn start(webdriver: &str, console: &str, profile: &Path) -> Browser {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let d = Driver {
            agent,
            base: webdriver.trim_end_matches('/').to_string(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--lang=ja-JP", "--window-size=1440,1500",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {"intl.accept_languages": "ja,en-US;q=0.8"}
            }
        }}});
        let v = d.call("POST", "/session", Some(caps));
        let session = v["sessionId"].as_str().expect("a session id").to_string();
        Browser {
            d,
            session,
            console: console.trim_end_matches('/').to_string(),
        }
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn open(&self, path: &str) {
        self.d.call(
            "POST",
            &self.s("/url"),
            Some(json!({"url": format!("{}{path}", self.console)})),
        );
    }

    fn url(&self) -> String {
        self.d
            .call("GET", &self.s("/url"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn source(&self) -> String {
        self.d
            .call("GET", &self.s("/source"), None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn find(&self, css: &str) -> String {
        let v = self.d.call(
            "POST",
            &self.s("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no {css} on {}: {v}\n{}", self.url(), self.source()))
            .to_string()
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.d.call(
            "POST",
            &self.s(&format!("/element/{e}/click")),
            Some(json!({})),
        );
    }

    fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.d.call(
            "POST",
            &self.s(&format!("/element/{e}/value")),
            Some(json!({"text": text})),
        );
    }

    fn wait_url(&self, part: &str) -> String {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let u = self.url();
            if u.contains(part) {
                return u;
            }
            assert!(
                Instant::now() < end,
                "the browser stayed at {u}, not {part}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, to: &Path) {
        let b64 = self.d.call("GET", &self.s("/screenshot"), None);
        let png = ping32dlp::text::base64_decode(b64.as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(to, png).unwrap();
        println!("screenshot: {}", to.display());
    }

    fn sign_in(&self, user: &str, password: &str) {
        self.open("/login");
        self.type_in("input[name=user]", user);
        self.type_in("input[name=password]", password);
        self.click("form[action='/login'] button");
    }

    fn sign_out(&self) {
        self.click("form[action='/logout'] button");
        self.wait_url("/login");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .d
            .agent
            .delete(format!("{}/session/{}", self.d.base, self.session))
            .call();
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/console-test.sh"))
}

fn wait_file_with(dir: &Path, needle: &str, secs: u64) -> Option<PathBuf> {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if std::fs::read(e.path())
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
            {
                return Some(e.path());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

#[test]
#[ignore = "needs Chromium, chromedriver, Postfix, the milter and a running console: scripts/console-test.sh"]
fn approver_reviews_and_approves_in_a_real_browser() {
    let console = env("CONSOLE_URL");
    let approval = env("APPROVAL_ID");
    let subject = env("SUBJECT_MARKER");
    let artifacts = PathBuf::from(env("ARTIFACTS"));
    std::fs::create_dir_all(&artifacts).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let b = Browser::start(&env("WEBDRIVER_URL"), &console, profile.path());
    let (boss, boss_pw) = (env("APPROVER_USER"), env("APPROVER_PASSWORD"));

    // Sign in; the list shows the held request.
    b.sign_in(&boss, &boss_pw);
    b.wait_url("/requests");
    let list = b.source();
    assert!(
        list.contains("承認依頼") && list.contains(&subject),
        "list page: {list}"
    );
    b.screenshot(&artifacts.join("requests.png"));
    b.click(&format!("a[href='/requests/{approval}']"));
    b.wait_url(&format!("/requests/{approval}"));
    let page = b.source();
    for want in [
        "承認して送信",
        "却下",
        "社外",
        "bob@dlp.test",
        "hold-my-number",
        "見積書.docx",
    ] {
        assert!(page.contains(want), "the request page lacks {want}");
    }
    assert!(
        !page.contains("7684 2684 6565"),
        "a raw My Number on the page"
    );
    b.screenshot(&artifacts.join("request.png"));

    // View the attachment (masked text), then go back.
    b.click(&format!("a[href='/requests/{approval}/attachments/0']"));
    b.wait_url("/attachments/0");
    let view = b.source();
    assert!(
        view.contains("見積書.docx") && view.contains("マスク"),
        "attachment view: {view}"
    );
    b.screenshot(&artifacts.join("attachment.png"));
    b.open(&format!("/requests/{approval}"));

    // Approve with a comment.
    b.type_in("#comment", "取引先との契約を確認済み");
    b.click("button[value=approve]");
    b.wait_url("done=approved");
    let done = b.source();
    assert!(done.contains("承認しました"), "after approving: {done}");

    // Recorded: the views, the attachment view and the decision, by the approver; released.
    let wf = ping32dlp::workflow::Workflow::open(ping32dlp::workflow::WorkflowConfig::new(env(
        "STATE_DIR",
    )))
    .unwrap();
    let events = wf.store().events(&approval).unwrap();
    let by = |kind: &str| events.iter().any(|e| e.kind == kind && e.actor == boss);
    assert!(by("view"), "no view event: {events:?}");
    assert!(
        by("view_attachment"),
        "no attachment view event: {events:?}"
    );
    assert!(by("approve"), "no decision event: {events:?}");
    assert!(events
        .iter()
        .any(|e| e.kind == "approve" && e.detail == "取引先との契約を確認済み"));
    // The milter that holds the mail carries the decision out (its worker, within seconds).
    let mut a = wf.store().approval(&approval).unwrap().unwrap();
    for _ in 0..60 {
        if a.state.as_str() == "released" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        a = wf.store().approval(&approval).unwrap().unwrap();
    }
    assert_eq!(a.state.as_str(), "released", "events: {events:?}");
    assert_eq!(a.decided_by.as_deref(), Some(boss.as_str()));

    // The mail left the hold queue and reached the recipient (Postfix's Received header names
    // the queue id).
    let maildir = PathBuf::from(env("RECIPIENT_MAILDIR"));
    assert!(
        wait_file_with(&maildir, &format!("id {}", env("QUEUE_ID")), 60).is_some(),
        "the approved mail did not reach {}",
        maildir.display()
    );

    // The administrator: dashboard and the request's history.
    b.sign_out();
    b.sign_in(&env("ADMIN_USER"), &env("ADMIN_PASSWORD"));
    b.wait_url("/dashboard");
    let dash = b.source();
    assert!(
        dash.contains("<svg") && dash.contains("日別の送信メール数"),
        "dashboard: {dash}"
    );
    b.screenshot(&artifacts.join("dashboard.png"));
    b.open(&format!("/requests/{approval}"));
    let hist = b.source();
    for want in [
        "承認依頼を閲覧",
        "添付ファイルを閲覧",
        "承認済み",
        "送信済み",
    ] {
        assert!(hist.contains(want), "the history lacks {want}");
    }
    b.screenshot(&artifacts.join("history.png"));
}
