//! Legacy binary Office: Excel 97-2003 workbooks (BIFF8, cells read record by record; never a
//! dense range) and Word 97-2003 documents (text from the piece table). Both live in a compound
//! file (CFB); an encrypted one (`FILEPASS`, `fEncrypted`) is reported, not guessed at.

use std::io::{Cursor, Read};

use super::ooxml::SheetText;
use super::{Ctx, Reason, Segment};

fn read_stream(ctx: &mut Ctx<'_>, location: &str, data: &[u8], names: &[&str]) -> Option<Vec<u8>> {
    let mut c = match cfb::CompoundFile::open(Cursor::new(data)) {
        Ok(c) => c,
        Err(e) => {
            ctx.unscannable(location, Reason::Corrupt, format!("compound file: {e}"));
            return None;
        }
    };
    let name = names.iter().find(|n| c.is_stream(n))?;
    let cap = ctx.limits().entry_bytes;
    let mut s = match c.open_stream(name) {
        Ok(s) => s,
        Err(e) => {
            ctx.unscannable(location, Reason::Corrupt, format!("{name}: {e}"));
            return None;
        }
    };
    let mut buf = Vec::new();
    if let Err(e) = (&mut s).take(cap).read_to_end(&mut buf) {
        ctx.unscannable(location, Reason::Corrupt, format!("{name}: {e}"));
        return None;
    }
    Some(buf)
}

/// Records of a BIFF stream: (type, data), stopping at the first malformed header.
fn records(s: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut i = 0;
    std::iter::from_fn(move || {
        let h = s.get(i..i + 4)?;
        let (t, len) = (
            u16::from_le_bytes([h[0], h[1]]),
            usize::from(u16::from_le_bytes([h[2], h[3]])),
        );
        let d = s.get(i + 4..i + 4 + len)?;
        i += 4 + len;
        Some((t, d))
    })
}

/// Reads strings that may continue across `CONTINUE` records: a reader over several chunks.
struct Chunks<'a> {
    chunks: Vec<&'a [u8]>,
    c: usize,
    i: usize,
}

