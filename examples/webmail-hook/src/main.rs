//! `ping32dlp-icap`: the webmail hook. An ICAP server (RFC 3507, REQMOD) that a web proxy such as
//! Squid calls for every upload: the HTTP request body is decoded into fields and files,
//! inspected like a mail with attachments, recorded (channel `webmail`) and judged. Allowed
//! uploads go on unchanged (`204`, or the request echoed when 204 is not allowed); blocked or
//! held ones get an HTTP 403 page in Japanese and English, and the origin is never contacted.
//!
//! ```text
//! ping32dlp-icap                       # embedded defaults: 127.0.0.1:1344, service /reqmod,
//!                                      # built-in rules, monitor-mode policy
//! ping32dlp-icap --config /etc/ping32dlp/icap.toml
//! ```

#![forbid(unsafe_code)]

mod upload;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ping32dlp::pipeline::Pipeline;
use ping32dlp::policy::{Action, Context};
use ping32dlp::service;
use ping32dlp::text::html_escape;
use serde::Deserialize;

/// The configuration file; paths are relative to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port.
    pub listen: String,
    /// State directory (audit database, ...).
    pub state_dir: Option<PathBuf>,
    /// Rules files.
    pub rules: Vec<PathBuf>,
    /// Dictionary files.
    pub dictionaries: Vec<PathBuf>,
    /// Policy file; default: the embedded monitor-mode policy.
    pub policy: Option<PathBuf>,
    /// Organisation domains (replace the policy's when given).
    pub internal_domains: Vec<String>,
    /// Largest request body inspected; larger uploads are refused with the block page.
    pub max_body_bytes: u64,
    /// Preview size offered in OPTIONS.
    pub preview_bytes: usize,
    /// Concurrent ICAP connections.
    pub max_connections: usize,
    /// Seconds a persistent connection may stay idle.
    pub idle_timeout_seconds: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: "127.0.0.1:1344".into(),
            state_dir: None,
            rules: Vec::new(),
            dictionaries: Vec::new(),
            policy: None,
            internal_domains: Vec::new(),
            max_body_bytes: 100 << 20,
            preview_bytes: 1024,
            max_connections: 256,
            idle_timeout_seconds: 300,
        }
    }
}

impl Config {
    fn load(path: &Path) -> Result<Config, String> {
        let mut c: Config = service::load_toml(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        service::resolve(
            base,
            c.rules
                .iter_mut()
                .chain(c.dictionaries.iter_mut())
                .chain(c.policy.iter_mut())
                .chain(c.state_dir.iter_mut()),
        );
        Ok(c)
    }
}

struct Shared {
    cfg: Config,
    pipeline: Pipeline,
    istag: String,
}

impl Shared {
    fn log(&self, line: &str) {
        service::log("ping32dlp-icap", line);
    }
}

/// Why a connection ends.
#[derive(Debug)]
enum Fail {
    /// The client closed it.
    Closed,
    /// Bad ICAP: answer 400 and close.
    Bad(String),
    /// I/O.
    Io(io::Error),
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        Fail::Io(e)
    }
}

const MAX_HEAD: usize = 64 * 1024;

fn read_head(r: &mut impl BufRead) -> Result<Vec<String>, Fail> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut l = Vec::new();
        let n = r.by_ref().take(MAX_HEAD as u64).read_until(b'\n', &mut l)?;
        if n == 0 {
            return if lines.is_empty() {
                Err(Fail::Closed)
            } else {
                Err(Fail::Bad("truncated header".into()))
            };
        }
        total += n;
        if total > MAX_HEAD {
            return Err(Fail::Bad("header too large".into()));
        }
        let s = String::from_utf8_lossy(&l)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        if s.is_empty() {
            if lines.is_empty() {
                continue; // stray CRLF between requests
            }
            return Ok(lines);
        }
        lines.push(s);
    }
}

