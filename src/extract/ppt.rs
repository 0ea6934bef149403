//! PowerPoint 97-2003 (`.ppt`): the text of slides, notes, tables and comments from the
//! `PowerPoint Document` stream of the compound file ([MS-PPT]).
//!
//! The stream is a sequence of records with an 8-byte header (version and instance, type,
//! length); a record whose version nibble is `0xF` is a container whose body is more records.
//! Because children are laid out inside their parent's body, one linear walk reaches every
//! record without recursion: a container's header is stepped over, an atom is skipped whole.
//! Text lives in three atoms: `TextCharsAtom` (UTF-16LE), `TextBytesAtom` (the low bytes of
//! UTF-16 code units, i.e. Latin-1) and `CString` (UTF-16LE: comments, header and footer
//! text, hyperlink targets). Slide tables are groups of shapes whose cells are text boxes, so
//! their text comes with the rest. The master slides' placeholder prompts ("click to edit the
//! title style") are skipped. No crate reads this format; the walk is small, bounded by the
//! stream and fuzzed (`fuzz/fuzz_targets/ppt.rs`).
//!
//! Encrypted files (RC4 CryptoAPI) carry a `CryptSession10Container` and an
//! `EncryptedSummary` stream: reported as `encrypted: ppt`.

use std::io::{Cursor, Read};

use super::{Ctx, Reason, Segment};

const MAIN_MASTER: u16 = 0x03F8;
const TEXT_CHARS_ATOM: u16 = 0x0FA0;
const TEXT_BYTES_ATOM: u16 = 0x0FA8;
const CSTRING: u16 = 0x0FBA;
const CRYPT_SESSION: u16 = 0x2F14;

/// What the walk found in a `PowerPoint Document` stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PptText {
    /// The text, one atom per line.
    pub text: String,
    /// A `CryptSession10Container` was seen.
    pub encrypted: bool,
    /// The walk stopped at a record that runs past its container or the stream.
    pub truncated: bool,
}

/// Walks the records of a `PowerPoint Document` stream. At most `limit` bytes of text.
pub(crate) fn stream_text(s: &[u8], limit: usize) -> PptText {
    let mut out = PptText::default();
    let mut off = 0usize;
    // Ends of the open containers, innermost last: a record may not run past its parent.
    let mut ends: Vec<usize> = Vec::new();
    while off + 8 <= s.len() {
        while ends.last().is_some_and(|&e| off >= e) {
            ends.pop();
        }
        let bound = ends.last().copied().unwrap_or(s.len());
        let ver_inst = u16::from_le_bytes([s[off], s[off + 1]]);
        let rec_type = u16::from_le_bytes([s[off + 2], s[off + 3]]);
        let len = u32::from_le_bytes([s[off + 4], s[off + 5], s[off + 6], s[off + 7]]) as usize;
        let body = off + 8;
        let Some(end) = body.checked_add(len).filter(|&e| e <= bound) else {
            out.truncated = true;
            break;
        };
        if rec_type == CRYPT_SESSION {
            out.encrypted = true;
        }
        if ver_inst & 0x000F == 0x000F && rec_type != MAIN_MASTER {
            // A container: its children follow its header. Depth is bounded by the stream
            // length (every level takes 8 bytes), and the stack of ends by the same.
            ends.push(end);
            off = body;
            continue;
        }
        let b = &s[body..end];
        let piece = match rec_type {
            TEXT_CHARS_ATOM | CSTRING => Some(utf16(b)),
            TEXT_BYTES_ATOM => Some(b.iter().map(|&c| char::from(c)).collect()),
            _ => None,
        };
        if let Some(p) = piece {
            for c in p.chars() {
                out.text.push(match c {
                    '\r' | '\u{0B}' => '\n',
                    c => c,
                });
            }
            out.text.push('\n');
            if out.text.len() >= limit {
                let mut cut = limit;
                while !out.text.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.text.truncate(cut);
                break;
            }
        }
        off = end;
    }
    out
}

fn utf16(b: &[u8]) -> String {
    let u: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&u)
}

