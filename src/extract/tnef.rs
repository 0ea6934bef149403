//! TNEF (`winmail.dat`, `application/ms-tnef`): Outlook's wrapper around attachments. Each
//! attachment is extracted (name from `PR_ATTACH_LONG_FILENAME` or `attAttachTitle`) and
//! inspected like any other; the plain-text body (`attBody`) too.

use super::archive::member_name;
use super::{inspect, join, Ctx, Reason, Segment};

const SIGNATURE: u32 = 0x223E_9F78;
const ATT_BODY: u32 = 0x0001_800C;
const ATT_ATTACH_REND_DATA: u32 = 0x0006_9002;
const ATT_ATTACH_TITLE: u32 = 0x0001_8010;
const ATT_ATTACH_DATA: u32 = 0x0006_800F;
const ATT_ATTACHMENT: u32 = 0x0006_9005;
const PR_ATTACH_LONG_FILENAME: u16 = 0x3707;

#[derive(Default)]
struct Att<'a> {
    title: Option<String>,
    long_name: Option<String>,
    data: Option<&'a [u8]>,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    b.get(o..o + 2).map(|x| u16::from_le_bytes([x[0], x[1]]))
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    b.get(o..o + 4)
        .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

/// `PR_ATTACH_LONG_FILENAME` from an `attAttachment` MAPI property list.
fn long_filename(p: &[u8]) -> Option<String> {
    let count = u32_at(p, 0)? as usize;
    let mut o = 4;
    for _ in 0..count.min(4096) {
        let ty = u16_at(p, o)?;
        let id = u16_at(p, o + 2)?;
        o += 4;
        if id >= 0x8000 {
            // Named property: GUID, kind, then an id or a name.
            o += 16;
            let kind = u32_at(p, o)?;
            o += 4;
            if kind == 0 {
                o += 4;
            } else {
                let len = u32_at(p, o)? as usize;
                o += 4 + len.div_ceil(4) * 4;
            }
        }
        let multi = ty & 0x1000 != 0;
        let base = ty & 0x0FFF;
        let n = if multi || matches!(base, 0x001E | 0x001F | 0x0102 | 0x000D) {
            let n = u32_at(p, o)? as usize;
            o += 4;
            n
        } else {
            1
        };
        for _ in 0..n.min(1024) {
            match base {
                0x0002 | 0x0003 | 0x0004 | 0x000A | 0x000B => o += 4,
                0x0005 | 0x0006 | 0x0007 | 0x0014 | 0x0040 => o += 8,
                0x0048 => o += 16,
                0x001E | 0x001F | 0x0102 | 0x000D => {
                    let len = u32_at(p, o)? as usize;
                    let v = p.get(o + 4..o + 4 + len)?;
                    if id == PR_ATTACH_LONG_FILENAME {
                        let name = if base == 0x001F {
                            let u: Vec<u16> = v
                                .chunks_exact(2)
                                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                                .collect();
                            String::from_utf16_lossy(&u)
                        } else {
                            member_name(v, false)
                        };
                        return Some(name.trim_end_matches('\0').to_string());
                    }
                    o += 4 + len.div_ceil(4) * 4;
                }
                _ => return None,
            }
        }
    }
    None
}

pub(crate) fn tnef(ctx: &mut Ctx<'_>, location: &str, data: &[u8], depth: u32) {
    if u32_at(data, 0) != Some(SIGNATURE) {
        ctx.unscannable(location, Reason::Corrupt, "tnef: bad signature");
        return;
    }
    let mut o = 6;
    let mut atts: Vec<Att<'_>> = Vec::new();
    let mut body = String::new();
    while o + 9 <= data.len() {
        let level = data[o];
        let (Some(id), Some(len)) = (u32_at(data, o + 1), u32_at(data, o + 5)) else {
            break;
        };
        let start = o + 9;
        let Some(v) = data.get(start..start.saturating_add(len as usize)) else {
            ctx.unscannable(location, Reason::Corrupt, "tnef: truncated attribute");
            break;
        };
        match (level, id) {
            (1, ATT_BODY) => body.push_str(&member_name(v, false)),
            (2, ATT_ATTACH_REND_DATA) => atts.push(Att::default()),
            (2, ATT_ATTACH_TITLE) => {
                if let Some(a) = atts.last_mut() {
                    a.title = Some(member_name(v, false).trim_end_matches('\0').to_string());
                }
            }
            (2, ATT_ATTACH_DATA) => {
                if let Some(a) = atts.last_mut() {
                    a.data = Some(v);
                }
            }
            (2, ATT_ATTACHMENT) => {
                if let Some(a) = atts.last_mut() {
                    a.long_name = long_filename(v);
                }
            }
            _ => {}
        }
        o = start + len as usize + 2;
    }
    ctx.push_text(Segment {
        location: join(location, "body"),
        text: body,
        ..Segment::default()
    });
    for (i, a) in atts.into_iter().enumerate() {
        let name = a
            .long_name
            .or(a.title)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("attachment{}", i + 1));
        let loc = join(location, &name);
        if let Some(d) = a.data {
            if !ctx.take_object(&loc) {
                return;
            }
            inspect(ctx, &loc, &name, None, d, depth + 1);
        }
    }
}
