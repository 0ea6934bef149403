//! `ping32dlp-icap`: the webmail hook. An ICAP server (RFC 3507, REQMOD) that a web proxy such as
//! Squid calls for every upload: the HTTP request body is decoded into fields and files,
//! inspected like a mail with attachments, recorded (channel `webmail`, destination host) and
//! judged. Allowed uploads go on unchanged (`204`, or the request echoed when 204 is not
//! allowed); blocked or held ones get an HTTP 403 page in Japanese and English, and the origin
//! is never contacted. What cannot be decoded is refused by default (`on_undecodable`).
//!
//! The binary is `src/main.rs`; this library is what it runs, what its tests start on loopback
//! ports and what the fuzz targets call.

#![forbid(unsafe_code)]

pub mod fragments;
pub mod icap;
pub mod upload;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ping32dlp::extract::{Reason, Unscannable};
use ping32dlp::pipeline::{Extra, Pipeline};
use ping32dlp::policy::{Action, Context, Facts, Verdict};
use ping32dlp::service;
use ping32dlp::text::html_escape;
use ping32dlp_ops::Metrics;
use serde::Deserialize;

use crate::icap::{Error, Head, HttpHead};

/// What to do with an upload that cannot be fully decoded or inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUndecodable {
    /// Refuse it with the block page, whatever the policy's mode (the default).
    Block,
    /// Let the policy decide (its `unscannable` conditions see the reasons).
    Policy,
}

/// The configuration file; paths are relative to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port.
    pub listen: String,
    /// What every integration shares (`[dlp]`): rules, policy, organisation domains, state
    /// directory, the store, this gateway's name, retention.
    pub dlp: service::DlpSettings,
    /// When an upload cannot be judged (the store is down or too slow): `block` (the block page
    /// saying inspection is unavailable; the default), `tempfail` (ICAP 500: Squid's error
    /// page, or a bypass where `bypass=on`), or `accept` (the upload goes through unjudged).
    pub fail_mode: service::FailMode,
    /// Largest request body inspected (and largest decoded size, and largest file sent in
    /// chunks); larger uploads are refused with the block page.
    pub max_body_bytes: u64,
    /// Preview size offered in OPTIONS.
    pub preview_bytes: usize,
    /// Concurrent ICAP connections.
    pub max_connections: usize,
    /// Seconds a persistent connection may stay idle between requests.
    pub idle_timeout_seconds: u64,
    /// Seconds a request head may take to arrive once it has started.
    pub head_timeout_seconds: u64,
    /// Seconds a whole request (head and body) may take.
    pub request_timeout_seconds: u64,
    /// `block` (default): an upload with content that cannot be decoded or inspected is
    /// refused; `policy`: the policy decides.
    pub on_undecodable: OnUndecodable,
    /// Reasons of the inspection report that count as "cannot be inspected" for
    /// `on_undecodable` (the hook's own decoding failures always count).
    pub undecodable_reasons: Vec<String>,
    /// A file of no known format and no text (media, proprietary formats, random data) is
    /// opaque data, not an undecodable upload: with `true` (the default) it does not trigger
    /// `on_undecodable` (the policy still sees it as true type `unknown`). Known formats that
    /// cannot be read (7z, RAR, a cut zip) always count.
    pub allow_unknown_binary: bool,
    /// Bytes of chunked uploads (`Content-Range`) held while they are put together.
    pub max_chunked_bytes: u64,
    /// Chunked uploads held at once.
    pub max_chunked_uploads: usize,
    /// Minutes a chunked upload may wait for its next chunk.
    pub chunked_idle_minutes: u64,
    /// `127.0.0.1:9703`: serve Prometheus metrics and `/healthz`, `/readyz` there (off when
    /// not given; loopback only unless `metrics_allow_remote`).
    pub metrics_listen: Option<String>,
    /// Allow `metrics_listen` on an address other than loopback.
    pub metrics_allow_remote: bool,
    /// `kv` (`key=value`, the default) or `json`: the format of the log lines on standard
    /// error (README, "Logs").
    pub log_format: service::LogFormat,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:1344".into(),
            dlp: service::DlpSettings::default(),
            fail_mode: service::FailMode::Block,
            max_body_bytes: 100 << 20,
            preview_bytes: 1024,
            max_connections: 256,
            idle_timeout_seconds: 300,
            head_timeout_seconds: 30,
            request_timeout_seconds: 600,
            on_undecodable: OnUndecodable::Block,
            undecodable_reasons: vec![
                "corrupt".into(),
                "limit_exceeded".into(),
                "unsupported_format".into(),
            ],
            allow_unknown_binary: true,
            max_chunked_bytes: 512 << 20,
            max_chunked_uploads: 256,
            chunked_idle_minutes: 60,
            metrics_listen: None,
            metrics_allow_remote: false,
            log_format: service::LogFormat::Kv,
        }
    }
}

