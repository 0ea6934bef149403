//! `GET /links/<record>`: a mail's download links and who downloaded them. The sender reaches
//! it from the notice mailed when the links were made (`?t=`: an HMAC over the record id, so
//! no sign-in); administrators reach it signed in (written to the admin log).

use std::fmt::Write as _;

use super::{App, Cx, Res};
use crate::html::{self, esc, page};
use crate::http::Response;
use crate::i18n::t;

impl App {
    pub(super) fn links_page(&self, cx: &Cx, id: &str) -> Res {
        let l = cx.l;
        let Ok(record) = id.parse::<i64>() else {
            return Err(self.error(cx, 404, "There is no such page."));
        };
        let wf = self.pipeline.workflow();
        let by_token = cx
            .req
            .q("t")
            .is_some_and(|tok| wf.verify_links_page_token(record, tok));
        let session = if by_token {
            None
        } else {
            let s = self.need(cx, true)?;
            if s.departments.is_some() {
                return Err(self.error(cx, 403, "Not allowed"));
            }
            self.admin_log(cx, &s, "links_view", &record.to_string(), "")?;
            Some(s)
        };
        let (links, events) = wf
            .store()
            .links_of(record)
            .map_err(|e| self.internal(cx, e))?;
        if links.is_empty() {
            return Err(self.error(cx, 404, "There is no such page."));
        }
        let off = self.offset();
        let mut o = format!(
            r#"<div class="head"><h1>{}</h1><span class="muted">{} {record}</span></div><div class="card">"#,
            esc(t(l, "Download links")),
            esc(t(l, "Record")),
        );
        o.push_str(&html::table_head(&[
            t(l, "File"),
            t(l, "Size"),
            t(l, "Downloads"),
            t(l, "Expires"),
        ]));
        for k in &links {
            let limit = if k.max_downloads == 0 {
                k.downloads.to_string()
            } else {
                format!("{} / {}", k.downloads, k.max_downloads)
            };
            let _ = write!(
                o,
                r#"<tr class="row"><td class="mono">{}</td><td class="small">{}</td><td>{}</td><td class="small">{}</td></tr>"#,
                esc(&k.name),
                k.size,
                esc(&limit),
                esc(&html::time_s(k.expires, off)),
            );
        }
        o.push_str("</table></div><div class=\"card\">");
        let _ = write!(o, "<h2>{}</h2>", esc(t(l, "Who downloaded")));
        if events.is_empty() {
            o.push_str(&html::muted(t(l, "Nothing yet.")));
        } else {
            o.push_str(&html::table_head(&[
                t(l, "Time"),
                t(l, "File"),
                t(l, "From"),
                t(l, "Outcome"),
            ]));
            for e in &events {
                let _ = write!(
                    o,
                    r#"<tr class="row"><td class="small">{}</td><td class="mono">{}</td><td class="small">{}</td><td>{}</td></tr>"#,
                    esc(&html::time_s(e.time, off)),
                    esc(&e.name),
                    esc(&e.client),
                    esc(t(l, &e.outcome)),
                );
            }
            o.push_str("</table>");
        }
        o.push_str("</div>");
        Ok(Response::html(
            200,
            page(l, t(l, "Download links"), session.as_ref(), "", &o),
        )
        .with("Cache-Control", "no-store")
        .with("Referrer-Policy", "no-referrer"))
    }
}
