//! Outlook items (`.msg`, [MS-OXMSG]): subject, sender, recipients, the body (plain, HTML or
//! compressed RTF) and the attachments, recursed (a file, or a whole message embedded as an
//! attachment: `転送.msg/見積.msg/見積書.xlsx`).
//!
//! A `.msg` is a compound file (opened with `cfb`) whose properties are named streams:
//! `__substg1.0_IIIITTTT` holds property `IIII` of type `TTTT` (`001F` UTF-16, `001E` 8-bit in
//! the message's code page, `0102` binary), and `__properties_version1.0` holds the fixed-size
//! ones (16-byte entries after a header of 32 bytes for the message, 24 for an embedded
//! message, 8 for a recipient or an attachment). Recipients are storages
//! `__recip_version1.0_#N`, attachments `__attach_version1.0_#N`; an embedded message is the
//! storage `__substg1.0_3701000D` of its attachment, laid out like a message. The msg_parser
//! crate carries its own compound-file reader and does not recurse into embedded messages, so
//! this walk is ours, on the `cfb` crate the project already uses for doc / xls / ppt;
//! compressed RTF is decompressed by Microsoft's `compressed-rtf` crate behind size checks.

use std::io::{Cursor, Read};

use cfb::CompoundFile;

use super::{html_to_text, inspect, join, password_candidates, Ctx, Reason, Segment};

type Cfb<'a> = CompoundFile<Cursor<&'a [u8]>>;

const SUBJECT: u16 = 0x0037;
const CLIENT_SUBMIT_TIME: u16 = 0x0039;
const SENT_REPRESENTING_NAME: u16 = 0x0042;
const SENT_REPRESENTING_EMAIL: u16 = 0x0065;
const SENDER_NAME: u16 = 0x0C1A;
const SENDER_EMAIL: u16 = 0x0C1F;
const RECIPIENT_TYPE: u16 = 0x0C15;
const BODY: u16 = 0x1000;
const RTF_COMPRESSED: u16 = 0x1009;
const HTML: u16 = 0x1013;
const INTERNET_MESSAGE_ID: u16 = 0x1035;
const DISPLAY_NAME: u16 = 0x3001;
const EMAIL_ADDRESS: u16 = 0x3003;
const ATTACH_DATA: u16 = 0x3701;
const ATTACH_FILENAME: u16 = 0x3704;
const ATTACH_METHOD: u16 = 0x3705;
const ATTACH_LONG_FILENAME: u16 = 0x3707;
const ATTACH_MIME_TAG: u16 = 0x370E;
const SMTP_ADDRESS: u16 = 0x39FE;
const INTERNET_CPID: u16 = 0x3FDE;
const MESSAGE_CODEPAGE: u16 = 0x3FFD;
const SENDER_SMTP: u16 = 0x5D01;
const SENT_REPRESENTING_SMTP: u16 = 0x5D02;

/// One message storage being read: where it is in the compound file and in the report.
struct Item<'p> {
    /// Storage path in the compound file: `` (the root) or `/__attach_version1.0_#00000000/__substg1.0_3701000D`.
    storage: String,
    /// Fixed-size properties: (id, type, value).
    fixed: Vec<(u16, u16, u64)>,
    /// The code page of 8-bit strings.
    codepage: Option<&'static encoding_rs::Encoding>,
    /// Location prefix (`転送.msg`).
    prefix: &'p str,
}

/// A `.msg` file at `location`. `top`: the file given on its own, whose headers become the
/// extraction's message information.
pub(crate) fn msg(ctx: &mut Ctx<'_>, location: &str, data: &[u8], depth: u32, top: bool) {
    let mut cf = match CompoundFile::open(Cursor::new(data)) {
        Ok(c) => c,
        Err(e) => {
            ctx.unscannable(location, Reason::Corrupt, format!("compound file: {e}"));
            return;
        }
    };
    message(ctx, &mut cf, String::new(), 32, location, depth, top);
}