impl Config {
    /// Reads a config file; errors name the file, line, column and field.
    pub fn load(path: &Path) -> Result<Config, String> {
        let (c, warnings): (Config, _) = service::load_config(path)?;
        for w in warnings {
            service::log_event(
                "ping32dlp-icap",
                "config_warning",
                &[],
                &format!("warning: {w}"),
            );
        }
        c.check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        const REASONS: &[&str] = &[
            "encrypted",
            "unsupported_format",
            "corrupt",
            "limit_exceeded",
            "not_inspected",
        ];
        for r in &self.undecodable_reasons {
            if !REASONS.contains(&r.as_str()) {
                return Err(format!(
                    "undecodable_reasons: `{r}`: use {}",
                    REASONS.join(", ")
                ));
            }
        }
        if self.max_connections == 0 || self.max_body_bytes == 0 {
            return Err("max_connections and max_body_bytes must be above 0".into());
        }
        self.metrics().address()?;
        Ok(())
    }

    /// The metrics listener's settings.
    pub fn metrics(&self) -> ping32dlp_ops::Settings {
        ping32dlp_ops::Settings {
            listen: self.metrics_listen.clone(),
            allow_remote: self.metrics_allow_remote,
        }
    }
}

impl service::Configured for Config {
    fn dlp(&mut self) -> &mut service::DlpSettings {
        &mut self.dlp
    }
}

/// What every connection shares.
pub struct Shared {
    /// The configuration.
    pub cfg: Config,
    /// The pipeline.
    pub pipeline: Pipeline,
    /// The metrics (served when `metrics_listen` is set).
    pub metrics: Arc<Metrics>,
    istag: String,
    fragments: fragments::Fragments,
    active: AtomicUsize,
}

impl Shared {
    pub fn log(&self, event: &str, line: &str) {
        service::log_event("ping32dlp-icap", event, &[], line);
    }

    /// One log event with fields (README, "Logs").
    pub fn event(&self, event: &str, fields: &[(&str, &dyn std::fmt::Display)], msg: &str) {
        service::log_event("ping32dlp-icap", event, fields, msg);
    }
}

/// Builds the shared state: the pipeline (rules, policy, state directory) and the limits.
pub fn build(cfg: Config) -> Result<Shared, String> {
    // Uploads cannot be held in a queue: nothing to release or delete by command.
    let mut pipeline = cfg.dlp.open(|w| {
        w.release_command = None;
        w.discard_command = None;
    })?;
    let metrics = Arc::new(Metrics::new("ping32dlp-icap").with_channel("webmail"));
    pipeline.set_observer(metrics.clone());
    for fix in pipeline.workflow().permission_fixes() {
        service::log_event(
            "ping32dlp-icap",
            "state_repaired",
            &[],
            &format!("warning: state directory was readable by others, fixed {fix}"),
        );
    }
    let istag = format!(
        "\"p32-{}-{:x}\"",
        env!("CARGO_PKG_VERSION").replace('.', ""),
        ping32dlp::timeutil::now() & 0xffff_ffff
    );
    let fragments = fragments::Fragments::new(
        cfg.max_body_bytes,
        cfg.max_chunked_bytes,
        cfg.max_chunked_uploads,
        Duration::from_secs(cfg.chunked_idle_minutes.max(1) * 60),
    );
    Ok(Shared {
        pipeline,
        metrics,
        cfg,
        istag,
        fragments,
        active: AtomicUsize::new(0),
    })
}

