//! What a webmail upload carries: the HTTP body decoded (content encodings; multipart form data,
//! URL-encoded forms, JSON with base64 attachments, raw uploads) into fields and files, then
//! turned into one MIME message so that the same extraction and detection as for mail applies
//! (every file an attachment; recipients and subject from the form's fields).

use std::io::Read;

/// Something an upload carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A text field: name and value.
    Field(String, String),
    /// A file: name, declared type, bytes.
    File(String, Option<String>, Vec<u8>),
}

/// Undoes `Content-Encoding` (gzip, x-gzip, deflate, br; several in order). At most `max`
/// bytes come out; `Err` says why it could not be decoded.
pub fn decode_content_encoding(body: Vec<u8>, encoding: &str, max: u64) -> Result<Vec<u8>, String> {
    let mut data = body;
    for enc in encoding
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .rev()
    {
        let mut out = Vec::new();
        let r = match enc.as_str() {
            "" | "identity" => continue,
            "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(data.as_slice())
                .take(max + 1)
                .read_to_end(&mut out),
            "deflate" => {
                // Servers send zlib-wrapped (RFC 9110) and raw deflate alike.
                let z = flate2::read::ZlibDecoder::new(data.as_slice())
                    .take(max + 1)
                    .read_to_end(&mut out);
                if z.is_err() {
                    out.clear();
                    flate2::read::DeflateDecoder::new(data.as_slice())
                        .take(max + 1)
                        .read_to_end(&mut out)
                } else {
                    z
                }
            }
            "br" => brotli_decompressor::Decompressor::new(data.as_slice(), 4096)
                .take(max + 1)
                .read_to_end(&mut out),
            other => return Err(format!("unknown content encoding {other}")),
        };
        r.map_err(|e| format!("{enc}: {e}"))?;
        if out.len() as u64 > max {
            return Err(format!("{enc}: more than {max} bytes decoded"));
        }
        data = out;
    }
    Ok(data)
}

fn param(header: &str, name: &str) -> Option<String> {
    for part in header.split(';').skip(1) {
        let (k, v) = part.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(name) {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            return Some(v.to_string());
        }
    }
    None
}

/// `filename*=UTF-8''%E8%A6%8B...` (RFC 5987) or `filename="..."` (raw UTF-8, as browsers send).
fn disposition_filename(cd: &str) -> Option<String> {
    for part in cd.split(';').skip(1) {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("filename*") {
            let v = v.trim();
            let enc = v.splitn(3, '\'').nth(2).unwrap_or(v);
            return Some(String::from_utf8_lossy(&percent_decode(enc, false)).into_owned());
        }
    }
    param(cd, "filename")
}

/// `multipart/form-data` parts.
pub fn multipart(body: &[u8], boundary: &str) -> Vec<Item> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut items = Vec::new();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + d.len() <= body.len() {
        if &body[i..i + d.len()] == d && (i == 0 || body[i - 1] == b'\n') {
            starts.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    for w in starts.windows(2) {
        let mut part = &body[w[0] + d.len()..w[1]];
        part = part
            .strip_prefix(b"\r\n")
            .or_else(|| part.strip_prefix(b"\n"))
            .unwrap_or(part);
        part = part
            .strip_suffix(b"\r\n")
            .or_else(|| part.strip_suffix(b"\n"))
            .unwrap_or(part);
        let (head, data) = match find(part, b"\r\n\r\n") {
            Some(p) => (&part[..p], &part[p + 4..]),
            None => match find(part, b"\n\n") {
                Some(p) => (&part[..p], &part[p + 2..]),
                None => continue,
            },
        };
        let head = String::from_utf8_lossy(head);
        let mut cd = String::new();
        let mut ct = None;
        for line in head.lines() {
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-disposition") {
                    cd = v.trim().to_string();
                } else if k.trim().eq_ignore_ascii_case("content-type") {
                    ct = Some(v.trim().to_string());
                }
            }
        }
        let name = param(&cd, "name").unwrap_or_default();
        match disposition_filename(&cd) {
            Some(f) => items.push(Item::File(
                if f.is_empty() {
                    format!("{name}.bin")
                } else {
                    f
                },
                ct,
                data.to_vec(),
            )),
            None => items.push(Item::Field(
                name,
                String::from_utf8_lossy(data).into_owned(),
            )),
        }
    }
    items
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// `application/x-www-form-urlencoded` fields.
pub fn urlencoded(body: &[u8]) -> Vec<Item> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Item::Field(
                String::from_utf8_lossy(&percent_decode(k, true)).into_owned(),
                String::from_utf8_lossy(&percent_decode(v, true)).into_owned(),
            )
        })
        .collect()
}

use ping32dlp::text::base64_decode as b64;
use ping32dlp::text::percent_decode;

/// JSON: every string is a field; strings that are base64 of at least 12 bytes are decoded and
/// become a file (named by a sibling `name` / `filename` key when there is one) or, when the
/// bytes are UTF-8 text, a text field.
pub fn json(body: &[u8]) -> Option<Vec<Item>> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut items = Vec::new();
    walk(&v, "", None, &mut items, 0);
    Some(items)
}