fn message(
    ctx: &mut Ctx<'_>,
    cf: &mut Cfb<'_>,
    storage: String,
    header: usize,
    prefix: &str,
    depth: u32,
    top: bool,
) {
    if depth > ctx.limits().container_depth {
        ctx.unscannable(prefix, Reason::LimitExceeded, "container_depth");
        return;
    }
    let mut item = Item {
        fixed: fixed_props(cf, &storage, header, ctx.limits().entry_bytes),
        storage,
        codepage: None,
        prefix,
    };
    item.codepage = [MESSAGE_CODEPAGE, INTERNET_CPID]
        .iter()
        .find_map(|id| long(&item.fixed, *id))
        .and_then(codepage_encoding);
    let subject = string(ctx, cf, &item, &item.storage, SUBJECT);
    if top {
        ctx.out.message = Some(headers(ctx, cf, &item, subject.clone()));
    }
    if let Some(s) = subject {
        ctx.push_text(Segment {
            location: join(prefix, "subject"),
            text: s,
            ..Segment::default()
        });
    }
    if let Some(text) = body(ctx, cf, &item) {
        for c in password_candidates(&text) {
            if !ctx.out.password_candidates.contains(&c) {
                ctx.out.password_candidates.push(c);
            }
        }
        // A table, or cells or CSV lines pasted into the body (as in a MIME body).
        let grid = super::csvgrid::plain_text_grid(&text, super::GRID_CELLS);
        ctx.push_text(Segment {
            location: join(prefix, "body"),
            text,
            grid,
            ..Segment::default()
        });
    }
    attachments(ctx, cf, &item, depth);
}

/// Sender and recipients as `Name <address>`, the submit time and the Message-ID.
fn headers(
    ctx: &mut Ctx<'_>,
    cf: &mut Cfb<'_>,
    item: &Item<'_>,
    subject: Option<String>,
) -> super::MessageInfo {
    let st = item.storage.clone();
    let person = |ctx: &mut Ctx<'_>, cf: &mut Cfb<'_>, st: &str, name: u16, addrs: &[u16]| {
        let name = string(ctx, cf, item, st, name);
        let addr = addrs
            .iter()
            .find_map(|a| string(ctx, cf, item, st, *a).filter(|s| s.contains('@')));
        match (name, addr) {
            (Some(n), Some(a)) if n != a => Some(format!("{n} <{a}>")),
            (_, Some(a)) => Some(a),
            (Some(n), None) => Some(n),
            (None, None) => None,
        }
    };
    let from = person(
        ctx,
        cf,
        &st,
        SENT_REPRESENTING_NAME,
        &[SENT_REPRESENTING_SMTP, SENT_REPRESENTING_EMAIL],
    )
    .or_else(|| person(ctx, cf, &st, SENDER_NAME, &[SENDER_SMTP, SENDER_EMAIL]));
    let mut info = super::MessageInfo {
        subject,
        from: from.into_iter().collect(),
        ..super::MessageInfo::default()
    };
    for r in children(
        cf,
        &st,
        "__recip_version1.0_#",
        ctx.limits().archive_entries,
    ) {
        let path = format!("{st}/{r}");
        let fixed = fixed_props(cf, &path, 8, 1 << 16);
        let Some(p) = person(ctx, cf, &path, DISPLAY_NAME, &[SMTP_ADDRESS, EMAIL_ADDRESS]) else {
            continue;
        };
        match long(&fixed, RECIPIENT_TYPE).map(|t| t & 0x0F) {
            Some(2) => info.cc.push(p),
            Some(3) => info.bcc.push(p),
            _ => info.to.push(p),
        }
    }
    info.date = item
        .fixed
        .iter()
        .find(|(id, ty, _)| *id == CLIENT_SUBMIT_TIME && *ty == 0x0040)
        .and_then(|(_, _, v)| filetime_rfc3339(*v));
    info.message_id = string(ctx, cf, item, &st, INTERNET_MESSAGE_ID);
    info
}