/// A connection's reader: every read waits at most the idle timeout, and not past the
/// current request's deadline (a client sending one byte every few seconds cannot hold a
/// connection slot forever).
struct Timed {
    s: TcpStream,
    idle: Duration,
    deadline: Option<Instant>,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut wait = self.idle;
        if let Some(d) = self.deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "request took longer than allowed",
                ));
            }
            wait = wait.min(left);
        }
        self.s
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        self.s.read(buf)
    }
}

/// A connection slot, given back when dropped, on every path (a panic included).
struct Slot<'a>(&'a Shared);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.connection_closed();
    }
}

fn write_chunked(w: &mut (impl Write + ?Sized), data: &[u8]) -> io::Result<()> {
    for c in data.chunks(65536) {
        write!(w, "{:x}\r\n", c.len())?;
        w.write_all(c)?;
        w.write_all(b"\r\n")?;
    }
    w.write_all(b"0\r\n\r\n")
}

/// The 403 page: Japanese and English, the reason and the incident id.
fn block_page(
    title_ja: &str,
    title_en: &str,
    msg_ja: &str,
    msg_en: &str,
    incident: i64,
    approval: Option<&str>,
) -> String {
    let req = approval
        .map(|a| format!("<p>申請番号 / Request: <code>{}</code></p>", html_escape(a)))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><title>{tj} / {te}</title>\
<style>body{{font-family:sans-serif;max-width:40em;margin:3em auto;color:#222}}h1{{color:#b00020;font-size:1.4em}}code{{background:#eee;padding:0 .3em}}</style></head>\
<body><h1>{tj}</h1><p>{mj}</p><h1 lang=\"en\">{te}</h1><p lang=\"en\">{me}</p>\
<p>インシデント番号 / Incident: <code>{incident}</code></p>{req}\
<p><small>ping32dlp — 情報漏洩対策 / data-loss prevention</small></p></body></html>\n",
        tj = html_escape(title_ja),
        te = html_escape(title_en),
        mj = html_escape(msg_ja),
        me = html_escape(msg_en),
    )
}

fn respond_page(w: &mut impl Write, istag: &str, page: &str) -> io::Result<()> {
    let http = format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        page.len()
    );
    write!(
        w,
        "ICAP/1.0 200 OK\r\nISTag: {istag}\r\nEncapsulated: res-hdr=0, res-body={}\r\nConnection: keep-alive\r\n\r\n",
        http.len()
    )?;
    w.write_all(http.as_bytes())?;
    write_chunked(w, page.as_bytes())?;
    w.flush()
}

fn simple(w: &mut impl Write, istag: &str, status: &str, close: bool) -> io::Result<()> {
    write!(
        w,
        "ICAP/1.0 {status}\r\nISTag: {istag}\r\n{}Encapsulated: null-body=0\r\n\r\n",
        if close { "Connection: close\r\n" } else { "" }
    )?;
    w.flush()
}

#[cfg(test)]
static PANIC_FOR_TEST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Serves one ICAP connection: persistent, one request after another.
pub fn serve(stream: TcpStream, sh: &Shared) -> Result<(), Error> {
    #[cfg(test)]
    if PANIC_FOR_TEST.load(Ordering::SeqCst) {
        panic!("injected by a test");
    }
    let peer = stream.peer_addr().ok();
    let mut w = io::BufWriter::new(stream.try_clone()?);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(
        sh.cfg.request_timeout_seconds.max(1),
    )));
    let mut r = BufReader::with_capacity(
        65536,
        Timed {
            s: stream,
            idle: Duration::from_secs(sh.cfg.idle_timeout_seconds.max(1)),
            deadline: None,
        },
    );
    loop {
        // Between requests: wait up to the idle timeout for the next one to start.
        r.get_mut().deadline = None;
        match r.fill_buf() {
            Ok([]) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e.into()),
        }
        let started = Instant::now();
        r.get_mut().deadline =
            Some(started + Duration::from_secs(sh.cfg.head_timeout_seconds.max(1)));
        let head = match icap::read_head(&mut r) {
            Ok(h) => h,
            Err(Error::Closed) => return Ok(()),
            Err(Error::Bad(m)) => {
                let _ = simple(&mut w, &sh.istag, "400 Bad Request", true);
                return Err(Error::Bad(m));
            }
            Err(e) => return Err(e),
        };
        r.get_mut().deadline =
            Some(started + Duration::from_secs(sh.cfg.request_timeout_seconds.max(1)));
        let result = match head.method.as_str() {
            "OPTIONS" => options(&head, &mut r, &mut w, sh),
            "REQMOD" => reqmod(&head, &mut r, &mut w, sh, peer),
            "RESPMOD" => {
                // Not a service of ours; read what was sent (its sizes checked like REQMOD's)
                // and say so.
                not_offered(&head, &mut r).and_then(|_| {
                    simple(&mut w, &sh.istag, "405 Method Not Allowed", false).map_err(Error::from)
                })
            }
            other => {
                let _ = simple(&mut w, &sh.istag, "501 Method Not Implemented", true);
                return Err(Error::Bad(format!("method {other}")));
            }
        };
        if let Err(e) = result {
            if let Error::Bad(_) = &e {
                let _ = simple(&mut w, &sh.istag, "400 Bad Request", true);
            }
            return Err(e);
        }
        if head.wants_close() {
            return Ok(());
        }
    }
}