impl<'a> Chunks<'a> {
    fn bytes(&mut self, mut n: usize, out: &mut Vec<u8>) -> Option<()> {
        while n > 0 {
            let cur = self.chunks.get(self.c)?;
            if self.i >= cur.len() {
                self.c += 1;
                self.i = 0;
                continue;
            }
            let take = n.min(cur.len() - self.i);
            out.extend_from_slice(&cur[self.i..self.i + take]);
            self.i += take;
            n -= take;
        }
        Some(())
    }
    fn u8(&mut self) -> Option<u8> {
        let mut b = Vec::with_capacity(1);
        self.bytes(1, &mut b)?;
        Some(b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        let mut b = Vec::with_capacity(2);
        self.bytes(2, &mut b)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let mut b = Vec::with_capacity(4);
        self.bytes(4, &mut b)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        let mut sink = Vec::new();
        self.bytes(n, &mut sink)
    }
    /// `cch` characters; at a chunk boundary a new option byte says their width.
    fn chars(&mut self, cch: usize, mut high: bool) -> Option<String> {
        let mut s = String::with_capacity(cch);
        let mut left = cch;
        while left > 0 {
            let cur = self.chunks.get(self.c)?;
            if self.i >= cur.len() {
                self.c += 1;
                self.i = 0;
                high = self.chunks.get(self.c)?.first()? & 1 != 0;
                self.i = 1;
                continue;
            }
            if high {
                let b = cur.get(self.i..self.i + 2)?;
                s.push(
                    char::from_u32(u32::from(u16::from_le_bytes([b[0], b[1]])))
                        .unwrap_or('\u{FFFD}'),
                );
                self.i += 2;
            } else {
                s.push(char::from(cur[self.i]));
                self.i += 1;
            }
            left -= 1;
        }
        Some(s)
    }
}

/// XLUnicodeRichExtendedString (SST entries).
fn rich_string(r: &mut Chunks<'_>) -> Option<String> {
    let cch = usize::from(r.u16()?);
    let flags = r.u8()?;
    let runs = if flags & 0x08 != 0 {
        usize::from(r.u16()?)
    } else {
        0
    };
    let ext = if flags & 0x04 != 0 {
        r.u32()? as usize
    } else {
        0
    };
    let s = r.chars(cch, flags & 1 != 0)?;
    r.skip(runs * 4)?;
    r.skip(ext)?;
    Some(s)
}

/// XLUnicodeString in one record (LABEL, STRING): u16 length, flags, characters. UTF-16 code
/// units are decoded as such (surrogate pairs joined).
fn unicode_string(d: &[u8]) -> Option<String> {
    let cch = usize::from(u16::from_le_bytes([*d.first()?, *d.get(1)?]));
    let flags = *d.get(2)?;
    let body = &d[3..];
    if flags & 1 != 0 {
        let units: Vec<u16> = body
            .chunks_exact(2)
            .take(cch)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        Some(String::from_utf16_lossy(&units))
    } else {
        Some(body.iter().take(cch).map(|&b| char::from(b)).collect())
    }
}

fn rk_value(rk: u32) -> String {
    let v = if rk & 2 != 0 {
        f64::from((rk as i32) >> 2)
    } else {
        f64::from_bits(u64::from(rk & 0xFFFF_FFFC) << 32)
    };
    let v = if rk & 1 != 0 { v / 100.0 } else { v };
    number(v)
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// An Excel 97-2003 workbook.
pub(crate) fn xls(ctx: &mut Ctx<'_>, location: &str, data: &[u8]) {
    let Some(wb) = read_stream(ctx, location, data, &["/Workbook", "/Book"]) else {
        return;
    };
    let all: Vec<(u16, &[u8])> = records(&wb).collect();
    if all.iter().any(|(t, _)| *t == 0x002F) {
        ctx.unscannable(location, Reason::Encrypted, "xls");
        return;
    }
    // Sheet names (BOUNDSHEET) and the shared string table (SST + CONTINUE).
    let mut names: Vec<String> = Vec::new();
    let mut sst: Vec<String> = Vec::new();
    let mut k = 0;
    while k < all.len() {
        let (t, d) = all[k];
        if t == 0x0085 && d.len() > 8 {
            let cch = usize::from(d[6]);
            let high = d[7] & 1 != 0;
            let body = &d[8..];
            let name = if high {
                let u: Vec<u16> = body
                    .chunks_exact(2)
                    .take(cch)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16_lossy(&u)
            } else {
                body.iter().take(cch).map(|&b| char::from(b)).collect()
            };
            names.push(name);
        }
        if t == 0x00FC && d.len() >= 8 {
            let unique = u32::from_le_bytes([d[4], d[5], d[6], d[7]]) as usize;
            let mut chunks = vec![&d[8..]];
            let mut j = k + 1;
            while j < all.len() && all[j].0 == 0x003C {
                chunks.push(all[j].1);
                j += 1;
            }
            let mut r = Chunks { chunks, c: 0, i: 0 };
            for _ in 0..unique.min(ctx.limits().cells) {
                match rich_string(&mut r) {
                    Some(s) => sst.push(s),
                    None => break,
                }
            }
        }
        k += 1;
    }
    // Cells, sheet by sheet (a worksheet substream starts with BOF type 0x0010).
    let mut cells_left = ctx.limits().cells;
    let mut over = false;
    let mut sheets: Vec<SheetText> = Vec::new();
    let mut in_sheet = false;
    let mut pending_formula: Option<(u32, u32)> = None;
    for (t, d) in &all {
        let rc = || -> Option<(u32, u32)> {
            Some((
                u32::from(u16::from_le_bytes([*d.first()?, *d.get(1)?])) + 1,
                u32::from(u16::from_le_bytes([*d.get(2)?, *d.get(3)?])),
            ))
        };
        let mut put = |sheets: &mut Vec<SheetText>, row: u32, col: u32, v: &str| {
            if cells_left == 0 {
                over = true;
                return;
            }
            cells_left -= 1;
            if let Some(s) = sheets.last_mut() {
                s.cell(row, col, v);
            }
        };
        match *t {
            0x0809 => {
                let kind = d.get(2..4).map(|b| u16::from_le_bytes([b[0], b[1]]));
                in_sheet = kind == Some(0x0010);
                if in_sheet {
                    sheets.push(SheetText::default());
                }
            }
            _ if !in_sheet => {}
            0x00FD => {
                if let (Some((r, c)), Some(i)) = (
                    rc(),
                    d.get(6..10)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize),
                ) {
                    if let Some(s) = sst.get(i) {
                        put(&mut sheets, r, c, s);
                    }
                }
            }
            0x0204 => {
                if let (Some((r, c)), Some(s)) = (rc(), d.get(6..).and_then(unicode_string)) {
                    put(&mut sheets, r, c, &s);
                }
            }
            0x0203 => {
                if let (Some((r, c)), Some(b)) = (rc(), d.get(6..14)) {
                    let v = f64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
                    put(&mut sheets, r, c, &number(v));
                }
            }
            0x027E => {
                if let (Some((r, c)), Some(b)) = (rc(), d.get(6..10)) {
                    put(
                        &mut sheets,
                        r,
                        c,
                        &rk_value(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                    );
                }
            }
            0x00BD => {
                if let Some((r, c0)) = rc() {
                    for (k, chunk) in d
                        .get(4..d.len().saturating_sub(2))
                        .unwrap_or(&[])
                        .chunks_exact(6)
                        .enumerate()
                    {
                        let rk = u32::from_le_bytes([chunk[2], chunk[3], chunk[4], chunk[5]]);
                        put(&mut sheets, r, c0 + k as u32, &rk_value(rk));
                    }
                }
            }
            0x0006 => {
                if let (Some((r, c)), Some(res)) = (rc(), d.get(6..14)) {
                    if res[6] == 0xFF && res[7] == 0xFF {
                        if res[0] == 0 {
                            pending_formula = Some((r, c)); // string result in the next STRING record
                        }
                    } else {
                        put(
                            &mut sheets,
                            r,
                            c,
                            &number(f64::from_le_bytes(res.try_into().unwrap_or([0; 8]))),
                        );
                    }
                }
            }
            0x0207 => {
                if let (Some((r, c)), Some(s)) = (pending_formula.take(), unicode_string(d)) {
                    put(&mut sheets, r, c, &s);
                }
            }
            _ => {}
        }
    }
    if over {
        ctx.unscannable(location, Reason::LimitExceeded, "cells");
    }
    for (i, s) in sheets.into_iter().enumerate() {
        ctx.push_text(Segment {
            location: location.to_string(),
            text: s.text,
            sheet: Some(
                names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("Sheet{}", i + 1)),
            ),
            cells: s.cells,
            grid: s.grid,
            ..Segment::default()
        });
    }
}

/// A Word 97-2003 document: text pieces from the piece table (CLX) of the table stream.
pub(crate) fn doc(ctx: &mut Ctx<'_>, location: &str, data: &[u8]) {
    let Some(wd) = read_stream(ctx, location, data, &["/WordDocument"]) else {
        return;
    };
    let u16_at = |s: &[u8], o: usize| s.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |s: &[u8], o: usize| {
        s.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if u16_at(&wd, 0) != Some(0xA5EC) {
        ctx.unscannable(location, Reason::Corrupt, "doc: no Word FIB");
        return;
    }
    let flags = u16_at(&wd, 0x0A).unwrap_or(0);
    if flags & 0x0100 != 0 {
        ctx.unscannable(location, Reason::Encrypted, "office");
        return;
    }
    let table_name = if flags & 0x0200 != 0 {
        "/1Table"
    } else {
        "/0Table"
    };
    let (Some(fc_clx), Some(lcb_clx)) = (u32_at(&wd, 0x01A2), u32_at(&wd, 0x01A6)) else {
        ctx.unscannable(location, Reason::Corrupt, "doc: short FIB");
        return;
    };
    let Some(table) = read_stream(ctx, location, data, &[table_name]) else {
        ctx.unscannable(location, Reason::Corrupt, "doc: no table stream");
        return;
    };
    let Some(clx) = table.get(fc_clx as usize..(fc_clx as usize).saturating_add(lcb_clx as usize))
    else {
        ctx.unscannable(location, Reason::Corrupt, "doc: CLX out of range");
        return;
    };
    // Skip Prc entries (0x01), find the Pcdt (0x02).
    let mut i = 0;
    while clx.get(i) == Some(&0x01) {
        i += 3 + usize::from(u16_at(clx, i + 1).unwrap_or(0));
    }
    if clx.get(i) != Some(&0x02) {
        ctx.unscannable(location, Reason::Corrupt, "doc: no piece table");
        return;
    }
    let lcb = u32_at(clx, i + 1).unwrap_or(0) as usize;
    let plc = clx.get(i + 5..i + 5 + lcb).unwrap_or(&[]);
    if plc.len() < 4 {
        return;
    }
    let n = (plc.len() - 4) / 12;
    let mut text = String::new();
    let limit = ctx.limits().text_per_object;
    for k in 0..n {
        let (Some(cp0), Some(cp1)) = (u32_at(plc, k * 4), u32_at(plc, (k + 1) * 4)) else {
            break;
        };
        let pcd = (n + 1) * 4 + k * 8;
        let Some(fc) = u32_at(plc, pcd + 2) else {
            break;
        };
        let chars = cp1.saturating_sub(cp0) as usize;
        if fc & 0x4000_0000 != 0 {
            let start = ((fc & 0x3FFF_FFFF) / 2) as usize;
            if let Some(b) = wd.get(start..start.saturating_add(chars)) {
                text.push_str(&encoding_rs::WINDOWS_1252.decode_without_bom_handling(b).0);
            }
        } else {
            let start = fc as usize;
            if let Some(b) = wd.get(start..start.saturating_add(chars * 2)) {
                let u: Vec<u16> = b
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                text.push_str(&String::from_utf16_lossy(&u));
            }
        }
        if text.len() > limit {
            break;
        }
    }
    // Word's control characters: paragraph and cell marks, field delimiters.
    let text: String = text
        .chars()
        .filter_map(|c| match c {
            '\r' | '\u{0B}' | '\u{0C}' => Some('\n'),
            '\u{07}' => Some('\t'),
            '\u{13}' | '\u{14}' | '\u{15}' | '\u{01}' | '\u{08}' => None,
            c => Some(c),
        })
        .collect();
    ctx.push_text(Segment {
        location: location.to_string(),
        text,
        ..Segment::default()
    });
}
