//! RTF to text: control words dropped, `\'hh` bytes decoded in the document's code page
//! (`\ansicpg932` → CP932), `\uN` Unicode escapes, groups of destinations (`\*`, fonts, colours,
//! pictures) skipped. Enough for the text of Outlook and WordPad documents.

/// Converts RTF to plain text.
pub(crate) fn rtf_to_text(data: &[u8]) -> String {
    let mut out = String::new();
    let mut enc: &'static encoding_rs::Encoding = encoding_rs::WINDOWS_1252;
    let mut pending: Vec<u8> = Vec::new();
    // Per group: skip this group? unicode skip count.
    let mut stack: Vec<(bool, usize)> = vec![(false, 1)];
    let mut skip_chars = 0usize;
    let mut i = 0;
    let flush = |pending: &mut Vec<u8>, out: &mut String, enc: &'static encoding_rs::Encoding| {
        if !pending.is_empty() {
            out.push_str(&enc.decode_without_bom_handling(pending).0);
            pending.clear();
        }
    };
    while i < data.len() {
        let skipping = stack.last().is_some_and(|s| s.0);
        match data[i] {
            b'{' => {
                flush(&mut pending, &mut out, enc);
                let (sk, uc) = *stack.last().unwrap_or(&(false, 1));
                if stack.len() < 256 {
                    stack.push((sk, uc));
                }
                // `{\*\dest ...}`: an optional destination, not text.
                if data[i + 1..].starts_with(b"\\*") {
                    if let Some(top) = stack.last_mut() {
                        top.0 = true;
                    }
                }
                i += 1;
            }
            b'}' => {
                flush(&mut pending, &mut out, enc);
                if stack.len() > 1 {
                    stack.pop();
                }
                i += 1;
            }
            b'\\' => {
                i += 1;
                let Some(&c) = data.get(i) else { break };
                if c == b'\'' {
                    let hex = data
                        .get(i + 1..i + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    i += 3;
                    if let Some(b) = hex {
                        if skip_chars > 0 {
                            skip_chars -= 1;
                        } else if !skipping {
                            pending.push(b);
                        }
                    }
                    continue;
                }
                if !c.is_ascii_alphabetic() {
                    // Control symbols: \\ \{ \} and \~ (nbsp), \- (soft hyphen), \_ (nb hyphen).
                    if !skipping {
                        match c {
                            b'\\' | b'{' | b'}' => pending.push(c),
                            b'~' => pending.push(b' '),
                            b'_' => pending.push(b'-'),
                            _ => {}
                        }
                    }
                    i += 1;
                    continue;
                }
                let ws = i;
                while i < data.len() && data[i].is_ascii_alphabetic() {
                    i += 1;
                }
                let word = &data[ws..i];
                let ns = i;
                if i < data.len() && (data[i] == b'-' || data[i].is_ascii_digit()) {
                    i += 1;
                    while i < data.len() && data[i].is_ascii_digit() && i - ns < 12 {
                        i += 1;
                    }
                }
                let num: Option<i64> = std::str::from_utf8(&data[ns..i])
                    .ok()
                    .and_then(|s| s.parse().ok());
                if data.get(i) == Some(&b' ') {
                    i += 1;
                }
                match word {
                    b"ansicpg" => {
                        flush(&mut pending, &mut out, enc);
                        enc = match num {
                            Some(932) => encoding_rs::SHIFT_JIS,
                            Some(936) => encoding_rs::GBK,
                            Some(949) => encoding_rs::EUC_KR,
                            Some(950) => encoding_rs::BIG5,
                            Some(65001) => encoding_rs::UTF_8,
                            _ => encoding_rs::WINDOWS_1252,
                        };
                    }
                    b"uc" => {
                        if let Some(top) = stack.last_mut() {
                            top.1 = num.unwrap_or(1).clamp(0, 8) as usize;
                        }
                    }
                    b"u" => {
                        flush(&mut pending, &mut out, enc);
                        if let Some(n) = num {
                            let cp = if n < 0 { (n + 65536) as u32 } else { n as u32 };
                            if !skipping {
                                if let Some(ch) = char::from_u32(cp) {
                                    out.push(ch);
                                }
                            }
                        }
                        skip_chars = stack.last().map_or(1, |s| s.1);
                    }
                    b"par" | b"line" | b"row" | b"sect" | b"page" if !skipping => {
                        flush(&mut pending, &mut out, enc);
                        out.push('\n');
                    }
                    b"tab" | b"cell" if !skipping => {
                        flush(&mut pending, &mut out, enc);
                        out.push('\t');
                    }
                    b"fonttbl" | b"colortbl" | b"stylesheet" | b"pict" | b"info" | b"object"
                    | b"themedata" | b"datastore" => {
                        if let Some(top) = stack.last_mut() {
                            top.0 = true;
                        }
                    }
                    _ => {}
                }
            }
            b'\r' | b'\n' => i += 1,
            b => {
                if skip_chars > 0 {
                    skip_chars -= 1;
                } else if !skipping {
                    pending.push(b);
                }
                i += 1;
            }
        }
    }
    flush(&mut pending, &mut out, enc);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japanese_rtf() {
        let rtf = br"{\rtf1\ansi\ansicpg932{\fonttbl{\f0 MS Mincho;}}\f0 \'8c\'c2\'90\'6c\'94\'d4\'8d\'86 1234 5678 9018\par \u31038?\u22806?\u31192?}";
        let t = rtf_to_text(rtf);
        assert!(t.contains("個人番号 1234 5678 9018"), "{t:?}");
        assert!(t.contains("社外秘"), "{t:?}");
        assert!(!t.contains("Mincho"), "{t:?}");
    }
}