/// A `.ppt` file: its text as one segment, or the reason it cannot be read.
pub(crate) fn ppt(ctx: &mut Ctx<'_>, location: &str, data: &[u8]) {
    let mut c = match cfb::CompoundFile::open(Cursor::new(data)) {
        Ok(c) => c,
        Err(e) => {
            ctx.unscannable(location, Reason::Corrupt, format!("compound file: {e}"));
            return;
        }
    };
    if c.is_stream("/EncryptedSummary") {
        ctx.unscannable(location, Reason::Encrypted, "ppt");
        return;
    }
    let cap = ctx.limits().entry_bytes;
    let mut stream = Vec::new();
    let read = c
        .open_stream("/PowerPoint Document")
        .and_then(|s| s.take(cap).read_to_end(&mut stream));
    if let Err(e) = read {
        ctx.unscannable(
            location,
            Reason::Corrupt,
            format!("PowerPoint Document: {e}"),
        );
        return;
    }
    let found = stream_text(&stream, ctx.limits().text_per_object);
    if found.encrypted {
        ctx.unscannable(location, Reason::Encrypted, "ppt");
        return;
    }
    if found.truncated {
        ctx.unscannable(location, Reason::Corrupt, "ppt: a record runs past its end");
    }
    ctx.push_text(Segment {
        location: location.to_string(),
        text: found.text,
        ..Segment::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ver_inst: u16, rec_type: u16, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&ver_inst.to_le_bytes());
        v.extend_from_slice(&rec_type.to_le_bytes());
        v.extend_from_slice(&(body.len() as u32).to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    #[test]
    fn atoms_in_nested_containers_masters_skipped() {
        let slide = rec(
            0x000F,
            0x03EE,
            &[
                rec(0, TEXT_CHARS_ATOM, &utf16le("個人番号\r768426846565")),
                rec(0, TEXT_BYTES_ATOM, b"Card 4742180967929089"),
            ]
            .concat(),
        );
        let master = rec(
            0x000F,
            MAIN_MASTER,
            &rec(0, TEXT_CHARS_ATOM, &utf16le("マスター タイトルの書式設定")),
        );
        let doc = rec(0x000F, 0x03E8, &[master, slide].concat());
        let comment = rec(0x0000, CSTRING, &utf16le("社外秘"));
        let s = [doc, comment].concat();
        let t = stream_text(&s, 1 << 20);
        assert_eq!(
            t.text,
            "個人番号\n768426846565\nCard 4742180967929089\n社外秘\n"
        );
        assert!(!t.encrypted && !t.truncated);
    }

    #[test]
    fn hostile_lengths_and_limits() {
        // A child longer than its container, a length past the stream, an odd UTF-16 length.
        let bad = rec(0x000F, 0x03E8, &rec(0, TEXT_CHARS_ATOM, b"a\0b\0"));
        let mut s = bad.clone();
        s[4] = 4; // the container now claims 4 bytes: its child runs past it
        assert!(stream_text(&s, 100).truncated);
        let mut s = rec(0, TEXT_CHARS_ATOM, b"a\0");
        s[4] = 0xFF;
        s[7] = 0xFF;
        assert!(stream_text(&s, 100).truncated);
        assert_eq!(stream_text(&rec(0, CSTRING, b"a\0b"), 100).text, "a\n");
        // Text stops at the limit, on a character boundary.
        let long = rec(0, TEXT_CHARS_ATOM, &utf16le(&"番号".repeat(100)));
        let t = stream_text(&long, 10);
        assert!(t.text.len() <= 10 && t.text.starts_with("番号"));
        // Deeply nested empty containers: no recursion, no stack growth beyond the stream.
        let mut deep = rec(0, TEXT_CHARS_ATOM, &utf16le("x"));
        for _ in 0..10_000 {
            deep = rec(0x000F, 0x03E8, &deep);
        }
        assert_eq!(stream_text(&deep, 100).text, "x\n");
        assert!(stream_text(&rec(0x000F, CRYPT_SESSION, &[]), 100).encrypted);
    }
}