fn options(
    head: &Head,
    r: &mut impl BufRead,
    w: &mut impl Write,
    sh: &Shared,
) -> Result<(), Error> {
    if let Some(v) = head.header("Encapsulated") {
        let e = icap::parse_encapsulated(v).map_err(Error::Bad)?;
        icap::read_sections(r, &e)?;
        if e.has_body() {
            icap::skip_chunked(r)?;
        }
    }
    if !matches!(head.service(), "reqmod" | "") {
        simple(w, &sh.istag, "404 ICAP Service Not Found", false)?;
        return Ok(());
    }
    write!(
        w,
        "ICAP/1.0 200 OK\r\nMethods: REQMOD\r\nService: ping32dlp webmail hook {}\r\nISTag: {}\r\nMax-Connections: {}\r\nOptions-TTL: 3600\r\nAllow: 204\r\nPreview: {}\r\nTransfer-Preview: *\r\nEncapsulated: null-body=0\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        sh.istag,
        sh.cfg.max_connections,
        sh.cfg.preview_bytes
    )?;
    w.flush()?;
    Ok(())
}

fn not_offered(head: &Head, r: &mut impl BufRead) -> Result<(), Error> {
    let v = head
        .header("Encapsulated")
        .ok_or_else(|| Error::Bad("no Encapsulated header".into()))?;
    let e = icap::parse_encapsulated(v).map_err(Error::Bad)?;
    icap::read_sections(r, &e)?;
    if e.has_body() {
        icap::skip_chunked(r)?;
        if head.header("Preview").is_some() {
            // A preview that was not the whole body: the client waits for 100 Continue, which
            // it will not get; the answer ends the exchange.
        }
    }
    Ok(())
}

/// The label under which the hook's own decoding problems are reported (never a file name:
/// the parentheses keep it apart from an attachment called `upload`).
pub const UPLOAD_LOCATION: &str = "(upload)";

