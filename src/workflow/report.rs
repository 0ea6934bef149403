//! Reports over a window of the audit trail: a risk score per sender that says what made it,
//! and counts per department (external mails, holds, blocks, top files), as tables, CSV that
//! Japanese Excel opens, and a self-contained HTML page (the weekly mail to admins).
//!
//! The sender's risk is explainable by construction: the highest risk of one of their mails in
//! the window (the policy's own score, with that mail's rules), plus fixed steps for what the
//! policy did to their mail (blocks, holds, alerts), capped at 100. Every part is listed.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{AuditRecord, Result, Store};

/// Points added per blocked mail (at most three count).
const PER_BLOCK: u32 = 10;
/// Points per held mail (at most four count).
const PER_HOLD: u32 = 5;
/// Points per alert (at most five count).
const PER_ALERT: u32 = 2;

/// One sender over the window.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct SenderRisk {
    /// Envelope sender.
    pub sender: String,
    /// Their department (from the directory, of their newest mail that had one).
    pub department: Option<String>,
    /// Mails.
    pub mails: u64,
    /// Mails with an external recipient.
    pub external: u64,
    /// Held for approval.
    pub held: u64,
    /// Blocked.
    pub blocked: u64,
    /// Sent with an alert.
    pub alerts: u64,
    /// Risk, 0 to 100.
    pub risk: u32,
    /// What makes up the risk, in words.
    pub why: Vec<String>,
    /// The mail with the highest risk: (record id, its risk, its matched rules).
    pub riskiest: Option<(i64, u32, Vec<String>)>,
}

/// One department over the window (`(none)` for mail without one).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DepartmentReport {
    /// Department.
    pub department: String,
    /// Mails.
    pub mails: u64,
    /// Mails with an external recipient.
    pub external: u64,
    /// Held for approval.
    pub held: u64,
    /// Blocked.
    pub blocked: u64,
    /// Senders.
    pub senders: u64,
    /// Files sent outside most often: (name, times).
    pub top_files: Vec<(String, u64)>,
}

impl DepartmentReport {
    /// The top files as `name (times)`, joined by `sep` (for the CSV, the HTML and the console).
    pub fn top_files_text(&self, sep: &str) -> String {
        self.top_files
            .iter()
            .map(|(n, k)| format!("{n} ({k})"))
            .collect::<Vec<_>>()
            .join(sep)
    }
}

/// Reports over `since .. until`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reports {
    /// From (Unix seconds).
    pub since: i64,
    /// Until (exclusive).
    pub until: i64,
    /// Senders, riskiest first.
    pub senders: Vec<SenderRisk>,
    /// Departments, most external mail first.
    pub departments: Vec<DepartmentReport>,
}

/// A department while counting: its row, files sent outside (name, times), its senders.
type DepartmentTally = (DepartmentReport, HashMap<String, u64>, Vec<String>);

/// The department name used for mail without one.
pub const NO_DEPARTMENT: &str = "(none)";

/// Builds the reports from every record in the window; `departments` limits them to mail of
/// those departments (an admin limited to departments).
pub fn build(
    store: &dyn Store,
    since: i64,
    until: i64,
    departments: Option<&[String]>,
) -> Result<Reports> {
    let mut senders: HashMap<String, (SenderRisk, i64)> = HashMap::new();
    let mut depts: BTreeMap<String, DepartmentTally> = BTreeMap::new();
    store.each_record(since, &mut |r: AuditRecord| {
        if r.time >= until {
            return;
        }
        if let Some(ds) = departments {
            if !r.department.as_ref().is_some_and(|d| ds.contains(d)) {
                return;
            }
        }
        let external = r.external();
        let (s, newest) = senders.entry(r.sender.clone()).or_insert_with(|| {
            (
                SenderRisk {
                    sender: r.sender.clone(),
                    ..SenderRisk::default()
                },
                i64::MIN,
            )
        });
        s.mails += 1;
        s.external += u64::from(external);
        match r.action.as_str() {
            "block" => s.blocked += 1,
            "hold" => s.held += 1,
            "alert" => s.alerts += 1,
            _ => {}
        }
        if r.department.is_some() && r.time >= *newest {
            s.department = r.department.clone();
            *newest = r.time;
        }
        if s.riskiest
            .as_ref()
            .is_none_or(|(_, risk, _)| r.risk > *risk)
        {
            s.riskiest = Some((
                r.id,
                r.risk,
                r.matched.iter().map(|m| m.rule.clone()).collect(),
            ));
        }
        let name = r
            .department
            .clone()
            .unwrap_or_else(|| NO_DEPARTMENT.to_string());
        let (d, files, who) = depts.entry(name.clone()).or_insert_with(|| {
            (
                DepartmentReport {
                    department: name,
                    ..DepartmentReport::default()
                },
                HashMap::new(),
                Vec::new(),
            )
        });
        d.mails += 1;
        d.external += u64::from(external);
        d.held += u64::from(r.action == "hold");
        d.blocked += u64::from(r.action == "block");
        if !who.contains(&r.sender) {
            who.push(r.sender.clone());
        }
        if external {
            for a in r.attachments.iter().filter(|a| a.depth == 0) {
                *files.entry(a.name.clone()).or_default() += 1;
            }
        }
    })?;
    let mut senders: Vec<SenderRisk> = senders
        .into_values()
        .map(|(mut s, _)| {
            score(&mut s);
            s
        })
        .collect();
    senders.sort_by(|a, b| {
        b.risk
            .cmp(&a.risk)
            .then(b.external.cmp(&a.external))
            .then(a.sender.cmp(&b.sender))
    });
    let mut departments: Vec<DepartmentReport> = depts
        .into_values()
        .map(|(mut d, files, who)| {
            d.senders = who.len() as u64;
            let mut f: Vec<(String, u64)> = files.into_iter().collect();
            f.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            f.truncate(5);
            d.top_files = f;
            d
        })
        .collect();
    departments.sort_by(|a, b| {
        b.external
            .cmp(&a.external)
            .then(a.department.cmp(&b.department))
    });
    Ok(Reports {
        since,
        until,
        senders,
        departments,
    })
}