fn header<'a>(lines: &'a [String], name: &str) -> Option<&'a str> {
    lines.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads chunks until the last one; returns (bytes, ieof seen). Bytes past `max` are counted,
/// not kept.
fn read_chunked(
    r: &mut impl BufRead,
    out: &mut Vec<u8>,
    max: u64,
    over: &mut u64,
) -> Result<bool, Fail> {
    loop {
        let mut line = Vec::new();
        r.by_ref().take(4096).read_until(b'\n', &mut line)?;
        if line.is_empty() {
            return Err(Fail::Bad("truncated chunked body".into()));
        }
        let s = String::from_utf8_lossy(&line);
        let s = s.trim();
        let (size, ext) = s.split_once(';').unwrap_or((s, ""));
        let size = usize::from_str_radix(size.trim(), 16)
            .map_err(|_| Fail::Bad(format!("bad chunk size {s:?}")))?;
        if size == 0 {
            // trailer: up to an empty line
            loop {
                let mut t = Vec::new();
                r.by_ref().take(4096).read_until(b'\n', &mut t)?;
                if t.is_empty() || t == b"\r\n" || t == b"\n" {
                    break;
                }
            }
            return Ok(ext.trim() == "ieof");
        }
        let mut left = size;
        let mut buf = [0u8; 65536];
        while left > 0 {
            let n = left.min(buf.len());
            r.read_exact(&mut buf[..n])?;
            if (out.len() + n) as u64 <= max && *over == 0 {
                out.extend_from_slice(&buf[..n]);
            } else {
                *over += n as u64;
            }
            left -= n;
        }
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(Fail::Bad("chunk not followed by CRLF".into()));
        }
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

fn serve(stream: TcpStream, sh: &Shared) -> Result<(), Fail> {
    let peer = stream.peer_addr().ok();
    let _ = stream.set_read_timeout(Some(Duration::from_secs(
        sh.cfg.idle_timeout_seconds.max(1),
    )));
    let mut w = io::BufWriter::new(stream.try_clone()?);
    let mut r = BufReader::with_capacity(65536, stream);
    loop {
        let head = match read_head(&mut r) {
            Ok(h) => h,
            Err(Fail::Closed) => return Ok(()),
            Err(Fail::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(())
            }
            Err(Fail::Bad(m)) => {
                let _ = write!(w, "ICAP/1.0 400 Bad Request\r\nISTag: {}\r\nConnection: close\r\nEncapsulated: null-body=0\r\n\r\n", sh.istag);
                let _ = w.flush();
                return Err(Fail::Bad(m));
            }
            Err(e) => return Err(e),
        };
        let mut parts = head[0].split_whitespace();
        let method = parts.next().unwrap_or("").to_ascii_uppercase();
        let uri = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("");
        if !version.starts_with("ICAP/1.") {
            let _ = write!(w, "ICAP/1.0 400 Bad Request\r\nISTag: {}\r\nConnection: close\r\nEncapsulated: null-body=0\r\n\r\n", sh.istag);
            let _ = w.flush();
            return Err(Fail::Bad(format!("not ICAP: {:?}", head[0])));
        }
        let service = uri
            .split("://")
            .nth(1)
            .and_then(|s| s.split_once('/'))
            .map(|(_, p)| p.split('?').next().unwrap_or(""))
            .unwrap_or("");
        match method.as_str() {
            "OPTIONS" => {
                if !matches!(service, "reqmod" | "") {
                    write!(w, "ICAP/1.0 404 ICAP Service Not Found\r\nISTag: {}\r\nEncapsulated: null-body=0\r\n\r\n", sh.istag)?;
                } else {
                    write!(
                        w,
                        "ICAP/1.0 200 OK\r\nMethods: REQMOD\r\nService: ping32dlp webmail hook {}\r\nISTag: {}\r\nMax-Connections: {}\r\nOptions-TTL: 3600\r\nAllow: 204\r\nPreview: {}\r\nTransfer-Preview: *\r\nEncapsulated: null-body=0\r\n\r\n",
                        env!("CARGO_PKG_VERSION"),
                        sh.istag,
                        sh.cfg.max_connections,
                        sh.cfg.preview_bytes
                    )?;
                }
                w.flush()?;
            }
            "REQMOD" => reqmod(&head, service, &mut r, &mut w, sh, peer)?,
            "RESPMOD" => {
                // Not a service of ours; read what was sent and say so.
                let enc = header(&head, "Encapsulated").unwrap_or("");
                let sections = parse_encapsulated(enc);
                skip_sections(&sections, &head, &mut r)?;
                write!(w, "ICAP/1.0 405 Method Not Allowed\r\nISTag: {}\r\nEncapsulated: null-body=0\r\n\r\n", sh.istag)?;
                w.flush()?;
            }
            _ => {
                write!(w, "ICAP/1.0 501 Method Not Implemented\r\nISTag: {}\r\nConnection: close\r\nEncapsulated: null-body=0\r\n\r\n", sh.istag)?;
                w.flush()?;
                return Err(Fail::Bad(format!("method {method}")));
            }
        }
        if header(&head, "Connection").is_some_and(|c| c.eq_ignore_ascii_case("close")) {
            return Ok(());
        }
    }
}

fn parse_encapsulated(enc: &str) -> Vec<(String, usize)> {
    enc.split(',')
        .filter_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().parse().ok()?))
        })
        .collect()
}

