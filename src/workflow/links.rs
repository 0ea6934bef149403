//! Download links instead of attachments (`action = "link"`, the replacement for PPAP).
//!
//! When an enforced `link` rule matched, each attachment of the outgoing message (a MIME part
//! with a file name, a `Content-Disposition: attachment`, or a forwarded `message/rfc822`) is
//! taken out and replaced, in place, by a short `text/plain` part that names the file and gives
//! its download address. The message's own headers and every other part stay byte for byte
//! as they were, so the milter replaces only the body. The files go to the evidence store
//! (kept at least as long as the link works); the database keeps, per link, only the SHA-256
//! of its random token, the file's SHA-256, the expiry, the download count and, with
//! `password = true`, a salted SHA-256 of the mail's password, which is mailed to the sender
//! only. The download listener (`download_listen` of the console process, meant for a DMZ and
//! serving nothing else) shows a landing page on `GET /d/<token>` and sends the file on
//! `POST`, so that link scanners which fetch every address in a mail do not spend the
//! downloads. Every attempt is logged with its time, client address and outcome, and the
//! sender sees them on a page of the console their notice links to.

use sha2::{Digest, Sha256};

use super::{hex, random_hex, Result, Workflow, WorkflowError};
use crate::policy::LinkSettings;

/// Wrong passwords after which a link refuses every further try.
pub const MAX_PASSWORD_FAILURES: u32 = 10;

/// One download link as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadLink {
    /// SHA-256 (hex) of the link's token; the token itself is only in the mail.
    pub token_sha256: String,
    /// The audit record of the mail.
    pub record_id: i64,
    /// The file's name as the mail gave it.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 (the evidence store's key).
    pub sha256: String,
    /// When the link was made (Unix seconds).
    pub created: i64,
    /// When it stops working.
    pub expires: i64,
    /// Downloads allowed (0: no limit).
    pub max_downloads: u32,
    /// Downloads so far.
    pub downloads: u32,
    /// Wrong passwords so far.
    pub failures: u32,
    /// `salt:sha256(salt || password)` when the link needs a password.
    pub password: Option<String>,
    /// The mail's sender.
    pub sender: String,
}

/// One try to download (logged whatever its outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadEvent {
    /// Unix seconds.
    pub time: i64,
    /// The link (SHA-256 of its token).
    pub token_sha256: String,
    /// The record of the mail.
    pub record_id: i64,
    /// The file.
    pub name: String,
    /// The client's address.
    pub client: String,
    /// `downloaded`, `expired`, `limit_reached`, `wrong_password`, `locked`, `not_kept`.
    pub outcome: String,
}

/// A file taken out of a message, with the token of its link.
#[derive(Debug, Clone)]
pub struct LinkedFile {
    /// Its name.
    pub name: String,
    /// Its bytes (transfer encoding undone: the file as it was attached).
    pub data: Vec<u8>,
    /// The link's token (48 hex digits).
    pub token: String,
}

/// A message with its attachments replaced by links, before the links are stored.
#[derive(Debug, Clone)]
pub struct PreparedLinks {
    /// The message as it goes out: the same headers, the attachments replaced.
    pub message: Vec<u8>,
    /// Where its body starts (the headers are the original's, byte for byte).
    pub body_offset: usize,
    /// The files.
    pub files: Vec<LinkedFile>,
    /// The password of this mail's links (mailed to the sender only).
    pub password: Option<String>,
    /// When the links stop working.
    pub expires: i64,
    /// Downloads allowed per link (0: no limit).
    pub max_downloads: u32,
    /// The download listener's public address.
    pub url: String,
}

/// What a download request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// The file.
    File {
        /// Its name.
        name: String,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// Refused, with the logged outcome (`expired`, `limit_reached`, `wrong_password`,
    /// `locked`, `not_kept`) or `unknown` (no such link; not logged).
    Refused(&'static str),
}

/// The SHA-256 (hex) of a token.
pub fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn password_digest(salt: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(password.as_bytes());
    hex(&h.finalize())
}

/// A password people can read out on the phone: 12 characters without look-alikes.
fn new_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).expect("the operating system's random source");
    // 56 symbols: the small modulo bias (256 = 4 * 56 + 32) costs under a bit of 71.
    b.iter()
        .map(|x| ALPHABET[usize::from(*x) % ALPHABET.len()] as char)
        .collect()
}

