//! HTML building blocks: escaping, the page frame, badges, sizes and times, and server-rendered
//! SVG bar charts (no scripts, no inline styles: the CSP allows neither).

use std::fmt::Write as _;

use crate::auth::{Role, Session};
use crate::i18n::{t, Lang};

pub use ping32dlp::text::html_escape as esc;

/// A grey paragraph (nothing to show, hints).
pub fn muted(text: &str) -> String {
    format!(r#"<p class="muted">{}</p>"#, esc(text))
}

/// `<table>` and its header row.
pub fn table_head(headers: &[&str]) -> String {
    let mut o = String::from("<table><tr>");
    for h in headers {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr>");
    o
}

/// A local time `2026-11-28 18:40` from seconds.
pub fn time(secs: i64, offset_min: i32) -> String {
    local(secs, offset_min, 16)
}

/// A local time with seconds, `2026-11-28 18:40:12`.
pub fn time_s(secs: i64, offset_min: i32) -> String {
    local(secs, offset_min, 19)
}

fn local(secs: i64, offset_min: i32, len: usize) -> String {
    let s = ping32dlp::timeutil::rfc3339(secs, offset_min);
    s.get(..len).unwrap_or(&s).replace('T', " ")
}

/// `12.3 KB`.
pub fn size(n: u64) -> String {
    match n {
        n if n < 1024 => format!("{n} B"),
        n if n < 1024 * 1024 => format!("{:.1} KB", n as f64 / 1024.0),
        n if n < 1024 * 1024 * 1024 => format!("{:.1} MB", n as f64 / 1024.0 / 1024.0),
        n => format!("{:.1} GB", n as f64 / 1024.0 / 1024.0 / 1024.0),
    }
}

/// `3h 20m` left (or `expired`).
pub fn left(l: Lang, secs: i64) -> String {
    if secs <= 0 {
        return t(l, "expired").into();
    }
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let unit = |n: i64, ja: &str, en: &str| match l {
        Lang::Ja => format!("{n}{ja}"),
        Lang::En => format!("{n}{en}"),
    };
    let s = if d > 0 {
        format!("{} {}", unit(d, "日", "d"), unit(h, "時間", "h"))
    } else if h > 0 {
        format!("{} {}", unit(h, "時間", "h"), unit(m, "分", "m"))
    } else {
        unit(m.max(1), "分", "m")
    };
    match l {
        Lang::Ja => format!("残り {s}"),
        Lang::En => format!("{s} left"),
    }
}

/// A coloured badge for a state or action (`pending`, `released`, `block`, ...).
pub fn badge(l: Lang, what: &str) -> String {
    let class = match what {
        "pending" => "b-pending",
        "approved" | "released" | "allow" => "b-ok",
        "rejected" | "discarded" | "block" => "b-bad",
        "expired" => "b-muted",
        "hold" | "delay" => "b-hold",
        "alert" | "tag" | "bcc" => "b-warn",
        _ => "b-info",
    };
    format!(r#"<span class="badge {class}">{}</span>"#, esc(t(l, what)))
}

/// The page frame: head, top bar with navigation and sign-out, then `body`.
pub fn page(l: Lang, title: &str, s: Option<&Session>, active: &str, body: &str) -> String {
    let mut o = String::with_capacity(body.len() + 2048);
    let _ = write!(
        o,
        r#"<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · ping32dlp</title><link rel="stylesheet" href="/style.css"></head><body><header class="top"><a class="brand" href="/">ping32dlp <span>{console}</span></a><nav>"#,
        lang = l.code(),
        title = esc(title),
        console = esc(t(l, "DLP console")),
    );
    if let Some(s) = s {
        let mut link = |href: &str, key: &str, label: &str| {
            let cls = if key == active { " class=\"on\"" } else { "" };
            let _ = write!(o, r#"<a href="{href}"{cls}>{}</a>"#, esc(t(l, label)));
        };
        link("/requests", "requests", "Requests");
        if s.role == Role::Admin {
            link("/audit", "audit", "Audit log");
            link("/reports", "reports", "Reports");
        }
        if s.role == Role::Admin && s.departments.is_none() {
            link("/dashboard", "dashboard", "Dashboard");
            link("/agents", "agents", "Agents");
            link("/admin-log", "admin-log", "Admin log");
        }
        let _ = write!(
            o,
            r#"</nav><div class="who"><span>{user}</span> <span class="role">{role}</span><form method="post" action="/logout"><input type="hidden" name="csrf" value="{csrf}"><button class="link">{out}</button></form></div>"#,
            user = esc(&s.user),
            role = esc(t(
                l,
                if s.role == Role::Admin {
                    "admin"
                } else {
                    "approver"
                }
            )),
            csrf = esc(&s.csrf),
            out = esc(t(l, "Sign out")),
        );
    } else {
        o.push_str("</nav>");
    }
    let _ = write!(o, "</header><main>{body}</main></body></html>");
    o
}

/// A message box (`ok`, `error`, `info`).
pub fn notice(kind: &str, text: &str) -> String {
    format!(r#"<p class="notice n-{kind}">{}</p>"#, esc(text))
}

/// Horizontal bars: one row per (label, value), as `<meter>` elements scaled to the largest
/// value (native bars: no script, no inline style).
pub fn hbars(rows: &[(String, u64)], class: &str, empty: &str) -> String {
    if rows.is_empty() {
        return muted(empty);
    }
    let max = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1);
    let mut o = format!(r#"<table class="bars {class}">"#);
    for (label, v) in rows {
        let _ = write!(
            o,
            r#"<tr><td class="lbl" title="{l}">{l}</td><td class="meter"><meter min="0" max="{max}" value="{v}" title="{l}: {v}">{v}</meter></td><td class="num">{v}</td></tr>"#,
            l = esc(label),
        );
    }
    o.push_str("</table>");
    o
}

/// Vertical bars per day over the whole period (days without mail are zero): all mail and
/// mail to outside. `days`: (date, mails, external) from the store; `period`: every date.
pub fn day_bars(days: &[(String, u64, u64)], period: &[String], l: Lang) -> String {
    let total: u64 = days.iter().map(|d| d.1).sum();
    if total == 0 {
        return muted(t(l, "No mail in this period."));
    }
    let get = |d: &str| {
        days.iter()
            .find(|x| x.0 == d)
            .map_or((0, 0), |x| (x.1, x.2))
    };
    let max = days.iter().map(|d| d.1).max().unwrap_or(1).max(1);
    let n = period.len().max(1);
    let (w, h, base, left) = (1000.0, 190.0, 160.0, 44.0);
    let slot = (w - left) / n as f64;
    let bw = (slot * 0.72).clamp(1.0, 40.0);
    let mut o = format!(
        r#"<svg class="chart days" viewBox="0 0 {w} {h}" width="100%" role="img"><text x="{tx}" y="24" class="val" text-anchor="end">{max}</text><text x="{tx}" y="{base}" class="val" text-anchor="end">0</text><line x1="{left}" y1="20" x2="{w}" y2="20" class="grid"/><line x1="{left}" y1="{base}" x2="{w}" y2="{base}" class="axis"/>"#,
        tx = left - 6.0,
    );
    for (i, day) in period.iter().enumerate() {
        let (total, ext) = get(day);
        let x = left + i as f64 * slot + (slot - bw) / 2.0;
        let th = total as f64 / max as f64 * (base - 20.0);
        let eh = ext as f64 / max as f64 * (base - 20.0);
        let _ = write!(
            o,
            r#"<rect x="{x:.1}" y="{ty:.1}" width="{bw:.1}" height="{th:.1}" class="bar"><title>{day}: {total} / {extl} {ext}</title></rect><rect x="{x:.1}" y="{ey:.1}" width="{bw:.1}" height="{eh:.1}" class="bar-ext"><title>{day}: {extl} {ext}</title></rect>"#,
            ty = base - th,
            ey = base - eh,
            extl = esc(t(l, "external")),
        );
        if n <= 10 || i % n.div_ceil(10) == 0 || i == n - 1 {
            let _ = write!(
                o,
                r#"<text x="{cx:.1}" y="{ly}" class="lbl" text-anchor="middle">{d}</text>"#,
                cx = x + bw / 2.0,
                ly = base + 18.0,
                d = esc(day.get(5..).unwrap_or(day)),
            );
        }
    }
    o.push_str("</svg>");
    let _ = write!(
        o,
        r#"<p class="legend"><span class="key k-all"></span>{} <span class="key k-ext"></span>{}</p>"#,
        esc(t(l, "all mail")),
        esc(t(l, "external")),
    );
    o
}

/// The style sheet (served as `/style.css`).
pub const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font-family:"Noto Sans CJK JP","Hiragino Sans","Yu Gothic UI","Meiryo",system-ui,sans-serif;font-size:14px;color:#1d2433;background:#f3f5f9}
a{color:#1f5fbf;text-decoration:none}a:hover{text-decoration:underline}
.top{display:flex;align-items:center;gap:24px;background:#16233a;color:#fff;padding:0 20px;height:48px}
.brand{color:#fff;font-weight:700;font-size:16px}.brand span{font-weight:400;opacity:.7;margin-left:6px}
.top nav{display:flex;gap:4px;flex:1}.top nav a{color:#c9d4e8;padding:14px 12px}.top nav a.on{color:#fff;border-bottom:3px solid #4f9cff}
.who{display:flex;align-items:center;gap:8px;color:#c9d4e8}.who form{margin:0}
.role{background:#2c3d5c;border-radius:10px;padding:1px 8px;font-size:12px}
button.link{background:none;border:none;color:#9fc3ff;cursor:pointer;font:inherit}
main{padding:20px;max-width:1280px;margin:0 auto}
h1{font-size:20px;margin:4px 0 14px}h2{font-size:15px;margin:0 0 10px;color:#344057}
.card{background:#fff;border:1px solid #dde3ec;border-radius:8px;padding:16px;margin-bottom:16px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px}
.grid .card{margin-bottom:0}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:7px 8px;border-bottom:1px solid #edf0f5;vertical-align:top}
th{font-size:12px;color:#5b6780;font-weight:600;background:#f8f9fc}
tr.row:hover{background:#f5f8ff}
dl.kv{display:grid;grid-template-columns:110px 1fr;gap:6px 12px;margin:0}dl.kv dt{color:#5b6780}dl.kv dd{margin:0;word-break:break-all}
.badge{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600;white-space:nowrap}
.b-pending{background:#fff1c2;color:#7a5a00}.b-ok{background:#d9f5e3;color:#146c37}.b-bad{background:#fde0e0;color:#a11d1d}
.b-muted{background:#e6e9ef;color:#55607a}.b-hold{background:#ffe3c7;color:#8a4500}.b-warn{background:#fff0d6;color:#8a5a00}.b-info{background:#e3edff;color:#1f4d99}
.ext{background:#fde0e0;color:#a11d1d;border-radius:4px;padding:0 4px;font-weight:600}
.tag-ext{white-space:nowrap;font-size:11px;background:#a11d1d;color:#fff;border-radius:3px;padding:0 4px;margin-left:4px}
.int{color:#146c37}
.nowrap{white-space:nowrap}.muted{color:#7a859b}.small{font-size:12px}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.notice{padding:10px 14px;border-radius:6px;margin:0 0 14px}.n-ok{background:#d9f5e3}.n-error{background:#fde0e0}.n-info{background:#e3edff}
.decide textarea{width:100%;min-height:70px;font:inherit;padding:8px;border:1px solid #c7cfdc;border-radius:6px}
.buttons{display:flex;gap:10px;margin-top:10px}
.btn{border:none;border-radius:6px;padding:9px 22px;font:inherit;font-weight:700;cursor:pointer;color:#fff}
.btn-approve{background:#1d8a4a}.btn-reject{background:#c0392b}.btn-plain{background:#1f5fbf}
.head{display:flex;align-items:center;gap:12px;flex-wrap:wrap;margin-bottom:14px}.head h1{margin:0}
.why li{margin-bottom:4px}
pre.preview{white-space:pre-wrap;word-break:break-all;background:#fbfcfe;border:1px solid #e2e7ef;border-radius:6px;padding:12px;max-height:70vh;overflow:auto;font-size:13px}
form.filters{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:8px 12px;align-items:end}
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#5b6780;gap:3px}
input,select{font:inherit;padding:6px 8px;border:1px solid #c7cfdc;border-radius:6px}
.login{max-width:380px;margin:60px auto}.login label{display:flex;flex-direction:column;gap:4px;margin-bottom:12px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin-bottom:16px}
.tile{background:#fff;border:1px solid #dde3ec;border-radius:8px;padding:12px 16px}.tile b{display:block;font-size:24px}.tile span{color:#5b6780;font-size:12px}
.tabs{display:flex;gap:6px;margin-bottom:12px}.tabs a{padding:5px 12px;border-radius:14px;background:#e6ebf3;color:#344057}.tabs a.on{background:#1f5fbf;color:#fff}
svg.chart .bar{fill:#4f7fd6}svg.chart .bar-ext{fill:#e0584a}svg.chart .lbl{font-size:13px;fill:#5b6780}svg.chart .val{font-size:13px;fill:#5b6780}svg.chart .axis{stroke:#9aa6bb}svg.chart .grid{stroke:#e6eaf1;stroke-dasharray:4 4}
.legend{margin:4px 0 0;font-size:12px;color:#5b6780}.key{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 12px}.k-all{background:#4f7fd6}.k-ext{background:#e0584a}
table.bars td{border:none;padding:3px 6px}table.bars td.lbl{max-width:190px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}table.bars td.meter{width:55%}table.bars td.num{text-align:right;font-weight:600;width:48px}
meter{width:100%;height:14px;-webkit-appearance:none;appearance:none;background:#edf0f5;border-radius:3px}
meter::-webkit-meter-bar{background:#edf0f5;border:none;border-radius:3px;height:14px}
meter::-webkit-meter-optimum-value,meter::-webkit-meter-suboptimum-value,meter::-webkit-meter-even-less-good-value{background:#4f7fd6;border-radius:3px}
meter::-moz-meter-bar{background:#4f7fd6}
.red meter::-webkit-meter-optimum-value{background:#e0584a}.red meter::-moz-meter-bar{background:#e0584a}
.green meter::-webkit-meter-optimum-value{background:#2f9e5f}.green meter::-moz-meter-bar{background:#2f9e5f}
.amber meter::-webkit-meter-optimum-value{background:#e39b2d}.amber meter::-moz-meter-bar{background:#e39b2d}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_formatting() {
        assert_eq!(
            esc("<a href='x'>&\"</a>\u{0}"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;\u{FFFD}"
        );
        assert_eq!(size(1536), "1.5 KB");
        assert_eq!(time(0, 540), "1970-01-01 09:00");
        assert_eq!(time_s(61, 540), "1970-01-01 09:01:01");
        assert_eq!(left(Lang::En, 3 * 3600 + 20 * 60), "3h 20m left");
        assert_eq!(left(Lang::Ja, 90_000), "残り 1日 1時間");
        assert!(hbars(&[("<x>".into(), 3)], "", "none").contains("&lt;x&gt;"));
        let period: Vec<String> = (1..=30).map(|d| format!("2026-11-{d:02}")).collect();
        let svg = day_bars(&[("2026-11-28".into(), 4, 1)], &period, Lang::En);
        assert_eq!(svg.matches("class=\"bar\"").count(), 30);
        assert!(svg.contains("2026-11-28: 4 / external 1"));
        assert!(day_bars(&[], &period, Lang::En).contains("No mail"));
    }
}