/// The body: plain text when there is one, else the HTML body as text, else the compressed RTF.
fn body(ctx: &mut Ctx<'_>, cf: &mut Cfb<'_>, item: &Item<'_>) -> Option<String> {
    let st = &item.storage;
    if let Some(t) = string(ctx, cf, item, st, BODY).filter(|t| !t.trim().is_empty()) {
        return Some(t);
    }
    let cap = ctx.limits().entry_bytes;
    let html = stream(cf, &format!("{st}/__substg1.0_{HTML:04X}0102"), cap)
        .map(|b| match item.codepage {
            Some(enc) => crate::text::decode_with(&b, enc).text.into_owned(),
            None => crate::text::decode_text(&b).text.into_owned(),
        })
        .or_else(|| string(ctx, cf, item, st, HTML));
    if let Some(h) = html.filter(|h| !h.trim().is_empty()) {
        return Some(html_to_text(&h));
    }
    let rtf = stream(
        cf,
        &format!("{st}/__substg1.0_{RTF_COMPRESSED:04X}0102"),
        cap,
    )?;
    match decompress_rtf(&rtf) {
        Ok(r) => Some(super::rtf::rtf_to_text(&r)),
        Err(e) => {
            ctx.unscannable(&join(item.prefix, "body"), Reason::Corrupt, e);
            None
        }
    }
}

/// Compressed RTF ([MS-OXRTFCP]) to RTF bytes. The crate trusts the header's sizes, so they are
/// checked here first: at least the 16-byte header, a compressed size that matches the data,
/// and an uncompressed size no larger than LZFu can produce from it (each 2-byte reference
/// yields at most 17 bytes).
fn decompress_rtf(data: &[u8]) -> Result<Vec<u8>, String> {
    let u32_at = |o: usize| u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
    if data.len() < 16 {
        return Err("compressed RTF: shorter than its header".into());
    }
    let (comp_size, raw_size, kind) = (u32_at(0) as usize, u32_at(4) as usize, u32_at(8));
    if comp_size.checked_add(4) != Some(data.len()) {
        return Err("compressed RTF: size does not match".into());
    }
    match kind {
        0x414C_454D => {
            // "MELA": stored uncompressed.
            let end = 16usize.saturating_add(raw_size).min(data.len());
            Ok(data[16..end].to_vec())
        }
        0x7546_5A4C => {
            if raw_size > data.len().saturating_mul(9) {
                return Err("compressed RTF: declared size larger than possible".into());
            }
            let text =
                compressed_rtf::decompress_rtf(data).map_err(|e| format!("compressed RTF: {e}"))?;
            // The crate maps bytes to chars one to one (Latin-1); map them back.
            Ok(text.chars().map(|c| c as u32 as u8).collect())
        }
        _ => Err("compressed RTF: unknown compression type".into()),
    }
}

