//! `GET /reports`: the risk of each sender over a window with what makes it up, and counts per
//! department; `GET /reports/senders.csv` and `/reports/departments.csv` for Excel. Admins
//! limited to departments see their departments' mail only.

use std::fmt::Write as _;

use ping32dlp::timeutil;
use ping32dlp::workflow::report;

use super::{App, Cx, Res};
use crate::html::{self, esc, page};
use crate::http::Response;
use crate::i18n::t;

impl App {
    /// The window of `?days=7|30|90` (7 by default).
    fn report_window(cx: &Cx) -> (i64, i64, i64) {
        let days = match cx.req.q("days") {
            Some("30") => 30,
            Some("90") => 90,
            _ => 7,
        };
        let now = timeutil::now();
        (now - days * 86_400, now + 1, days)
    }

    pub(super) fn reports_page(&self, cx: &Cx) -> Res {
        let s = self.need(cx, true)?;
        let l = cx.l;
        let (since, until, days) = Self::report_window(cx);
        self.admin_log(cx, &s, "report_view", "", &format!("days={days}"))?;
        let r = report::build(
            &**self.pipeline.workflow().store(),
            since,
            until,
            s.departments.as_deref(),
        )
        .map_err(|e| self.internal(cx, e))?;
        let mut o = format!(
            r#"<div class="head"><h1>{}</h1><span class="muted">{} {}</span></div><form method="get" action="/reports" class="filters"><label>{}<select name="days">"#,
            esc(t(l, "Reports")),
            days,
            esc(t(l, "days")),
            esc(t(l, "Period")),
        );
        for d in [7, 30, 90] {
            let _ = write!(
                o,
                r#"<option value="{d}"{}>{d} {}</option>"#,
                if d == days { " selected" } else { "" },
                esc(t(l, "days"))
            );
        }
        let _ = write!(
            o,
            r#"</select></label><button class="btn btn-plain">{}</button> <a href="/reports/senders.csv?days={days}">{}</a> · <a href="/reports/departments.csv?days={days}">{}</a></form>"#,
            esc(t(l, "Show")),
            esc(t(l, "Senders (CSV for Excel)")),
            esc(t(l, "Departments (CSV for Excel)")),
        );
        o.push_str(&format!(
            r#"<div class="card"><h2>{}</h2>"#,
            esc(t(l, "By department"))
        ));
        if r.departments.is_empty() {
            o.push_str(&html::muted(t(l, "Nothing yet.")));
        } else {
            o.push_str(&html::table_head(&[
                t(l, "Department"),
                t(l, "Mails"),
                t(l, "External"),
                t(l, "Held"),
                t(l, "Blocked"),
                t(l, "Senders"),
                t(l, "Files sent outside most"),
            ]));
            for d in &r.departments {
                let _ = write!(
                    o,
                    r#"<tr class="row"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="small">{}</td></tr>"#,
                    esc(&d.department),
                    d.mails,
                    d.external,
                    d.held,
                    d.blocked,
                    d.senders,
                    esc(&d.top_files_text(", ")),
                );
            }
            o.push_str("</table>");
        }
        let _ = write!(
            o,
            r#"</div><div class="card"><h2>{}</h2><p class="muted small">{}</p>"#,
            esc(t(l, "Risk by sender")),
            esc(t(
                l,
                "The highest risk of one of the sender's mails, plus 10 per blocked mail (up to 3), 5 per held mail (up to 4) and 2 per alert (up to 5); at most 100."
            )),
        );
        if r.senders.is_empty() {
            o.push_str(&html::muted(t(l, "Nothing yet.")));
        } else {
            o.push_str(&html::table_head(&[
                t(l, "Sender"),
                t(l, "Department"),
                t(l, "Risk"),
                t(l, "Mails"),
                t(l, "External"),
                t(l, "Held"),
                t(l, "Blocked"),
                t(l, "Why"),
            ]));
            for x in r.senders.iter().take(200) {
                let _ = write!(
                    o,
                    r#"<tr class="row"><td><a href="/audit?sender={q}&amp;since={days}d">{}</a></td><td>{}</td><td><span class="badge {cls}">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="small">{}</td></tr>"#,
                    esc(&x.sender),
                    esc(x.department.as_deref().unwrap_or("-")),
                    x.risk,
                    x.mails,
                    x.external,
                    x.held,
                    x.blocked,
                    esc(&x.why.join("; ")),
                    q = ping32dlp::text::percent_encode(&x.sender),
                    cls = if x.risk >= 60 {
                        "b-bad"
                    } else if x.risk >= 30 {
                        "b-warn"
                    } else {
                        "b-info"
                    },
                );
            }
            o.push_str("</table>");
        }
        o.push_str("</div>");
        Ok(Response::html(
            200,
            page(l, t(l, "Reports"), Some(&s), "reports", &o),
        ))
    }

    /// `GET /reports/senders.csv` / `departments.csv`: UTF-8 with a BOM (`?encoding=cp932` for
    /// Shift_JIS), as Japanese Excel opens it.
    pub(super) fn reports_csv(&self, cx: &Cx, which: &str) -> Res {
        let s = self.need(cx, true)?;
        let (since, until, days) = Self::report_window(cx);
        let encoding = match cx.req.q("encoding") {
            Some("cp932") => "cp932",
            _ => "utf-8-bom",
        };
        self.admin_log(
            cx,
            &s,
            "report_export",
            which,
            &format!("days={days} encoding={encoding}"),
        )?;
        let r = report::build(
            &**self.pipeline.workflow().store(),
            since,
            until,
            s.departments.as_deref(),
        )
        .map_err(|e| self.internal(cx, e))?;
        let text = if which == "departments" {
            r.departments_csv()
        } else {
            r.senders_csv()
        };
        let day: String = timeutil::rfc3339(until, self.offset())
            .chars()
            .take(10)
            .collect();
        Ok(Response {
            status: 200,
            headers: vec![
                (
                    "Content-Type".into(),
                    format!(
                        "text/csv; charset={}",
                        if encoding == "cp932" {
                            "Shift_JIS"
                        } else {
                            "UTF-8"
                        }
                    ),
                ),
                (
                    "Content-Disposition".into(),
                    format!("attachment; filename=\"{which}-{day}.csv\""),
                ),
            ],
            body: report::csv_bytes(&text, encoding).unwrap_or_default(),
        })
    }
}