fn walk(
    v: &serde_json::Value,
    path: &str,
    sibling_name: Option<&str>,
    out: &mut Vec<Item>,
    depth: u32,
) {
    use serde_json::Value;
    if depth > 64 {
        return;
    }
    match v {
        Value::String(s) => {
            let looks_b64 = s.len() >= 16
                && !s.contains(' ')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=-_\r\n".contains(&b));
            if let Some(bytes) = looks_b64
                .then(|| b64(s))
                .flatten()
                .filter(|b| b.len() >= 12)
            {
                match String::from_utf8(bytes) {
                    Ok(text) if !text.contains('\0') => out.push(Item::Field(path.into(), text)),
                    Ok(text) => out.push(Item::File(
                        file_name(sibling_name, path),
                        None,
                        text.into_bytes(),
                    )),
                    Err(e) => out.push(Item::File(
                        file_name(sibling_name, path),
                        None,
                        e.into_bytes(),
                    )),
                }
            } else {
                out.push(Item::Field(path.into(), s.clone()));
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk(x, &format!("{path}[{i}]"), None, out, depth + 1);
            }
        }
        Value::Object(o) => {
            let name = ["name", "filename", "fileName", "file_name"]
                .iter()
                .find_map(|k| o.get(*k).and_then(|v| v.as_str()));
            for (k, x) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(x, &p, name, out, depth + 1);
            }
        }
        _ => {}
    }
}

fn file_name(sibling: Option<&str>, path: &str) -> String {
    sibling
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}.bin", path.replace(['[', ']', '.'], "_")))
}

/// The items of an HTTP request body by its content type (raw uploads: one file named after
/// the URL's last path segment).
pub fn items(content_type: &str, url_path: &str, body: &[u8]) -> Vec<Item> {
    let ct = content_type.to_ascii_lowercase();
    if ct.starts_with("multipart/") {
        if let Some(b) = param(content_type, "boundary") {
            return multipart(body, &b);
        }
    }
    if ct.starts_with("application/x-www-form-urlencoded") {
        return urlencoded(body);
    }
    let trimmed = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| body[i]);
    if ct.contains("json") || (ct.is_empty() && matches!(trimmed, Some(b'{') | Some(b'['))) {
        if let Some(items) = json(body) {
            return items;
        }
    }
    if body.is_empty() {
        return Vec::new();
    }
    let name = url_path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .rsplit('/')
        .find(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(&percent_decode(s, false)).into_owned())
        .unwrap_or_else(|| "upload.bin".into());
    vec![Item::File(
        name,
        (!ct.is_empty()).then(|| content_type.to_string()),
        body.to_vec(),
    )]
}

/// Field names that carry recipients.
pub const RECIPIENT_FIELDS: &[&str] = &["to", "cc", "bcc", "recipients", "recipient"];

/// Whether a field's path names recipients: a segment `to`, `cc`, `bcc`, or one that starts
/// with them or mentions recipients (`toRecipients`, `message.to[0].address`).
fn is_recipient_path(path: &str) -> bool {
    path.to_ascii_lowercase()
        .split(['.', '[', ']'])
        .filter(|s| !s.is_empty())
        .any(|seg| {
            RECIPIENT_FIELDS.contains(&seg)
                || seg.contains("recipient")
                || ["to", "cc", "bcc"].iter().any(|p| {
                    seg.strip_prefix(p).is_some_and(|rest| {
                        rest.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                            || rest.starts_with("recipients")
                            || rest == "addresses"
                    })
                })
        })
}