/// Every attachment: files inspected as files of their own, embedded messages read as
/// messages, OLE objects and references reported.
fn attachments(ctx: &mut Ctx<'_>, cf: &mut Cfb<'_>, item: &Item<'_>, depth: u32) {
    let limit = ctx.limits().archive_entries;
    let list = children(cf, &item.storage, "__attach_version1.0_#", limit + 1);
    if list.len() > limit {
        ctx.unscannable(item.prefix, Reason::LimitExceeded, "archive_entries");
    }
    for (i, a) in list.iter().take(limit).enumerate() {
        let path = format!("{}/{a}", item.storage);
        let fixed = fixed_props(cf, &path, 8, 1 << 16);
        let method = long(&fixed, ATTACH_METHOD).unwrap_or(1);
        let name = [ATTACH_LONG_FILENAME, ATTACH_FILENAME, DISPLAY_NAME]
            .iter()
            .find_map(|id| string(ctx, cf, item, &path, *id))
            .map(|n| n.replace(['/', '\\'], "_"))
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("attachment-{}", i + 1));
        let embedded = format!("{path}/__substg1.0_{ATTACH_DATA:04X}000D");
        if method == 5 && cf.is_storage(&embedded) {
            let name = if name.to_ascii_lowercase().ends_with(".msg") {
                name
            } else {
                format!("{name}.msg")
            };
            let loc = join(item.prefix, &name);
            if !ctx.take_object(&loc) || !ctx.in_time(&loc) {
                return;
            }
            ctx.out.attachments.push(super::Attachment {
                location: loc.clone(),
                name,
                kind: super::filetype::FileKind::Msg,
                depth: depth + 1,
                ..super::Attachment::default()
            });
            message(ctx, cf, embedded, 24, &loc, depth + 1, false);
            continue;
        }
        let loc = join(item.prefix, &name);
        if !ctx.take_object(&loc) || !ctx.in_time(&loc) {
            return;
        }
        if method == 6 || cf.is_storage(&embedded) {
            ctx.unscannable(
                &loc,
                Reason::UnsupportedFormat,
                "msg: OLE object attachment",
            );
            continue;
        }
        let cap = ctx.limits().entry_bytes;
        match stream(
            cf,
            &format!("{path}/__substg1.0_{ATTACH_DATA:04X}0102"),
            cap + 1,
        ) {
            Some(mut bytes) => {
                if bytes.len() as u64 > cap {
                    bytes.truncate(cap as usize);
                    ctx.unscannable(&loc, Reason::LimitExceeded, "entry_size");
                }
                let mime = string(ctx, cf, item, &path, ATTACH_MIME_TAG);
                inspect(ctx, &loc, &name, mime.as_deref(), &bytes, depth + 1);
            }
            None if (2..=4).contains(&method) => {
                ctx.unscannable(&loc, Reason::NotInspected, "msg: attachment by reference")
            }
            None => {}
        }
    }
}