/// The sender's risk and its explanation (see the module's documentation).
fn score(s: &mut SenderRisk) {
    let mut why = Vec::new();
    let mut risk = 0u32;
    if let Some((id, r, rules)) = &s.riskiest {
        if *r > 0 {
            risk = *r;
            why.push(if rules.is_empty() {
                format!("highest mail risk {r} (record {id})")
            } else {
                format!("highest mail risk {r} (record {id}: {})", rules.join(", "))
            });
        }
    }
    let mut step = |n: u64, cap: u64, per: u32, what: &str| {
        let k = n.min(cap) as u32;
        if k > 0 {
            risk += k * per;
            why.push(format!("+{}: {n} {what}", k * per));
        }
    };
    step(s.blocked, 3, PER_BLOCK, "blocked");
    step(s.held, 4, PER_HOLD, "held for approval");
    step(s.alerts, 5, PER_ALERT, "with an alert");
    s.risk = risk.min(100);
    s.why = why;
}

/// A CSV field: quoted when needed; a leading `= + - @` is made text so that spreadsheets do
/// not run it as a formula.
pub fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// CSV text in the encoding Excel is to open: `utf-8`, `utf-8-bom` (BOM and CRLF) or `cp932`
/// (Shift_JIS with CRLF; characters it lacks as `&#NNNN;`). `None` for another name.
pub fn csv_bytes(text: &str, encoding: &str) -> Option<Vec<u8>> {
    Some(match encoding {
        "utf-8" | "utf8" => text.as_bytes().to_vec(),
        "utf-8-bom" => [
            &[0xEF, 0xBB, 0xBF][..],
            text.replace('\n', "\r\n").as_bytes(),
        ]
        .concat(),
        "cp932" | "shift_jis" => encoding_rs::SHIFT_JIS
            .encode(&text.replace('\n', "\r\n"))
            .0
            .into_owned(),
        _ => return None,
    })
}

fn line(fields: &[String]) -> String {
    let mut l = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    l.push('\n');
    l
}

impl Reports {
    /// The senders as CSV text (UTF-8, LF; see [`csv_bytes`]).
    pub fn senders_csv(&self) -> String {
        let mut o = String::from("sender,department,risk,mails,external,held,blocked,alerts,why\n");
        for s in &self.senders {
            o.push_str(&line(&[
                s.sender.clone(),
                s.department.clone().unwrap_or_default(),
                s.risk.to_string(),
                s.mails.to_string(),
                s.external.to_string(),
                s.held.to_string(),
                s.blocked.to_string(),
                s.alerts.to_string(),
                s.why.join("; "),
            ]));
        }
        o
    }

    /// The departments as CSV text.
    pub fn departments_csv(&self) -> String {
        let mut o = String::from("department,mails,external,held,blocked,senders,top_files\n");
        for d in &self.departments {
            o.push_str(&line(&[
                d.department.clone(),
                d.mails.to_string(),
                d.external.to_string(),
                d.held.to_string(),
                d.blocked.to_string(),
                d.senders.to_string(),
                d.top_files_text("; "),
            ]));
        }
        o
    }

