//! The download listener (`download_listen`): the one place outside recipients reach, meant for
//! a DMZ. It serves `GET /d/<token>` (a landing page naming the file, its size and expiry,
//! with a button, and a password field when the link needs one), `POST /d/<token>` (the file,
//! counted and logged) and the style sheet; every other address is 404. It shares nothing
//! with the console's listener: no sign-in, no cookies, no console pages. Downloads happen on
//! POST only, so the link scanners of mail filters, which fetch every address in a mail, see
//! the landing page and do not spend the downloads.

use std::sync::Arc;

use ping32dlp::text::html_escape as esc;
use ping32dlp::workflow::links::{Fetch, MAX_PASSWORD_FAILURES};
use ping32dlp::workflow::Workflow;

use crate::http::{Request, Response};

/// The download listener's handler.
pub struct Downloads {
    workflow: Arc<Workflow>,
}

impl Downloads {
    /// Downloads of the links in `workflow`'s store.
    pub fn new(workflow: Arc<Workflow>) -> Downloads {
        Downloads { workflow }
    }

    /// Answers one request.
    pub fn handle(&self, req: &Request) -> Response {
        let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
        let m = req.method.as_str();
        match (segs.as_slice(), m) {
            (["style.css"], "GET" | "HEAD") => Response {
                status: 200,
                headers: vec![
                    ("Content-Type".into(), "text/css; charset=utf-8".into()),
                    ("Cache-Control".into(), "max-age=3600".into()),
                ],
                body: crate::html::CSS.as_bytes().to_vec(),
            },
            (["d", token], "GET" | "HEAD") => self.landing(token, None),
            (["d", token], "POST") => self.download(req, token),
            (["d", _], _) => page(405, "", "").with("Allow", "GET, HEAD, POST"),
            _ => page(
                404,
                "ページが見つかりません / Not found",
                "<p>このアドレスにはページがありません。<br>There is no page at this address.</p>",
            ),
        }
    }