/// The recipients named in the fields (`to`, `cc`, `bcc`, `toRecipients[0]...address`, ...).
pub fn recipients(items: &[Item]) -> Vec<String> {
    let mut out = Vec::new();
    for it in items {
        if let Item::Field(k, v) = it {
            if is_recipient_path(k) {
                for a in v.split([',', ';', ' ']) {
                    let a = a.trim().trim_start_matches('<').trim_end_matches('>');
                    if a.contains('@') && a.len() < 320 {
                        out.push(a.to_string());
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// One MIME message with the fields as a text body (and the subject field as Subject) and the
/// files as base64 attachments.
pub fn as_message(items: &[Item], from: Option<&str>, host: &str) -> Vec<u8> {
    let rcpts = recipients(items);
    let subject = items.iter().find_map(|i| match i {
        Item::Field(k, v) if k.to_ascii_lowercase().rsplit('.').next() == Some("subject") => {
            Some(v.clone())
        }
        _ => None,
    });
    let boundary = "=_ping32dlp_upload_boundary";
    let mut m = String::new();
    if let Some(f) = from {
        m.push_str(&format!("From: {f}\r\n"));
    }
    if !rcpts.is_empty() {
        m.push_str(&format!("To: {}\r\n", rcpts.join(", ")));
    }
    let subject = subject.unwrap_or_else(|| format!("upload to {host}"));
    m.push_str(&format!(
        "Subject: {}\r\n",
        ping32dlp::pipeline::encode_header_text(&subject, false)
    ));
    m.push_str(&format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    let mut text = String::new();
    for it in items {
        if let Item::Field(k, v) = it {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    let mut out = m.into_bytes();
    out.extend_from_slice(format!("--{boundary}\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n").as_bytes());
    out.extend_from_slice(ping32dlp::text::base64_encode_mime(text.as_bytes()).as_bytes());
    for it in items {
        if let Item::File(name, ct, data) = it {
            let encoded = ping32dlp::pipeline::encode_header_text(name, false).replace('"', "'");
            out.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Type: {}\r\nContent-Disposition: attachment; filename=\"{encoded}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                    ct.as_deref().filter(|c| !c.contains(['\r', '\n'])).unwrap_or("application/octet-stream")
                )
                .as_bytes(),
            );
            out.extend_from_slice(ping32dlp::text::base64_encode_mime(data).as_bytes());
        }
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\nbob@partner.example.com\r\n--XyZ\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"\xe8\xa6\x8b\xe7\xa9\x8d.txt\"\r\nContent-Type: text/plain\r\n\r\ncard 4111 1111 1111 1111\r\n--XyZ--\r\n";
        let items = items("multipart/form-data; boundary=XyZ", "/upload", body);
        assert_eq!(
            items[0],
            Item::Field("to".into(), "bob@partner.example.com".into())
        );
        assert_eq!(
            items[1],
            Item::File(
                "見積.txt".into(),
                Some("text/plain".into()),
                b"card 4111 1111 1111 1111".to_vec()
            )
        );
        assert_eq!(recipients(&items), vec!["bob@partner.example.com"]);
    }

    #[test]
    fn forms_json_and_raw_uploads() {
        let f = items(
            "application/x-www-form-urlencoded",
            "/",
            b"to=a%40b.example&body=%E5%80%8B+x",
        );
        assert_eq!(f[1], Item::Field("body".into(), "個 x".into()));
        // Microsoft Graph style: contentBytes in base64 next to its name.
        let j = br#"{"message":{"toRecipients":[{"emailAddress":{"address":"x@p.example"}}]},"attachments":[{"name":"c.txt","contentBytes":"Y2FyZCA0MTExIDExMTEgMTExMSAxMTEx"}],"raw":"AAECAwQFBgcICQoLDA0ODw=="}"#;
        let items = items("application/json", "/api", j);
        assert!(
            items.contains(&Item::Field(
                "attachments[0].contentBytes".into(),
                "card 4111 1111 1111 1111".into()
            )),
            "{items:?}"
        );
        assert!(
            items
                .iter()
                .any(|i| matches!(i, Item::File(n, _, d) if n == "raw.bin" && d.len() == 16)),
            "{items:?}"
        );
        assert_eq!(recipients(&items), vec!["x@p.example"]);
        let raw = super::items(
            "application/octet-stream",
            "/upload/%E8%B3%87%E6%96%99.pdf?x=1",
            b"%PDF-1.4",
        );
        assert_eq!(
            raw,
            vec![Item::File(
                "資料.pdf".into(),
                Some("application/octet-stream".into()),
                b"%PDF-1.4".to_vec()
            )]
        );
    }

    #[test]
    fn content_encodings() {
        use std::io::Write as _;
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        g.write_all(b"hello gzip").unwrap();
        assert_eq!(
            decode_content_encoding(g.finish().unwrap(), "gzip", 100).unwrap(),
            b"hello gzip"
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"hello deflate").unwrap();
        assert_eq!(
            decode_content_encoding(z.finish().unwrap(), "deflate", 100).unwrap(),
            b"hello deflate"
        );
        // Brotli of "hello": a known small stream.
        let br = vec![0x0b, 0x02, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x03];
        assert_eq!(decode_content_encoding(br, "br", 100).unwrap(), b"hello");
        let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        g.write_all(&[b'a'; 10_000]).unwrap();
        assert!(
            decode_content_encoding(g.finish().unwrap(), "gzip", 1000).is_err(),
            "bounded"
        );
        assert!(decode_content_encoding(b"x".to_vec(), "zstd", 100).is_err());
    }

    #[test]
    fn the_message_carries_fields_files_and_recipients() {
        let items = vec![
            Item::Field("to".into(), "x@partner.example.com".into()),
            Item::Field("subject".into(), "見積".into()),
            Item::File("a.bin".into(), None, vec![0, 1, 2]),
        ];
        let m = String::from_utf8(as_message(
            &items,
            Some("ichiro@example.co.jp"),
            "mail.example",
        ))
        .unwrap();
        assert!(m.contains("To: x@partner.example.com\r\n"));
        assert!(m.contains("Subject: =?UTF-8?B?"));
        assert!(m.contains("filename=\"a.bin\""));
    }
}
