//! HTML to text for bodies and uploaded files: tags dropped, `script` and `style` skipped,
//! entities decoded, block elements and `<br>` as line breaks, table cells as tabs.

use crate::detect::GridCell;

/// Converts HTML to plain text.
pub fn html_to_text(html: &str) -> String {
    html_to_text_grid(html).0
}

/// Converts HTML to plain text and gives the table cells in it (`<td>` / `<th>` spans in the
/// text with their row and column; `colspan` advances the column, a new `<table>` leaves a gap
/// in the row numbers so that each table is a table of its own).
pub(crate) fn html_to_text_grid(html: &str) -> (String, Vec<GridCell>) {
    let mut grid = Vec::new();
    // The row of the current `<tr>` and the column the next cell takes.
    let (mut row, mut next_col) = (0u32, 0u32);
    let mut cell: Option<(usize, u32, u32)> = None;
    let mut out = String::with_capacity(html.len() / 2);
    let b = html.as_bytes();
    let mut i = 0;
    let mut skip_until: Option<&'static str> = None;
    while i < b.len() {
        if b[i] == b'<' {
            // Comments and declarations.
            if html[i..].starts_with("<!--") {
                i = html[i + 4..].find("-->").map_or(b.len(), |e| i + 4 + e + 3);
                continue;
            }
            // The tag runs to its `>`, or to the end of an unterminated document.
            let (tag, end) = match memchr::memchr(b'>', &b[i..]) {
                Some(e) => (&html[i + 1..i + e], i + e + 1),
                None => (&html[i + 1..], b.len()),
            };
            let closing = tag.starts_with('/');
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if let Some(stop) = skip_until {
                if closing && name == stop {
                    skip_until = None;
                }
                i = end;
                continue;
            }
            match name.as_str() {
                "script" | "style" | "head" | "title" if !closing && !tag.ends_with('/') => {
                    skip_until = Some(match name.as_str() {
                        "script" => "script",
                        "style" => "style",
                        "head" => "head",
                        _ => "title",
                    })
                }
                "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6"
                | "table" | "ul" | "ol" | "blockquote" | "pre" | "hr" | "dt" | "dd"
                    if !out.ends_with('\n') =>
                {
                    out.push('\n');
                }
                "td" | "th" if closing => {
                    if let Some((start, r, c)) = cell.take() {
                        let end = out.trim_end().len().max(start);
                        if end > start && grid.len() < super::GRID_CELLS {
                            grid.push(GridCell {
                                start,
                                end,
                                row: r,
                                col: c,
                            });
                        }
                    }
                    out.push('\t')
                }
                _ => {}
            }
            // Table structure: rows, cells and their spans in the text.
            match name.as_str() {
                "table" if !closing => row = row.saturating_add(2),
                "tr" if !closing => {
                    row = row.saturating_add(1);
                    next_col = 0;
                }
                "td" | "th" if !closing => {
                    cell = Some((out.len(), row, next_col));
                    next_col = next_col.saturating_add(colspan(tag));
                }
                _ => {}
            }
            i = end;
        } else if skip_until.is_some() {
            i += 1;
        } else if b[i] == b'&' {
            let semi = html[i..]
                .char_indices()
                .take(12)
                .find(|&(_, c)| c == ';')
                .map(|(k, _)| i + k);
            match semi.and_then(|s| entity(&html[i + 1..s]).map(|t| (s, t))) {
                Some((s, t)) => {
                    out.push_str(&t);
                    i = s + 1;
                }
                None => {
                    out.push('&');
                    i += 1;
                }
            }
        } else {
            let next = memchr::memchr2(b'<', b'&', &b[i..]).map_or(b.len(), |k| i + k);
            out.push_str(&html[i..next]);
            i = next;
        }
    }
    (out, grid)
}

/// The `colspan` of a cell's tag (1 when absent or odd; at most 1,000).
fn colspan(tag: &str) -> u32 {
    let lower = tag.to_ascii_lowercase();
    let Some(at) = lower.find("colspan") else {
        return 1;
    };
    let digits: String = lower[at + 7..]
        .chars()
        .skip_while(|c| matches!(c, ' ' | '=' | '"' | '\''))
        .take_while(char::is_ascii_digit)
        .take(4)
        .collect();
    digits.parse::<u32>().map_or(1, |n| n.clamp(1, 1000))
}

fn entity(name: &str) -> Option<String> {
    if let Some(r) = super::xml::resolve_entity(name) {
        return Some(r.into_owned());
    }
    let s = match name {
        "nbsp" => "\u{00A0}",
        "ensp" | "emsp" | "thinsp" => " ",
        "yen" => "¥",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "hellip" => "…",
        "mdash" => "—",
        "ndash" => "–",
        "minus" => "−",
        "laquo" => "«",
        "raquo" => "»",
        "ldquo" => "“",
        "rdquo" => "”",
        "lsquo" => "‘",
        "rsquo" => "’",
        "middot" => "·",
        "times" => "×",
        "divide" => "÷",
        "euro" => "€",
        "pound" => "£",
        "cent" => "¢",
        "sect" => "§",
        "deg" => "°",
        "bull" => "•",
        _ => return None,
    };
    Some(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts() {
        let t = html_to_text("<html><head><title>t</title><style>p{}</style></head><body><p>個人番号&#xFF1A;1234&nbsp;5678</p><table><tr><td>A</td><td>B&amp;C</td></tr></table><script>var x='<p>';</script>end</body></html>");
        assert!(t.contains("個人番号：1234\u{00A0}5678"), "{t:?}");
        assert!(t.contains("A\tB&C\t"), "{t:?}");
        assert!(!t.contains("var x"), "{t:?}");
        assert!(t.ends_with("end"), "{t:?}");
        assert_eq!(html_to_text("a &unknown; b & c <"), "a &unknown; b & c ");
        // Table cells with their rows and columns; colspan moves the columns; tables apart.
        let (t, g) = html_to_text_grid(
            "<table><tr><th>氏名</th><th colspan=2>連絡先</th><th>個人番号</th></tr>\
             <tr><td>山田</td><td>090</td><td>03</td><td> 768426846565 </td></tr></table>\
             <table><tr><td>x</td></tr></table>",
        );
        let cells: Vec<_> = g
            .iter()
            .map(|c| (c.row, c.col, &t[c.start..c.end]))
            .collect();
        assert_eq!(cells[1], (3, 1, "連絡先"), "{cells:?}");
        assert_eq!(cells[2], (3, 3, "個人番号"), "{cells:?}");
        assert_eq!(cells[6], (4, 3, " 768426846565"), "{cells:?}");
        assert_eq!(cells[7].0, 7);
        // An unterminated tag ending in a multi-byte character (found by the fuzzer).
        assert_eq!(html_to_text("x<p あ"), "x\n");
    }
}