    fn landing(&self, token: &str, note: Option<&str>) -> Response {
        let l = match self.workflow.link(token) {
            Ok(Some(l)) => l,
            Ok(None) => return unknown(),
            Err(e) => return unavailable(&e.to_string()),
        };
        let now = ping32dlp::timeutil::now();
        if now >= l.expires {
            return gone("このリンクは有効期限が切れています。送信者にお問い合わせください。<br>This link has expired; ask the sender.");
        }
        if l.max_downloads > 0 && l.downloads >= l.max_downloads {
            return gone("このリンクはダウンロード回数の上限に達しました。<br>This link has been downloaded as often as it may be.");
        }
        if l.failures >= MAX_PASSWORD_FAILURES {
            return locked();
        }
        let offset = self.workflow.config().utc_offset_min;
        let left = if l.max_downloads == 0 {
            String::new()
        } else {
            format!(
                "<p class=\"muted\">残り {n} 回 / {n} download(s) left</p>",
                n = l.max_downloads - l.downloads
            )
        };
        let pw = if l.password.is_some() {
            r#"<label>パスワード / Password <input type="password" name="password" autocomplete="off" required></label>"#
        } else {
            ""
        };
        let note = note
            .map(|n| format!(r#"<p class="err">{n}</p>"#))
            .unwrap_or_default();
        let body = format!(
            r#"<p class="mono">{name}</p><p>{size} バイト / bytes · 有効期限 / until {until}</p>{left}{note}<form method="post" action="/d/{token}">{pw}<button>ダウンロード / Download</button></form>"#,
            name = esc(&l.name),
            size = l.size,
            until = esc(&ping32dlp::timeutil::rfc3339(l.expires, offset)),
            token = esc(token),
        );
        page(200, "ファイルのダウンロード / Download a file", &body)
    }

    fn download(&self, req: &Request, token: &str) -> Response {
        let form = req.form();
        let password = form
            .iter()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v.as_str());
        let client = req.peer.to_string();
        let now = ping32dlp::timeutil::now();
        match self.workflow.fetch_link(token, password, &client, now) {
            Ok(Fetch::File { name, data }) => {
                ping32dlp::service::log_event(
                    "ping32dlp-console",
                    "link_download",
                    &[("client", &client), ("bytes", &data.len())],
                    "",
                );
                Response::download(&name, data).with("Cache-Control", "no-store")
            }
            Ok(Fetch::Refused(why)) => {
                ping32dlp::service::log_event(
                    "ping32dlp-console",
                    "link_refused",
                    &[("client", &client), ("outcome", &why)],
                    "",
                );
                match why {
                    "unknown" => unknown(),
                    "wrong_password" => {
                        let mut r = self.landing(
                            token,
                            Some("パスワードが違います。<br>The password is wrong."),
                        );
                        if r.status == 200 {
                            r.status = 403;
                        }
                        r
                    }
                    "locked" => locked(),
                    "not_kept" => gone("このファイルはもう保管されていません。<br>The file is no longer kept."),
                    "expired" => gone("このリンクは有効期限が切れています。送信者にお問い合わせください。<br>This link has expired; ask the sender."),
                    _ => gone("このリンクはダウンロード回数の上限に達しました。<br>This link has been downloaded as often as it may be."),
                }
            }
            Err(e) => unavailable(&e.to_string()),
        }
    }
}

fn page(status: u16, title: &str, body: &str) -> Response {
    Response::html(
        status,
        format!(
            r#"<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex"><title>{t}</title><link rel="stylesheet" href="/style.css"></head><body><main><div class="card"><h1>{t}</h1>{body}</div></main></body></html>"#,
            t = esc(title),
        ),
    )
    .with("Cache-Control", "no-store")
    .with("Referrer-Policy", "no-referrer")
}

fn unknown() -> Response {
    page(
        404,
        "リンクが見つかりません / Link not found",
        "<p>このリンクはありません。アドレスを確かめてください。<br>There is no such link; check the address.</p>",
    )
}

fn gone(text: &str) -> Response {
    page(
        410,
        "ダウンロードできません / Not available",
        &format!("<p>{text}</p>"),
    )
}

fn locked() -> Response {
    page(
        403,
        "ダウンロードできません / Not available",
        "<p>パスワードの誤りが多すぎるため、このリンクは使えなくなりました。送信者にお問い合わせください。<br>Too many wrong passwords: this link no longer works. Ask the sender.</p>",
    )
}

fn unavailable(why: &str) -> Response {
    ping32dlp::service::log_event(
        "ping32dlp-console",
        "link_error",
        &[],
        &format!("download not served: {why}"),
    );
    page(
        503,
        "しばらくしてからお試しください / Try again later",
        "<p>ただいまダウンロードできません。<br>Downloads are not available just now.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_check(f: impl Fn(&mut crate::Config)) -> Result<(), String> {
        let mut c = crate::Config::default();
        f(&mut c);
        c.check()
    }

    #[test]
    fn the_download_listener_is_its_own_and_needs_tls_off_loopback() {
        let e = config_check(|c| c.download_listen = Some("0.0.0.0:8443".into())).unwrap_err();
        assert!(e.contains("in the clear"), "{e}");
        config_check(|c| c.download_listen = Some("127.0.0.1:8443".into())).unwrap();
        config_check(|c| {
            c.download_listen = Some("0.0.0.0:8443".into());
            c.download_behind_tls_proxy = true;
        })
        .unwrap();
        let e = config_check(|c| c.download_listen = Some("127.0.0.1:8025".into())).unwrap_err();
        assert!(e.contains("of their own"), "{e}");
        assert!(config_check(|c| c.download_listen = Some("dl.example:8443".into())).is_err());
        assert!(config_check(|c| c.download_tls_cert = Some("x.pem".into())).is_err());
    }

    #[test]
    fn only_download_addresses_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let wf = Workflow::open(ping32dlp::workflow::WorkflowConfig::new(dir.path())).unwrap();
        let d = Downloads::new(Arc::new(wf));
        let get = |method: &str, path: &str| {
            d.handle(&Request {
                method: method.into(),
                path: path.into(),
                query: Vec::new(),
                headers: Vec::new(),
                body: Vec::new(),
                peer: "192.0.2.1".parse().unwrap(),
            })
            .status
        };
        for p in [
            "/",
            "/login",
            "/requests",
            "/audit",
            "/agent/v1/enrol",
            "/links/1",
            "/d",
        ] {
            assert_eq!(get("GET", p), 404, "{p}");
        }
        assert_eq!(get("GET", &format!("/d/{}", "a".repeat(48))), 404);
        assert_eq!(get("GET", "/d/../../etc/passwd"), 404);
        assert_eq!(get("POST", &format!("/d/{}", "b".repeat(48))), 404);
        assert_eq!(get("DELETE", &format!("/d/{}", "b".repeat(48))), 405);
        assert_eq!(get("GET", "/style.css"), 200);
    }

    #[test]
    fn file_names_are_safe_in_the_header() {
        let r = Response::download("見積書 \"1\".xlsx", Vec::new());
        let d = &r.headers[1].1;
        assert!(d.starts_with("attachment; filename=\"_____1_.xlsx\"; filename*=UTF-8''"));
        assert!(!d.contains(['\r', '\n']));
        assert!(d.ends_with("%22.xlsx"));
    }
}