fn reqmod(
    head: &Head,
    r: &mut impl BufRead,
    w: &mut impl Write,
    sh: &Shared,
    peer: Option<std::net::SocketAddr>,
) -> Result<(), Error> {
    let enc = head
        .header("Encapsulated")
        .ok_or_else(|| Error::Bad("no Encapsulated header".into()))?;
    let enc = icap::parse_encapsulated(enc).map_err(Error::Bad)?;
    let sections = icap::read_sections(r, &enc)?;
    let has_body = enc.has_body();
    if head.service() != "reqmod" {
        if has_body {
            icap::skip_chunked(r)?;
        }
        simple(w, &sh.istag, "404 ICAP Service Not Found", false)?;
        return Ok(());
    }
    let http = HttpHead::parse(&sections.req_hdr).map_err(Error::Bad)?;
    let allow_204 = head
        .header("Allow")
        .is_some_and(|a| a.split(',').any(|x| x.trim() == "204"));
    let preview = head.header("Preview").and_then(|p| p.parse::<usize>().ok());
    let max = sh.cfg.max_body_bytes;
    let mut body = Vec::new();
    let mut over = 0u64;
    if has_body {
        let ieof = icap::read_chunked(r, &mut body, max, &mut over)?;
        if preview.is_some() && !ieof {
            // Judge on the whole body: ask for the rest.
            w.write_all(b"ICAP/1.0 100 Continue\r\n\r\n")?;
            w.flush()?;
            icap::read_chunked(r, &mut body, max, &mut over)?;
        }
    }
    let req_hdr = sections.req_hdr;
    let pass = |w: &mut dyn Write, echo_body: &[u8]| -> io::Result<()> {
        if allow_204 || (preview.is_some() && !has_body) {
            write!(
                w,
                "ICAP/1.0 204 No Content\r\nISTag: {}\r\nEncapsulated: null-body=0\r\n\r\n",
                sh.istag
            )?;
        } else if has_body {
            write!(
                w,
                "ICAP/1.0 200 OK\r\nISTag: {}\r\nEncapsulated: req-hdr=0, req-body={}\r\n\r\n",
                sh.istag,
                req_hdr.len()
            )?;
            w.write_all(&req_hdr)?;
            write_chunked(w, echo_body)?;
        } else {
            write!(
                w,
                "ICAP/1.0 200 OK\r\nISTag: {}\r\nEncapsulated: req-hdr=0, null-body={}\r\n\r\n",
                sh.istag,
                req_hdr.len()
            )?;
            w.write_all(&req_hdr)?;
        }
        w.flush()
    };
    if !has_body || (body.is_empty() && over == 0) {
        return Ok(pass(w, &body)?);
    }
    let host = http.host();
    let user = head.header("X-Authenticated-User").map(str::to_string);
    let client = head
        .header("X-Client-IP")
        .map(str::to_string)
        .or_else(|| peer.map(|p| p.ip().to_string()));
    let ctx = Context {
        channel: "webmail".into(),
        user: user.clone(),
        client_addr: client,
        client_app: Some(host.clone()),
        envelope_from: user.clone().filter(|u| u.contains('@')),
        destination_host: Some(host.clone()),
        ..Context::default()
    };
    let from = user.as_deref().filter(|u| u.contains('@'));
    let problem = |reason: Reason, detail: String| Unscannable {
        location: UPLOAD_LOCATION.into(),
        reason,
        detail,
    };
    // What to inspect, what could not be decoded, and whether this is a piece of a file whose
    // other pieces are still to come (a piece alone is "corrupt" by nature).
    let (message, problems, piece) = if over > 0 {
        let m = upload::as_message(&[], from, &host);
        let p = problem(
            Reason::LimitExceeded,
            format!(
                "body of {} bytes over max_body_bytes ({max})",
                body.len() as u64 + over
            ),
        );
        (m, vec![p], false)
    } else if let Some(range) = http
        .header("Content-Range")
        .and_then(fragments::parse_content_range)
    {
        let key = format!("{host}{}", http.path_and_query());
        let name = upload::url_file_name(http.path_and_query());
        match sh.fragments.add(&key, range, &body) {
            fragments::Outcome::Complete(whole) => {
                let items = vec![upload::Item::File(name, None, whole)];
                (upload::as_message(&items, from, &host), Vec::new(), false)
            }
            fragments::Outcome::Partial { .. } => {
                let items = vec![upload::Item::File(
                    format!("{name}.part"),
                    None,
                    body.clone(),
                )];
                (upload::as_message(&items, from, &host), Vec::new(), true)
            }
            fragments::Outcome::Untrackable(why) => {
                let items = vec![upload::Item::File(
                    format!("{name}.part"),
                    None,
                    body.clone(),
                )];
                let p = problem(Reason::Corrupt, format!("chunked upload: {why}"));
                (upload::as_message(&items, from, &host), vec![p], false)
            }
        }
    } else {
        let up = upload::decode(&http, &body, max);
        let problems = up
            .problems
            .into_iter()
            .map(|p| Unscannable {
                location: if p.location == "upload" {
                    UPLOAD_LOCATION.into()
                } else {
                    format!(
                        "{UPLOAD_LOCATION}/{}",
                        p.location.trim_start_matches("upload/")
                    )
                },
                reason: p.reason,
                detail: p.detail,
            })
            .collect();
        (upload::as_message(&up.items, from, &host), problems, false)
    };
    let too_big = over > 0;
    let gate = |f: &Facts, v: &mut Verdict| gate(&sh.cfg, f, v, too_big, piece);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sh.pipeline.process_message_with(
            &message,
            &ctx,
            Extra {
                unscannable: problems,
                gate: Some(&gate),
                ..Extra::default()
            },
        )
    }));
    let d = match result {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            sh.event(
                "fail_mode",
                &[
                    ("channel", &"webmail"),
                    ("mode", &sh.cfg.fail_mode.as_str()),
                    ("method", &http.method),
                    ("host", &host),
                ],
                &format!("not judged: {e}"),
            );
            sh.metrics
                .fail_mode_answer("webmail", sh.cfg.fail_mode.as_str());
            match sh.cfg.fail_mode {
                service::FailMode::Accept => return Ok(pass(w, &body)?),
                service::FailMode::Tempfail => simple(w, &sh.istag, "500 Server Error", false)?,
                service::FailMode::Block => {
                    let page = block_page(
                        "アップロードを検査できません",
                        "The upload cannot be inspected now",
                        "情報漏洩対策の検査が一時的に利用できないため、アップロードは送信されませんでした。しばらくしてからもう一度お試しください。",
                        "Data-loss-prevention inspection is unavailable for now, so the upload was not sent. Please try again later.",
                        0,
                        None,
                    );
                    respond_page(w, &sh.istag, &page)?;
                }
            }
            return Ok(());
        }
        Err(_) => {
            sh.log(
                "panic",
                &format!("{} {host}: internal error (panic); refusing", http.method),
            );
            sh.metrics.fail_mode_answer("webmail", "tempfail");
            simple(w, &sh.istag, "500 Server Error", false)?;
            return Ok(());
        }
    };
    let v = &d.verdict;
    sh.event(
        "inspected",
        &[
            ("channel", &"webmail"),
            ("action", &v.action.as_str()),
            ("record", &d.record.id),
            ("risk", &v.risk),
            ("method", &http.method),
            ("host", &host),
            ("bytes", &(body.len() as u64 + over)),
            ("findings", &d.report.findings.len()),
            ("piece", &piece),
        ],
        "",
    );
    match v.action {
        Action::Block => {
            let title = if too_big {
                ("アップロードは許可されていません", "Upload not allowed")
            } else {
                ("アップロードはブロックされました", "Upload blocked")
            };
            let page = block_page(
                title.0,
                title.1,
                &v.user_message("ja"),
                &v.user_message("en"),
                d.record.id,
                None,
            );
            respond_page(w, &sh.istag, &page)?;
        }
        Action::Hold => {
            let id = d.approval.as_ref().map(|a| a.id.as_str());
            let page = block_page(
                "このアップロードは承認待ちです",
                "This upload awaits approval",
                &format!(
                    "{} 承認されるまで送信できません。承認後にもう一度お試しください。",
                    v.user_message("ja")
                ),
                &format!(
                    "{} It cannot be sent until it is approved; try again after approval.",
                    v.user_message("en")
                ),
                d.record.id,
                id,
            );
            respond_page(w, &sh.istag, &page)?;
        }
        _ => pass(w, &body)?,
    }
    Ok(())
}