    /// A self-contained HTML page (inline CSS only, no scripts or images): the weekly mail.
    pub fn html(&self, title: &str, utc_offset_min: i32, top_senders: usize) -> String {
        use crate::text::html_escape as esc;
        use std::fmt::Write as _;
        let day = |t: i64| {
            crate::timeutil::rfc3339(t, utc_offset_min)
                .chars()
                .take(10)
                .collect::<String>()
        };
        let mut o = format!(
            "<!DOCTYPE html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;color:#222}}table{{border-collapse:collapse;margin:8px 0 20px}}th,td{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px}}th{{background:#f2f2f2}}td.n{{text-align:right}}.hi{{color:#b00020;font-weight:bold}}</style></head><body><h1>{t}</h1><p>{} – {}</p>",
            day(self.since),
            day(self.until - 1),
            t = esc(title),
        );
        o.push_str("<h2>部署別 / By department</h2><table><tr><th>部署 Department</th><th>メール Mails</th><th>社外 External</th><th>保留 Held</th><th>ブロック Blocked</th><th>送信者 Senders</th><th>社外に多く送られたファイル Top files sent outside</th></tr>");
        for d in &self.departments {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&d.department),
                d.mails,
                d.external,
                d.held,
                d.blocked,
                d.senders,
                esc(&d.top_files_text(", ")),
            );
        }
        o.push_str("</table><h2>送信者別リスク / Risk by sender</h2><table><tr><th>送信者 Sender</th><th>部署 Department</th><th>リスク Risk</th><th>メール Mails</th><th>社外 External</th><th>保留 Held</th><th>ブロック Blocked</th><th>内訳 Why</th></tr>");
        for s in self.senders.iter().take(top_senders) {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td class=\"n{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                esc(&s.sender),
                esc(s.department.as_deref().unwrap_or("")),
                if s.risk >= 60 { " hi" } else { "" },
                s.risk,
                s.mails,
                s.external,
                s.held,
                s.blocked,
                esc(&s.why.join("; ")),
            );
        }
        o.push_str("</table></body></html>\n");
        o
    }

    /// The weekly mail: the HTML report as the body, the sender and department CSV files
    /// (in `csv_encoding`) attached. Sent with `notify_command` (`sendmail -t`), so it names
    /// its recipients.
    pub fn mail(
        &self,
        from: &str,
        to: &[String],
        utc_offset_min: i32,
        top_senders: usize,
        csv_encoding: &str,
    ) -> Vec<u8> {
        use crate::text::base64_encode_mime as b64;
        let day: String = crate::timeutil::rfc3339(self.until - 1, utc_offset_min)
            .chars()
            .take(10)
            .collect();
        let title = format!("情報漏洩対策 週次レポート / DLP weekly report {day}");
        let boundary = format!("=_ping32dlp_report_{}", crate::workflow::random_hex(12));
        let csv =
            |text: String| csv_bytes(&text, csv_encoding).unwrap_or_else(|| text.into_bytes());
        let charset = if csv_encoding == "cp932" {
            "Shift_JIS"
        } else {
            "UTF-8"
        };
        let mut o = format!(
            "From: {from}\r\nTo: {}\r\nSubject: {}\r\nAuto-Submitted: auto-generated\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
             --{boundary}\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            to.join(", "),
            crate::text::encode_header_text(&title, false),
            b64(self.html(&title, utc_offset_min, top_senders).as_bytes()),
        );
        for (name, text) in [
            ("senders", self.senders_csv()),
            ("departments", self.departments_csv()),
        ] {
            o.push_str(&format!(
                "--{boundary}\r\nContent-Type: text/csv; charset={charset}; name=\"{name}-{day}.csv\"\r\n\
                 Content-Disposition: attachment; filename=\"{name}-{day}.csv\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{}",
                b64(&csv(text))
            ));
        }
        o.push_str(&format!("--{boundary}--\r\n"));
        o.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(risk: u32, blocked: u64, held: u64, alerts: u64) -> SenderRisk {
        let mut s = SenderRisk {
            sender: "taro@example.co.jp".into(),
            blocked,
            held,
            alerts,
            riskiest: Some((7, risk, vec!["mynumber-outside".into()])),
            ..SenderRisk::default()
        };
        score(&mut s);
        s
    }

    #[test]
    fn sender_risk_says_what_makes_it_up() {
        let s = sender(45, 2, 1, 0);
        assert_eq!(s.risk, 45 + 20 + 5);
        assert_eq!(
            s.why,
            [
                "highest mail risk 45 (record 7: mynumber-outside)",
                "+20: 2 blocked",
                "+5: 1 held for approval"
            ]
        );
        // Capped per kind and at 100.
        assert_eq!(sender(0, 9, 9, 9).risk, 30 + 20 + 10);
        assert_eq!(sender(90, 9, 9, 9).risk, 100);
        assert!(sender(0, 0, 0, 0).why.is_empty());
    }

    #[test]
    fn csv_is_safe_for_excel_and_encoded_as_asked() {
        assert_eq!(csv_field("=cmd|' /C calc'!A0"), "'=cmd|' /C calc'!A0");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        let bom = csv_bytes("部署\n営業部\n", "utf-8-bom").unwrap();
        assert!(bom.starts_with(&[0xEF, 0xBB, 0xBF]) && bom.ends_with("営業部\r\n".as_bytes()));
        let sjis = csv_bytes("営業部\n", "cp932").unwrap();
        assert_eq!(sjis, b"\x89\x63\x8b\xc6\x95\x94\r\n");
        assert!(csv_bytes("x", "latin1").is_none());
    }
}