/// Names of the child storages of `storage` that start with `prefix`, in order, at most `max`.
fn children(cf: &Cfb<'_>, storage: &str, prefix: &str, max: usize) -> Vec<String> {
    let dir = if storage.is_empty() { "/" } else { storage };
    let Ok(entries) = cf.read_storage(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = entries
        .filter(|e| e.is_storage() && e.name().starts_with(prefix))
        .map(|e| e.name().to_string())
        .take(max)
        .collect();
    v.sort();
    v
}

/// A stream's bytes, at most `cap`; None when it is missing or unreadable.
fn stream(cf: &mut Cfb<'_>, path: &str, cap: u64) -> Option<Vec<u8>> {
    if !cf.is_stream(path) {
        return None;
    }
    let mut buf = Vec::new();
    cf.open_stream(path)
        .ok()?
        .take(cap)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

/// A string property of the storage at `st`: UTF-16 (`001F`) or 8-bit in the code page (`001E`).
fn string(ctx: &Ctx<'_>, cf: &mut Cfb<'_>, item: &Item<'_>, st: &str, id: u16) -> Option<String> {
    let cap = ctx.limits().text_per_object as u64;
    if let Some(b) = stream(cf, &format!("{st}/__substg1.0_{id:04X}001F"), cap) {
        let u: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let s = String::from_utf16_lossy(&u);
        return Some(s.trim_end_matches('\0').to_string());
    }
    let b = stream(cf, &format!("{st}/__substg1.0_{id:04X}001E"), cap)?;
    let b = b.strip_suffix(b"\0").unwrap_or(&b);
    let s = match item.codepage {
        Some(enc) => crate::text::decode_with(b, enc).text.into_owned(),
        None => crate::text::decode_text(b).text.into_owned(),
    };
    Some(s.trim_end_matches('\0').to_string())
}

/// The fixed-size properties of a storage: (id, type, first 8 bytes of the value).
fn fixed_props(cf: &mut Cfb<'_>, storage: &str, header: usize, cap: u64) -> Vec<(u16, u16, u64)> {
    let Some(b) = stream(cf, &format!("{storage}/__properties_version1.0"), cap) else {
        return Vec::new();
    };
    b.get(header..)
        .unwrap_or(&[])
        .chunks_exact(16)
        .map(|e| {
            let tag = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            let mut v = [0u8; 8];
            v.copy_from_slice(&e[8..16]);
            ((tag >> 16) as u16, tag as u16, u64::from_le_bytes(v))
        })
        .collect()
}

/// A PT_LONG (`0003`) property.
fn long(fixed: &[(u16, u16, u64)], id: u16) -> Option<u32> {
    fixed
        .iter()
        .find(|(i, t, _)| *i == id && *t == 0x0003)
        .map(|(_, _, v)| *v as u32)
}

/// The encoding of a Windows code page number, for 8-bit strings and HTML bodies.
fn codepage_encoding(cp: u32) -> Option<&'static encoding_rs::Encoding> {
    use encoding_rs as e;
    Some(match cp {
        932 | 10001 => e::SHIFT_JIS,
        50220..=50222 => e::ISO_2022_JP,
        51932 | 20932 => e::EUC_JP,
        65001 => e::UTF_8,
        1200 => e::UTF_16LE,
        1201 => e::UTF_16BE,
        936 | 54936 => e::GB18030,
        949 | 51949 => e::EUC_KR,
        950 => e::BIG5,
        866 => e::IBM866,
        874 => e::WINDOWS_874,
        20866 => e::KOI8_R,
        21866 => e::KOI8_U,
        10000 => e::MACINTOSH,
        20127 | 28591 => e::WINDOWS_1252,
        1250..=1258 => e::Encoding::for_label(format!("windows-{cp}").as_bytes())?,
        28592..=28606 => e::Encoding::for_label(format!("iso-8859-{}", cp - 28590).as_bytes())?,
        _ => return None,
    })
}

/// A FILETIME (100 ns since 1601) as RFC 3339 UTC.
fn filetime_rfc3339(ft: u64) -> Option<String> {
    let secs = (ft / 10_000_000).checked_sub(11_644_473_600)?;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    if !(1970..=9999).contains(&y) {
        return None;
    }
    Some(format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetimes_and_codepages() {
        // 2026-11-02T01:00:00Z
        let unix = 1_793_581_200u64;
        let ft = (unix + 11_644_473_600) * 10_000_000;
        assert_eq!(
            filetime_rfc3339(ft).as_deref(),
            Some("2026-11-02T01:00:00+00:00")
        );
        assert_eq!(filetime_rfc3339(0), None);
        assert_eq!(codepage_encoding(932), Some(encoding_rs::SHIFT_JIS));
        assert_eq!(codepage_encoding(1252), Some(encoding_rs::WINDOWS_1252));
        assert_eq!(codepage_encoding(28592), Some(encoding_rs::ISO_8859_2));
        assert_eq!(codepage_encoding(12345), None);
    }

    #[test]
    fn compressed_rtf_headers_are_checked() {
        assert!(decompress_rtf(b"short").is_err());
        // A declared size of 4 GiB from 20 bytes.
        let mut d = Vec::new();
        d.extend_from_slice(&16u32.to_le_bytes());
        d.extend_from_slice(&u32::MAX.to_le_bytes());
        d.extend_from_slice(&0x7546_5A4Cu32.to_le_bytes());
        d.extend_from_slice(&[0u8; 8]);
        assert!(decompress_rtf(&d).is_err());
        // Stored ("MELA") with a size past the end: what is there is returned.
        let mut d = Vec::new();
        d.extend_from_slice(&21u32.to_le_bytes());
        d.extend_from_slice(&1000u32.to_le_bytes());
        d.extend_from_slice(&0x414C_454Du32.to_le_bytes());
        d.extend_from_slice(&[0u8; 4]);
        d.extend_from_slice(b"{\\rtf1 x}");
        assert_eq!(decompress_rtf(&d).unwrap(), b"{\\rtf1 x}");
    }
}
