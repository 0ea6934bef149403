//! The admin log: every search, export, view of a message, a record or an attachment, and
//! every policy or fleet change made in the console is written to the store's `admin_actions`
//! before it is carried out (a log that cannot be written refuses the action), and shown to
//! administrators on `GET /admin-log`.

use std::fmt::Write as _;

use super::{App, Cx, Res};
use crate::auth::Session;
use crate::html::{self, esc, page};
use crate::http::Response;
use crate::i18n::t;

/// Rows shown on the page.
const PAGE_ROWS: usize = 500;

impl App {
    /// Writes `action` on `target` by the session's user to the admin log; on failure the
    /// caller must not carry the action out (503 with the reason in the server's log).
    pub(super) fn admin_log(
        &self,
        cx: &Cx,
        s: &Session,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), Response> {
        self.pipeline
            .workflow()
            .log_admin(&s.user, action, target, detail, &cx.req.peer.to_string())
            .map_err(|e| {
                ping32dlp::service::log_event(
                    "ping32dlp-console",
                    "admin_log_error",
                    &[("actor", &s.user), ("action", &action)],
                    &format!("admin log not written, action refused: {e}"),
                );
                self.error(
                    cx,
                    503,
                    "The admin log cannot be written just now, so this was not done. Try again later.",
                )
            })
    }

    /// The query of the request as `key=value` pairs (what a search asked for).
    pub(super) fn query_detail(cx: &Cx) -> String {
        cx.req
            .query
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", v.trim()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `GET /admin-log[?actor=NAME]`: the newest admin actions (administrators only).
    pub(super) fn admin_log_page(&self, cx: &Cx) -> Res {
        let s = self.need(cx, true)?;
        let l = cx.l;
        let actor = cx
            .req
            .q("actor")
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty());
        self.admin_log(
            cx,
            &s,
            "admin_log_view",
            actor.as_deref().unwrap_or("*"),
            "",
        )?;
        let rows = self
            .pipeline
            .workflow()
            .store()
            .admin_actions(actor.as_deref(), PAGE_ROWS)
            .map_err(|e| self.internal(cx, e))?;
        let off = self.offset();
        let mut o = format!(
            r#"<div class="head"><h1>{}</h1><span class="muted">{}</span></div><form method="get" action="/admin-log" class="filters"><label>{}<input name="actor" value="{}"></label><button>{}</button></form><div class="card">"#,
            esc(t(l, "Admin log")),
            rows.len(),
            esc(t(l, "Administrator")),
            esc(actor.as_deref().unwrap_or("")),
            esc(t(l, "Search")),
        );
        if rows.is_empty() {
            o.push_str(&html::muted(t(l, "Nothing yet.")));
        } else {
            o.push_str(&html::table_head(&[
                t(l, "Time"),
                t(l, "Administrator"),
                t(l, "Action"),
                t(l, "Target"),
                t(l, "Detail"),
                t(l, "From"),
            ]));
            for r in &rows {
                let _ = write!(
                    o,
                    r#"<tr class="row"><td class="small">{}</td><td><a href="/admin-log?actor={}">{}</a></td><td>{}</td><td class="mono small">{}</td><td class="small">{}</td><td class="small muted">{}</td></tr>"#,
                    esc(&html::time_s(r.time, off)),
                    ping32dlp::text::percent_encode(&r.actor),
                    esc(&r.actor),
                    esc(t(l, &r.action)),
                    esc(&r.target),
                    esc(&r.detail),
                    esc(&r.client),
                );
            }
            o.push_str("</table>");
        }
        o.push_str("</div>");
        Ok(Response::html(
            200,
            page(l, t(l, "Admin log"), Some(&s), "admin-log", &o),
        ))
    }
}