/// An attachment that a link replaces.
struct Attached {
    /// The bytes of the whole part, its headers included.
    range: std::ops::Range<usize>,
    name: String,
    /// Its content, transfer encoding undone.
    data: Vec<u8>,
}

/// The attachments of `raw` that links replace. Parts inside a forwarded message go with it.
fn attachment_parts(raw: &[u8]) -> Option<Vec<Attached>> {
    use mail_parser::{decoders, Encoding, MimeHeaders, PartType};
    let msg = mail_parser::MessageParser::default().parse(raw)?;
    let root = msg.parts.first()?;
    if !root.is_multipart() {
        // A message that is one attachment and nothing else cannot keep its headers and lose
        // the file: refused by the caller rather than sent with it.
        let attached = root.attachment_name().is_some()
            || root
                .content_disposition()
                .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        return (!attached).then(Vec::new);
    }
    let mut out: Vec<Attached> = Vec::new();
    for part in msg.parts.iter().skip(1) {
        if part.is_multipart() {
            continue;
        }
        let disposition_attachment = part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"));
        let name = part.attachment_name().map(str::to_string);
        let forwarded = matches!(part.body, PartType::Message(_));
        if name.is_none() && !disposition_attachment && !forwarded {
            continue;
        }
        let (start, body, end) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        if !(start < body && body <= end && end <= raw.len()) || start == 0 {
            return None;
        }
        // Parts do not overlap (those of a forwarded message are not in this list).
        if out.last().is_some_and(|a| a.range.end > start) {
            return None;
        }
        let encoded = &raw[body..end];
        let data = match part.encoding {
            Encoding::Base64 => decoders::base64::base64_decode(encoded),
            Encoding::QuotedPrintable => {
                decoders::quoted_printable::quoted_printable_decode(encoded)
            }
            Encoding::None => Some(encoded.to_vec()),
        }
        .unwrap_or_else(|| part.contents().to_vec());
        let name = name.unwrap_or_else(|| {
            if forwarded {
                "forwarded.eml".to_string()
            } else {
                "attachment.bin".to_string()
            }
        });
        out.push(Attached {
            range: start..end,
            name,
            data,
        });
    }
    Some(out)
}