/// The hook's own fail-closed rules, applied to the policy's verdict before it is recorded: an
/// upload over `max_body_bytes` is always refused; one with content that could not be decoded
/// or inspected is refused when `on_undecodable = "block"`. A piece of a chunked upload is
/// judged on its findings only (the whole is judged with its last piece).
fn gate(cfg: &Config, f: &Facts, v: &mut Verdict, too_big: bool, piece: bool) {
    if too_big {
        v.force(
            "webmail:max_body_bytes",
            Action::Block,
            vec![format!("body over max_body_bytes ({})", cfg.max_body_bytes)],
            "このアップロードは大きすぎて検査できないため、送信できません。",
            "This upload is too large to be inspected and cannot be sent.",
        );
        return;
    }
    if cfg.on_undecodable != OnUndecodable::Block {
        return;
    }
    let opaque = |loc: &str, reason: &str| {
        cfg.allow_unknown_binary
            && reason == "unsupported_format"
            && f.attachments
                .iter()
                .any(|a| a.location == loc && a.kind == "unknown")
    };
    let why: Vec<String> = f
        .unscannable
        .iter()
        .filter(|(loc, reason)| {
            loc.starts_with(UPLOAD_LOCATION)
                || (!piece
                    && cfg.undecodable_reasons.iter().any(|r| r == reason)
                    && !opaque(loc, reason))
        })
        .map(|(loc, reason)| format!("{loc}: {reason}"))
        .take(10)
        .collect();
    if why.is_empty() {
        return;
    }
    let reasons = why.join("; ");
    v.force(
        "webmail:on_undecodable",
        Action::Block,
        why,
        &format!(
            "このアップロードには検査できない内容が含まれているため、送信できません（{reasons}）。"
        ),
        &format!(
            "This upload has content that cannot be inspected ({reasons}), so it cannot be sent."
        ),
    );
}