fn skip_sections(
    sections: &[(String, usize)],
    _head: &[String],
    r: &mut impl BufRead,
) -> Result<(), Fail> {
    let Some((last, off)) = sections.last() else {
        return Ok(());
    };
    let mut hdr = vec![0u8; *off];
    r.read_exact(&mut hdr)?;
    if last.ends_with("-body") && last != "null-body" {
        let mut sink = Vec::new();
        let mut over = 0;
        read_chunked(r, &mut sink, 0, &mut over)?;
    }
    Ok(())
}

fn reqmod(
    head: &[String],
    service: &str,
    r: &mut impl BufRead,
    w: &mut impl Write,
    sh: &Shared,
    peer: Option<std::net::SocketAddr>,
) -> Result<(), Fail> {
    let enc =
        header(head, "Encapsulated").ok_or_else(|| Fail::Bad("no Encapsulated header".into()))?;
    let sections = parse_encapsulated(enc);
    let req_hdr_end = sections
        .iter()
        .find(|(k, _)| k != "req-hdr")
        .map(|(_, o)| *o)
        .unwrap_or(0);
    let has_body = sections.iter().any(|(k, _)| k == "req-body");
    let mut http_head = vec![0u8; req_hdr_end];
    r.read_exact(&mut http_head)?;
    if service != "reqmod" {
        if has_body {
            let mut sink = Vec::new();
            let mut over = 0;
            read_chunked(r, &mut sink, 0, &mut over)?;
        }
        write!(
            w,
            "ICAP/1.0 404 ICAP Service Not Found\r\nISTag: {}\r\nEncapsulated: null-body=0\r\n\r\n",
            sh.istag
        )?;
        return Ok(w.flush()?);
    }
    let allow_204 = header(head, "Allow").is_some_and(|a| a.split(',').any(|x| x.trim() == "204"));
    let preview = header(head, "Preview").and_then(|p| p.parse::<usize>().ok());
    let max = sh.cfg.max_body_bytes;
    let mut body = Vec::new();
    let mut over = 0u64;
    if has_body {
        if preview.is_some() {
            let ieof = read_chunked(r, &mut body, max, &mut over)?;
            if !ieof {
                // Judge on the whole body: ask for the rest.
                w.write_all(b"ICAP/1.0 100 Continue\r\n\r\n")?;
                w.flush()?;
                read_chunked(r, &mut body, max, &mut over)?;
            }
        } else {
            read_chunked(r, &mut body, max, &mut over)?;
        }
    }
    let http = String::from_utf8_lossy(&http_head).into_owned();
    let http_lines: Vec<String> = http
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    let request_line = http_lines.first().cloned().unwrap_or_default();
    let mut rl = request_line.split_whitespace();
    let http_method = rl.next().unwrap_or("").to_string();
    let target = rl.next().unwrap_or("").to_string();
    let hget = |name: &str| -> Option<String> {
        http_lines.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let host = hget("Host").unwrap_or_else(|| {
        target
            .split("://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or("")
            .to_string()
    });
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
                http_head.len()
            )?;
            w.write_all(&http_head)?;
            write_chunked(w, echo_body)?;
        } else {
            write!(
                w,
                "ICAP/1.0 200 OK\r\nISTag: {}\r\nEncapsulated: req-hdr=0, null-body={}\r\n\r\n",
                sh.istag,
                http_head.len()
            )?;
            w.write_all(&http_head)?;
        }
        w.flush()
    };
    if !has_body || (body.is_empty() && over == 0) {
        return Ok(pass(w, &body)?);
    }
    let user = header(head, "X-Authenticated-User").map(decode_user);
    let client = header(head, "X-Client-IP")
        .map(str::to_string)
        .or_else(|| peer.map(|p| p.ip().to_string()));
    if over > 0 {
        sh.log(&format!(
            "{http_method} {host}: body over max_body_bytes ({} bytes), refused",
            body.len() as u64 + over
        ));
        let page = block_page(
            "アップロードは許可されていません",
            "Upload not allowed",
            "このアップロードは大きすぎて検査できないため、送信できません。",
            "This upload is too large to be inspected and cannot be sent.",
            0,
            None,
        );
        return Ok(respond_page(w, &sh.istag, &page)?);
    }
    let content_type = hget("Content-Type").unwrap_or_default();
    let decoded = match hget("Content-Encoding") {
        Some(ce) => upload::decode_content_encoding(body.clone(), &ce, max),
        None => Ok(body.clone()),
    };
    let (raw_message, note) = match decoded {
        Ok(d) => {
            let items = upload::items(&content_type, &target, &d);
            (
                upload::as_message(&items, user.as_deref().filter(|u| u.contains('@')), &host),
                None,
            )
        }
        Err(e) => {
            // Undecodable: inspect the bytes as they are (the extraction reports what it
            // cannot read) and say so in the log.
            let items = vec![upload::Item::File("upload.bin".into(), None, body.clone())];
            (upload::as_message(&items, None, &host), Some(e))
        }
    };
    let ctx = Context {
        channel: "webmail".into(),
        user: user.clone(),
        client_addr: client,
        client_app: Some(host.clone()),
        envelope_from: user.filter(|u| u.contains('@')),
        ..Context::default()
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        sh.pipeline.process_message(&raw_message, &ctx, &[], false)
    }));
    let d = match result {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            sh.log(&format!("{http_method} {host}: not judged ({e}); refusing"));
            write!(
                w,
                "ICAP/1.0 500 Server Error\r\nISTag: {}\r\nEncapsulated: null-body=0\r\n\r\n",
                sh.istag
            )?;
            return Ok(w.flush()?);
        }
        Err(_) => {
            sh.log(&format!(
                "{http_method} {host}: internal error (panic); refusing"
            ));
            write!(
                w,
                "ICAP/1.0 500 Server Error\r\nISTag: {}\r\nEncapsulated: null-body=0\r\n\r\n",
                sh.istag
            )?;
            return Ok(w.flush()?);
        }
    };
    let v = &d.verdict;
    sh.log(&format!(
        "{http_method} {host} {} bytes: {} record={} risk={}{}",
        body.len(),
        v.action.as_str(),
        d.record.id,
        v.risk,
        note.map(|n| format!(" ({n})")).unwrap_or_default()
    ));
    match v.action {
        Action::Block => {
            let page = block_page(
                "アップロードはブロックされました",
                "Upload blocked",
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

/// Squid sends the user as is, or base64-encoded with `icap_client_username_encode on`.
fn decode_user(s: &str) -> String {
    s.trim().to_string()
}

fn build(cfg: Config) -> Result<Shared, String> {
    let settings = service::PipelineSettings {
        rules: cfg.rules.clone(),
        dictionaries: cfg.dictionaries.clone(),
        policy: cfg.policy.clone(),
        internal_domains: cfg.internal_domains.clone(),
        state_dir: cfg.state_dir.clone(),
    };
    // Uploads cannot be held in a queue: nothing to release or delete by command.
    let pipeline = settings.open(|w| {
        w.release_command = None;
        w.discard_command = None;
    })?;
    let istag = format!(
        "\"p32-{}-{:x}\"",
        env!("CARGO_PKG_VERSION").replace('.', ""),
        ping32dlp::timeutil::now() & 0xffff_ffff
    );
    Ok(Shared {
        pipeline,
        cfg,
        istag,
    })
}

static ACTIVE: AtomicUsize = AtomicUsize::new(0);

const USAGE: &str = "usage: ping32dlp-icap [--config FILE] [--check-config FILE]

Without --config it listens on 127.0.0.1:1344 (service icap://127.0.0.1:1344/reqmod) with the
built-in detectors and the monitor-mode policy. Squid:
  icap_enable on
  icap_service dlp_req reqmod_precache icap://127.0.0.1:1344/reqmod bypass=off
  adaptation_access dlp_req allow all";

fn main() {
    let (config, check_only) = service::command_line("ping32dlp-icap", USAGE);
    let cfg = match &config {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
    .unwrap_or_else(|e| {
        eprintln!("ping32dlp-icap: {e}");
        std::process::exit(2);
    });
    let sh = build(cfg).unwrap_or_else(|e| {
        eprintln!("ping32dlp-icap: {e}");
        std::process::exit(2);
    });
    if check_only {
        println!(
            "ok: listen {}, policy {} ({} rules)",
            sh.cfg.listen,
            sh.pipeline.policy().name,
            sh.pipeline.policy().rules.len()
        );
        return;
    }
    let sh: &'static Shared = Box::leak(Box::new(sh));
    let l = TcpListener::bind(&sh.cfg.listen).unwrap_or_else(|e| {
        eprintln!("ping32dlp-icap: {}: {e}", sh.cfg.listen);
        std::process::exit(1);
    });
    sh.log(&format!(
        "listening on icap://{}/reqmod, policy {}",
        sh.cfg.listen,
        sh.pipeline.policy().name
    ));
    for s in l.incoming() {
        let Ok(s) = s else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if ACTIVE.fetch_add(1, Ordering::AcqRel) >= sh.cfg.max_connections {
            ACTIVE.fetch_sub(1, Ordering::AcqRel);
            let mut s = s;
            let _ = s.write_all(b"ICAP/1.0 503 Service Unavailable\r\nConnection: close\r\nEncapsulated: null-body=0\r\n\r\n");
            continue;
        }
        let r = std::thread::Builder::new()
            .name("icap-conn".into())
            .spawn(move || {
                match serve(s, sh) {
                    Ok(()) | Err(Fail::Closed) => {}
                    Err(Fail::Bad(m)) => sh.log(&format!("bad request, connection closed: {m}")),
                    Err(Fail::Io(e)) => {
                        if !matches!(
                            e.kind(),
                            io::ErrorKind::UnexpectedEof
                                | io::ErrorKind::ConnectionReset
                                | io::ErrorKind::BrokenPipe
                        ) {
                            sh.log(&format!("connection error: {e}"));
                        }
                    }
                }
                ACTIVE.fetch_sub(1, Ordering::AcqRel);
            });
        if r.is_err() {
            ACTIVE.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