/// How a size reads in the notice.
fn size_text(n: u64) -> String {
    if n >= 1024 * 1024 {
        format!("{:.1} MB", n as f64 / 1_048_576.0)
    } else if n >= 1024 {
        format!("{:.1} KB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// The text that takes an attachment's place.
fn link_part(
    file: &LinkedFile,
    url: &str,
    expires_text: &str,
    max_downloads: u32,
    password: bool,
    crlf: bool,
) -> Vec<u8> {
    let limit = if max_downloads == 0 {
        String::new()
    } else {
        format!(" (最大 {max_downloads} 回 / up to {max_downloads} downloads)")
    };
    let pw = if password {
        "パスワードは送信者から別の方法でお知らせします。\nThe sender will give you the password another way.\n"
    } else {
        ""
    };
    let text = format!(
        "添付ファイル「{name}」({size}) はダウンロードリンクに置き換えられました。\n\
         The attachment \"{name}\" ({size}) was replaced by a download link.\n\n\
         {url}/d/{token}\n\n\
         有効期限 / Expires: {expires_text}{limit}\n{pw}",
        name = file.name.replace(['\r', '\n'], " "),
        size = size_text(file.data.len() as u64),
        token = file.token,
    );
    let nl = if crlf { "\r\n" } else { "\n" };
    let mut body = crate::text::base64_encode_mime(text.replace('\n', "\r\n").as_bytes());
    if !crlf {
        body = body.replace("\r\n", "\n");
    }
    let body = body.trim_end();
    format!(
        "Content-Type: text/plain; charset=utf-8{nl}Content-Transfer-Encoding: base64{nl}\
         Content-Disposition: inline{nl}{nl}{body}{nl}"
    )
    .into_bytes()
}

/// Replaces the attachments of `raw` by links to `settings.url`. `Ok(None)` when the message
/// has no attachment to replace; `Err` (the caller refuses the mail) when it cannot be taken
/// apart safely or is nothing but an attachment. `now` and `offset_min` give the expiry and
/// how it reads.
pub fn prepare(
    raw: &[u8],
    settings: &LinkSettings,
    now: i64,
    offset_min: i32,
) -> std::result::Result<Option<PreparedLinks>, String> {
    let url = settings
        .url
        .as_deref()
        .ok_or("no [links] url in the policy")?;
    let Some(parts) = attachment_parts(raw) else {
        return Err("the message's MIME structure cannot be taken apart safely".into());
    };
    if parts.is_empty() {
        return Ok(None);
    }
    let body_offset = body_start(raw).ok_or("the message has no body")?;
    if parts.iter().any(|a| a.range.start < body_offset) {
        return Err("an attachment starts inside the message's headers".into());
    }
    let expires = now + settings.expires;
    let expires_text = crate::timeutil::rfc3339(expires, offset_min);
    let password = settings.password.then(new_password);
    let crlf = raw.windows(2).any(|w| w == b"\r\n");
    let mut files = Vec::with_capacity(parts.len());
    let mut message = Vec::with_capacity(raw.len() / 2 + 1024);
    let mut at = 0;
    for Attached { range, name, data } in parts {
        let file = LinkedFile {
            name,
            data,
            token: random_hex(24),
        };
        message.extend_from_slice(&raw[at..range.start]);
        let mut part = link_part(
            &file,
            url,
            &expires_text,
            settings.max_downloads,
            password.is_some(),
            crlf,
        );
        // The part's end is where the line break before the next boundary starts; keep
        // whatever line break the original had there.
        if raw[..range.end].ends_with(b"\n") {
            // (the range took the line break: our part already ends with one)
        } else {
            while part.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                part.pop();
            }
        }
        message.extend_from_slice(&part);
        at = range.end;
        files.push(file);
    }
    message.extend_from_slice(&raw[at..]);
    Ok(Some(PreparedLinks {
        message,
        body_offset,
        files,
        password,
        expires,
        max_downloads: settings.max_downloads,
        url: url.to_string(),
    }))
}

/// Where the body of a message starts (after the blank line ending its headers).
fn body_start(raw: &[u8]) -> Option<usize> {
    let blank = crate::pipeline::find_header_end(raw);
    memchr::memchr(b'\n', raw.get(blank..)?).map(|k| blank + k + 1)
}

impl Workflow {
    /// Stores the links of a prepared message for record `record_id`: the files in the
    /// evidence store (kept a day past the expiry), one row per link, and mails the sender the
    /// list of links with the password (through the notify command) when one is set.
    pub fn store_links(&self, record_id: i64, sender: &str, p: &PreparedLinks) -> Result<()> {
        let now = crate::timeutil::now();
        let days = u32::try_from((p.expires - now).max(0) / 86_400 + 2).unwrap_or(u32::MAX);
        for f in &p.files {
            let sha = self.evidence().put(&f.data, days, record_id, &f.name)?;
            let password = p.password.as_ref().map(|pw| {
                let salt = random_hex(8);
                format!("{salt}:{}", password_digest(&salt, pw))
            });
            self.store().link_add(&DownloadLink {
                token_sha256: token_digest(&f.token),
                record_id,
                name: f.name.clone(),
                size: f.data.len() as u64,
                sha256: sha,
                created: now,
                expires: p.expires,
                max_downloads: p.max_downloads,
                downloads: 0,
                failures: 0,
                password,
                sender: sender.to_string(),
            })?;
        }
        self.mail_sender_links(record_id, sender, p);
        Ok(())
    }

    /// The sender's page of a mail's links: `{console_url}/links/{record}?t=...`.
    pub fn links_page_url(&self, base: &str, record_id: i64) -> String {
        format!(
            "{}/links/{record_id}?t={}",
            base.trim_end_matches('/'),
            self.links_page_token(record_id)
        )
    }

    /// The token of the sender's page of a record's links (an HMAC over the record id).
    pub fn links_page_token(&self, record_id: i64) -> String {
        hex(&self.mac(&format!("links|{record_id}")))
    }

    /// Checks a token of [`Workflow::links_page_token`].
    pub fn verify_links_page_token(&self, record_id: i64, token: &str) -> bool {
        crate::text::constant_time_eq(
            self.links_page_token(record_id).as_bytes(),
            token.as_bytes(),
        )
    }

    fn mail_sender_links(&self, record_id: i64, sender: &str, p: &PreparedLinks) {
        let Some(cmd) = &self.cfg.notify_command else {
            return;
        };
        if !sender.contains('@') || sender.contains(['\r', '\n']) {
            return;
        }
        let from = self.cfg.notify_from.as_deref().unwrap_or("postmaster");
        let until = crate::timeutil::rfc3339(p.expires, self.cfg.utc_offset_min);
        let mut list = String::new();
        for f in &p.files {
            list.push_str(&format!(
                "- {} ({})\n  {}/d/{}\n",
                f.name.replace(['\r', '\n'], " "),
                size_text(f.data.len() as u64),
                p.url,
                f.token
            ));
        }
        let pw = match &p.password {
            Some(pw) => format!(
                "\nパスワード / Password: {pw}\n受信者には、メール以外の方法 (電話など) でお伝えください。\nTell the recipients by another way than mail (a phone call).\n"
            ),
            None => String::new(),
        };
        let page = match &self.cfg.console_url {
            Some(base) => format!(
                "\nダウンロードの記録 / Who downloaded: {}\n",
                self.links_page_url(base, record_id)
            ),
            None => String::new(),
        };
        let body = format!(
            "送信されたメールの添付ファイルはダウンロードリンクに置き換えられました (有効期限 {until})。\n\
             The attachments of your mail were replaced by download links (until {until}).\n\n{list}{pw}{page}"
        );
        let msg = super::auto_mail(
            from,
            sender,
            "【ping32dlp】添付ファイルのダウンロードリンク / Download links",
            &format!("record-{record_id}"),
            &body,
        );
        let detail = match super::run_shell(cmd, Some(&msg)) {
            Ok(()) => "download links mailed to the sender".to_string(),
            Err(e) => format!("FAILED: links notice to {sender}: {cmd}: {e}"),
        };
        crate::service::log_event(
            "ping32dlp",
            "links_notice",
            &[("record", &record_id.to_string())],
            &detail,
        );
    }

    /// The download page's view of a link (no download counted): `None` when unknown.
    pub fn link(&self, token: &str) -> Result<Option<DownloadLink>> {
        if token.len() != 48 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        self.store().link_get(&token_digest(token))
    }

    /// A download: checks expiry, count, lock and password, counts it, logs the attempt with
    /// `client`, and returns the file (checked against its SHA-256 by the evidence store).
    pub fn fetch_link(
        &self,
        token: &str,
        password: Option<&str>,
        client: &str,
        now: i64,
    ) -> Result<Fetch> {
        let Some(l) = self.link(token)? else {
            return Ok(Fetch::Refused("unknown"));
        };
        let log = |outcome: &'static str| -> Result<Fetch> {
            self.store().link_log(&DownloadEvent {
                time: now,
                token_sha256: l.token_sha256.clone(),
                record_id: l.record_id,
                name: l.name.clone(),
                client: client.to_string(),
                outcome: outcome.to_string(),
            })?;
            Ok(Fetch::Refused(outcome))
        };
        if now >= l.expires {
            return log("expired");
        }
        if l.failures >= MAX_PASSWORD_FAILURES {
            return log("locked");
        }
        if let Some(stored) = &l.password {
            let (salt, digest) = stored.split_once(':').unwrap_or(("", stored));
            let given = password_digest(salt, password.unwrap_or("").trim());
            if !crate::text::constant_time_eq(given.as_bytes(), digest.as_bytes()) {
                self.store().link_fail(&l.token_sha256)?;
                return log("wrong_password");
            }
        }
        if !self.store().link_take(&l.token_sha256, now)? {
            return log(if now >= l.expires {
                "expired"
            } else {
                "limit_reached"
            });
        }
        let data = match self.evidence().get(&l.sha256) {
            Ok(Some(d)) => d,
            Ok(None) => return log("not_kept"),
            Err(WorkflowError::Tampered(_)) => return log("not_kept"),
            Err(e) => return Err(e),
        };
        log("downloaded")?;
        Ok(Fetch::File { name: l.name, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LinkSettings {
        LinkSettings {
            url: Some("https://dl.example.co.jp".into()),
            ..LinkSettings::default()
        }
    }

    const MAIL: &str = "From: a@example.co.jp\r\nTo: b@partner.jp\r\nSubject: q\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\r\nbody text\r\n--XX\r\n\
        Content-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\
        Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\nJVBERi0xLjQKJcfs\r\n--XX\r\n\
        Content-Type: text/plain; name=\"b.txt\"\r\nContent-Disposition: attachment; filename=\"b.txt\"\r\n\r\nplain file\r\n--XX--\r\n";

    #[test]
    fn attachments_become_links_and_the_rest_stays_byte_for_byte() {
        let p = prepare(MAIL.as_bytes(), &settings(), 1_000_000, 540)
            .unwrap()
            .unwrap();
        assert_eq!(p.files.len(), 2);
        assert_eq!(p.files[0].name, "a.pdf");
        assert_eq!(p.files[0].data, b"%PDF-1.4\n%\xc7\xec");
        assert_eq!(p.files[1].data, b"plain file");
        let out = String::from_utf8(p.message.clone()).unwrap();
        let head_end = MAIL.find("\r\n\r\n").unwrap() + 4;
        assert_eq!(&out[..head_end], &MAIL[..head_end]);
        assert_eq!(p.body_offset, head_end);
        assert!(out.contains("body text\r\n--XX\r\n"));
        assert!(!out.contains("JVBERi0xLjQKJcfs"));
        assert!(!out.contains("plain file"));
        assert!(out.ends_with("\r\n--XX--\r\n"));
        // Read again: two inline text parts with the links, no attachment left.
        let m = mail_parser::MessageParser::default()
            .parse(&p.message)
            .unwrap();
        use mail_parser::MimeHeaders;
        assert!(m.parts.iter().all(|x| x.attachment_name().is_none()));
        let texts: Vec<String> = (0..3)
            .filter_map(|i| m.body_text(i).map(|t| t.into_owned()))
            .collect();
        assert_eq!(texts.len(), 3, "{texts:?}");
        for (t, f) in texts[1..].iter().zip(&p.files) {
            assert!(
                t.contains(&format!("https://dl.example.co.jp/d/{}", f.token)),
                "{t}"
            );
            assert!(t.contains(&f.name));
        }
    }

    #[test]
    fn nothing_to_replace_and_broken_messages() {
        let plain = b"From: a@x.jp\r\nSubject: s\r\n\r\njust text\r\n";
        assert!(prepare(plain, &settings(), 0, 0).unwrap().is_none());
        let no_att = b"From: a@x.jp\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\n";
        assert!(prepare(no_att, &settings(), 0, 0).unwrap().is_none());
        let mut s = settings();
        s.url = None;
        assert!(prepare(MAIL.as_bytes(), &s, 0, 0).is_err());
        // A message that is nothing but an attachment cannot go out without it: refused.
        let whole = b"From: a@x.jp\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment\r\n\r\n%PDF-1.4\r\n";
        assert!(prepare(whole, &settings(), 0, 0).is_err());
    }

    #[test]
    fn lf_only_messages_keep_lf() {
        let lf = MAIL.replace("\r\n", "\n");
        let p = prepare(lf.as_bytes(), &settings(), 0, 0).unwrap().unwrap();
        assert!(!p.message.windows(2).any(|w| w == b"\r\n"));
        assert_eq!(p.files.len(), 2);
        assert_eq!(p.files[1].data, b"plain file");
    }

    #[test]
    fn any_bytes_are_safe() {
        // Truncations of a real message: never a panic, never an attachment left in place
        // when links were made.
        for cut in 0..MAIL.len() {
            if let Ok(Some(p)) = prepare(&MAIL.as_bytes()[..cut], &settings(), 0, 0) {
                assert!(!p.files.is_empty());
                assert!(p.message.starts_with(&MAIL.as_bytes()[..p.body_offset]));
            }
        }
    }

    #[test]
    fn passwords_are_readable_and_random() {
        let a = new_password();
        assert_eq!(a.len(), 12);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() && !b"0O1lI".contains(&b)));
        assert_ne!(a, new_password());
    }
}