/// Accepts connections forever, one thread each, at most `max_connections` at a time (more
/// get `503`). A connection's slot is given back however its thread ends.
pub fn run(listener: TcpListener, sh: &'static Shared) {
    for s in listener.incoming() {
        let Ok(mut s) = s else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if sh.active.fetch_add(1, Ordering::AcqRel) >= sh.cfg.max_connections {
            sh.active.fetch_sub(1, Ordering::AcqRel);
            let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(
                b"ICAP/1.0 503 Service Unavailable\r\nConnection: close\r\nEncapsulated: null-body=0\r\n\r\n",
            );
            sh.metrics.connection_refused("max_connections");
            continue;
        }
        sh.metrics.connection_opened();
        let slot = Slot(sh);
        let spawned = std::thread::Builder::new()
            .name("icap-conn".into())
            .spawn(move || {
                // A second handle keeps the socket open until the slot is back: a client that
                // sees the close may connect again at once and must find the slot free.
                let held = s.try_clone().ok();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(s, sh)));
                match r {
                    Ok(Ok(())) | Ok(Err(Error::Closed)) => {}
                    Ok(Err(Error::Bad(m))) => sh.log(
                        "protocol_error",
                        &format!("bad request, connection closed: {m}"),
                    ),
                    Ok(Err(Error::Io(e)))
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        sh.log(
                            "timeout",
                            "client too slow (request deadline or idle timeout), connection closed",
                        )
                    }
                    Ok(Err(Error::Io(e))) => {
                        if !matches!(
                            e.kind(),
                            io::ErrorKind::UnexpectedEof
                                | io::ErrorKind::ConnectionReset
                                | io::ErrorKind::BrokenPipe
                        ) {
                            sh.log("connection_error", &format!("connection error: {e}"));
                        }
                    }
                    Err(_) => sh.log(
                        "panic",
                        "internal error (panic) on a connection; it was closed",
                    ),
                }
                drop(slot);
                drop(held);
            });
        // On a spawn failure the closure (and its slot) is dropped, which gives the slot back.
        drop(spawned);
    }
}

/// Connections being served now.
pub fn active_connections(sh: &Shared) -> usize {
    sh.active.load(Ordering::Acquire)
}

const USAGE: &str = "usage: ping32dlp-icap [--config FILE] [--check-config FILE]

Without --config it listens on 127.0.0.1:1344 (service icap://127.0.0.1:1344/reqmod) with the
built-in detectors and the monitor-mode policy. Squid:
  icap_enable on
  icap_service dlp_req reqmod_precache icap://127.0.0.1:1344/reqmod bypass=off
  adaptation_access dlp_req allow all";

/// The program: parse the command line and the configuration, build, listen, serve.
pub fn main() {
    let (config, check_only) = service::command_line("ping32dlp-icap", USAGE);
    let cfg = match &config {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
    .unwrap_or_else(|e| {
        eprintln!("ping32dlp-icap: {e}");
        std::process::exit(2);
    });
    service::set_log_format(cfg.log_format);
    let sh = build(cfg).unwrap_or_else(|e| {
        eprintln!("ping32dlp-icap: {e}");
        std::process::exit(2);
    });
    if check_only {
        println!(
            "ok: listen {}, policy {} ({} rules), on_undecodable {:?}",
            sh.cfg.listen,
            sh.pipeline.policy().name,
            sh.pipeline.policy().rules.len(),
            sh.cfg.on_undecodable
        );
        return;
    }
    let sh: &'static Shared = Box::leak(Box::new(sh));
    // SIGHUP: rules, dictionaries and policy read again from the same file (README, "Reload").
    service::reload_config_on_sighup("ping32dlp-icap", config.clone(), Config::load, &sh.pipeline);
    service::spawn_maintenance_observed(
        "ping32dlp-icap",
        sh.pipeline.workflow().clone(),
        Duration::from_secs(5),
        Some(sh.metrics.clone()),
    );
    let l = TcpListener::bind(&sh.cfg.listen).unwrap_or_else(|e| {
        eprintln!("ping32dlp-icap: {}: {e}", sh.cfg.listen);
        std::process::exit(1);
    });
    ping32dlp_ops::start_gateway(
        "ping32dlp-icap",
        &sh.cfg.metrics(),
        &sh.metrics,
        &sh.pipeline,
    );
    sh.log(
        "listening",
        &format!(
            "listening on icap://{}/reqmod, policy {}",
            sh.cfg.listen,
            sh.pipeline.policy().name
        ),
    );
    run(l, sh);
}

/// Fuzzing entry: any bytes as one ICAP request (read with the limits of the server), then
/// its HTTP head and body through the upload decoders. Not part of the API.
#[doc(hidden)]
pub fn fuzz_request(data: &[u8]) {
    let mut r = data;
    if let Ok(req) = icap::read_request(&mut r, 1 << 20) {
        if let Ok(h) = HttpHead::parse(&req.sections.req_hdr) {
            let up = upload::decode(&h, &req.body, 1 << 20);
            let _ = upload::as_message(&up.items, None, &h.host());
            if let Some(range) = h
                .header("Content-Range")
                .and_then(fragments::parse_content_range)
            {
                let f = fragments::Fragments::new(1 << 20, 1 << 20, 4, Duration::from_secs(1));
                let _ = f.add("k", range, &req.body);
            }
        }
    }
}

/// Fuzzing entry: `data` as an upload body; its first byte picks the content type and the
/// content encoding. Not part of the API.
#[doc(hidden)]
pub fn fuzz_upload(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    const TYPES: &[&str] = &[
        "multipart/form-data; boundary=b",
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "",
        "application/octet-stream",
        "multipart/mixed; boundary=\"--x\"",
        "application/json; charset=utf-8",
    ];
    const ENCODINGS: &[Option<&str>] = &[None, Some("gzip"), Some("br"), Some("zstd")];
    let mut headers = vec![(
        "Content-Type".to_string(),
        TYPES[(sel & 7) as usize].to_string(),
    )];
    if let Some(e) = ENCODINGS[((sel >> 3) & 3) as usize] {
        headers.push(("Content-Encoding".into(), e.into()));
    }
    let head = HttpHead {
        method: "POST".into(),
        target: "/upload/file.bin".into(),
        headers,
    };
    let up = upload::decode(&head, body, 1 << 20);
    let _ = upload::as_message(&up.items, Some("a@b.example"), "h.example");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_gives_the_connection_slot_back() {
        let dir = tempfile::tempdir().unwrap();
        let sh: &'static Shared = Box::leak(Box::new(
            build(Config {
                dlp: service::DlpSettings {
                    state_dir: Some(dir.path().join("state")),
                    ..Default::default()
                },
                max_connections: 2,
                ..Config::default()
            })
            .unwrap(),
        ));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || run(l, sh));
        PANIC_FOR_TEST.store(true, Ordering::SeqCst);
        for _ in 0..10 {
            let mut s = TcpStream::connect(addr).unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
        }
        PANIC_FOR_TEST.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(active_connections(sh), 0);
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(
            b"OPTIONS icap://127.0.0.1/reqmod ICAP/1.0\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        assert!(buf.starts_with("ICAP/1.0 200"), "{buf}");
    }
}
