//! The cells of a CSV / TSV text, for table context (`detect::table`): csv-core splits the
//! fields (quotes, doubled quotes, embedded newlines) and reports how much input each one took,
//! which gives every field's byte span in the decoded text.
//!
//! A text without a single `"` has no quoting to undo: its fields are the runs between
//! delimiters and line ends, found with `memchr` (csv-core reads a byte at a time and copies
//! each field; it was a seventh of the milter's time on a message with a 1 MB CSV). That split
//! gives the same cells as csv-core, row and column numbers included; a test and the `table`
//! fuzz target compare the two on every quote-free input.

use crate::detect::GridCell;

/// The delimiter of a CSV-like text: the most frequent of `,` `\t` `;` on its first 20 lines
/// (outside quotes; a title line above the table has none), `,` when none is seen.
fn delimiter(text: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    let mut lines = 0;
    for &b in text.iter().take(64 * 1024) {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => {
                lines += 1;
                if lines == 20 {
                    break;
                }
            }
            b',' if !quoted => counts[0] += 1,
            b'\t' if !quoted => counts[1] += 1,
            b';' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3)
        .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
        .unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        [b',', b'\t', b';'][best]
    }
}

/// The cells of `text` read as CSV (delimiter guessed), at most `max_cells`; rows from 1 and
/// columns from 0. A field's span includes its quotes and excludes the delimiter and the line end.
pub(crate) fn csv_grid(text: &str, max_cells: usize) -> Vec<GridCell> {
    let input = text.as_bytes();
    split(input, delimiter(input), max_cells)
}

/// The cells of `input` split at `d`: by `memchr` when it has no quote, else by csv-core.
fn split(input: &[u8], d: u8, max_cells: usize) -> Vec<GridCell> {
    if memchr::memchr(b'"', input).is_none() {
        unquoted_grid(input, d, max_cells)
    } else {
        csv_core_grid(input, d, max_cells)
    }
}

/// What the first 50 non-empty lines of a text (64 KiB at most) say about a delimiter: the
/// facts [`looks_tab_separated`] and [`looks_comma_separated`] weigh, each with its own bars.
#[derive(Debug, Default)]
struct LineStats {
    /// Non-empty lines read.
    lines: usize,
    /// Of them, lines holding the delimiter.
    holding: usize,
    /// Of those, lines led by white space (indentation, not a first field).
    indented: usize,
    /// The most common number of delimiters on a line holding one, and how many lines have it.
    modal: (usize, usize),
    /// Delimiters in all, and how many are followed by a space (how prose writes commas).
    delimiters: usize,
    spaced: usize,
    /// The first non-empty line has a digit (it is not a header row).
    head_digits: bool,
}

impl LineStats {
    fn of(text: &str, d: u8) -> LineStats {
        let head = &text.as_bytes()[..text.len().min(64 * 1024)];
        let mut st = LineStats::default();
        let mut counts: Vec<(usize, usize)> = Vec::new();
        for line in head.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(line);
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            if st.lines == 0 {
                st.head_digits = line.iter().any(u8::is_ascii_digit);
            }
            st.lines += 1;
            let n = memchr::memchr_iter(d, line).count();
            if n > 0 {
                st.holding += 1;
                st.indented += usize::from(matches!(line[0], b'\t' | b' '));
                st.delimiters += n;
                st.spaced += line
                    .windows(2)
                    .filter(|w| w[0] == d && w[1] == b' ')
                    .count();
                match counts.iter_mut().find(|(c, _)| *c == n) {
                    Some((_, k)) => *k += 1,
                    None => counts.push((n, 1)),
                }
            }
            if st.lines == 50 {
                break;
            }
        }
        // The most lines; among equals, the first count seen (the header's).
        st.modal = counts
            .iter()
            .fold((0, 0), |m, &(c, k)| if k > m.1 { (c, k) } else { m });
        st
    }
}

/// A plain text (`.txt`) that is a tab-separated table: what Excel's "Unicode text" and "Text
/// (tab delimited)" exports write, and what copying cells out of a sheet gives. On its first
/// 50 non-empty lines (64 KiB at most): at least three lines hold a tab, they are at least 60 %
/// of the lines, at least 60 % of them have the same number of tabs, and at least 60 % of them
/// begin with a field rather than with indentation (tab-indented code and prose are not
/// tables).
pub(crate) fn looks_tab_separated(text: &str) -> bool {
    let st = LineStats::of(text, b'\t');
    let led = st.holding - st.indented;
    st.holding >= 3
        && st.holding * 10 >= st.lines * 6
        && st.modal.1 * 10 >= st.holding * 6
        && led * 10 >= st.holding * 6
}

/// A run of comma-separated lines pasted into a text is a CSV table: at least three non-empty
/// lines, all holding a comma, at least 80 % of them with the same number of commas, two or
/// more (three columns: prose has a comma or two, and a grouped amount one or two), none led
/// by white space, at most a fifth of the commas followed by a space (prose writes `, `), and
/// a first line without digits (a header row). Stricter than [`looks_tab_separated`] because
/// commas are common in prose and amounts.
fn looks_comma_separated(block: &str) -> bool {
    let st = LineStats::of(block, b',');
    st.lines >= 3
        && st.holding == st.lines
        && st.indented == 0
        && !st.head_digits
        && st.modal.0 >= 2
        && st.modal.1 * 10 >= st.lines * 8
        && st.spaced * 5 <= st.delimiters
}

/// The cells of a plain text (a `.txt`, a plain-text mail body, an Outlook body): the whole
/// text when it is laid out as one tab-separated table ([`looks_tab_separated`]: Excel's
/// "Unicode text" export), else the tables pasted between its paragraphs
/// ([`pasted_tables_grid`]). At most `max_cells`.
pub(crate) fn plain_text_grid(text: &str, max_cells: usize) -> Vec<GridCell> {
    if looks_tab_separated(text) {
        csv_grid(text, max_cells)
    } else {
        pasted_tables_grid(text, max_cells)
    }
}

/// The cells of the tables inside a running text: a range of cells copied out of a sheet
/// (tab-separated) or the lines of a CSV file (comma-separated) pasted into a mail between a
/// greeting and a signature. A table is a run of consecutive lines that all hold its delimiter
/// (a tab, or else a comma) and that looks like one ([`looks_tab_separated`],
/// `looks_comma_separated`); each table's rows follow the last one's after a gap, so that two
/// tables never join. Lines outside them have no cells: their values are scored with the
/// character window, as before. At most `max_cells`.
pub(crate) fn pasted_tables_grid(text: &str, max_cells: usize) -> Vec<GridCell> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    if memchr::memchr2(b'\t', b',', b).is_none() {
        return out;
    }
    let mut at = 0usize;
    // Where the table being read starts and its delimiter; the row before the next table's.
    let mut block: Option<(usize, u8)> = None;
    let mut base = 0u32;
    loop {
        let end = memchr::memchr(b'\n', &b[at..]).map_or(b.len(), |i| at + i);
        let line = &b[at..end];
        let d = if memchr::memchr(b'\t', line).is_some() {
            Some(b'\t')
        } else if memchr::memchr(b',', line).is_some() {
            Some(b',')
        } else {
            None
        };
        if block.is_none_or(|(_, bd)| Some(bd) != d) {
            if let Some((s, bd)) = block.take() {
                table_block(&mut out, text, (s, at), bd, &mut base, max_cells);
            }
            block = d.map(|d| (at, d));
        }
        if end >= b.len() || out.len() >= max_cells {
            break;
        }
        at = end + 1;
    }
    if let Some((s, d)) = block {
        table_block(&mut out, text, (s, b.len()), d, &mut base, max_cells);
    }
    out
}

/// The cells of `text[span]` (whole lines, delimited by `d`) when they are a table, in rows
/// after `base`, which moves past them and a gap.
fn table_block(
    out: &mut Vec<GridCell>,
    text: &str,
    (s, e): (usize, usize),
    d: u8,
    base: &mut u32,
    max: usize,
) {
    let block = &text[s..e];
    let table = if d == b'\t' {
        looks_tab_separated(block)
    } else {
        looks_comma_separated(block)
    };
    if out.len() >= max || !table {
        return;
    }
    let cells = split(block.as_bytes(), d, max - out.len());
    let first = *base;
    for c in cells {
        let row = c.row.saturating_add(first);
        *base = (*base).max(row.saturating_add(1));
        out.push(GridCell {
            start: c.start + s,
            end: c.end + s,
            row,
            col: c.col,
        });
    }
}

/// Both splits of a quote-free text (`None` when it has a quote), for the differential test
/// and fuzz target.
pub(crate) fn csv_grid_both(
    text: &str,
    max_cells: usize,
) -> Option<(Vec<GridCell>, Vec<GridCell>)> {
    let input = text.as_bytes();
    let d = delimiter(input);
    memchr::memchr(b'"', input).is_none().then(|| {
        (
            unquoted_grid(input, d, max_cells),
            csv_core_grid(input, d, max_cells),
        )
    })
}

/// The split of a text without quotes, field by field as csv-core takes them: a record starts
/// after any line ends (empty lines), a field ends at the delimiter or at a line end and takes
/// it with it, a byte order mark at the start is passed over; the same `push` and `blank_lines`
/// then make the same cells.
fn unquoted_grid(input: &[u8], d: u8, max_cells: usize) -> Vec<GridCell> {
    let mut out = Vec::new();
    let (mut start, mut row, mut col) = (0usize, 1u32, 0u32);
    while out.len() < max_cells {
        // csv-core passes over a UTF-8 byte order mark at the start (the first field's span
        // still begins at 0).
        let mut p = if start == 0 && input.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            start
        };
        if col == 0 {
            while p < input.len() && matches!(input[p], b'\r' | b'\n') {
                p += 1;
            }
            if p == input.len() {
                break;
            }
        }
        // The field ends after its delimiter or line end, or with the input.
        let stop = memchr::memchr3(d, b'\r', b'\n', &input[p..]).map(|i| p + i);
        let end = stop.map_or(input.len(), |e| e + 1);
        if col == 0 {
            row = row.saturating_add(blank_lines(input, start, end));
        }
        push(&mut out, input, start, end, row, col);
        let Some(e) = stop else { break };
        start = end;
        if input[e] == d {
            col = col.saturating_add(1);
        } else {
            row = row.saturating_add(1);
            col = 0;
        }
    }
    out
}

/// csv-core's split (quoted fields, doubled quotes, line ends inside quotes).
fn csv_core_grid(input: &[u8], d: u8, max_cells: usize) -> Vec<GridCell> {
    let mut rdr = csv_core::ReaderBuilder::new().delimiter(d).build();
    let mut out = Vec::new();
    let mut scratch = [0u8; 4096];
    let (mut pos, mut start) = (0usize, 0usize);
    let (mut row, mut col) = (1u32, 0u32);
    loop {
        let (res, nin, _) = rdr.read_field(&input[pos..], &mut scratch);
        pos += nin;
        match res {
            csv_core::ReadFieldResult::InputEmpty if pos >= input.len() => {
                // Tell the reader the input ended: it returns the last field.
                let (res, _, _) = rdr.read_field(&[], &mut scratch);
                if let csv_core::ReadFieldResult::Field { .. } = res {
                    if col == 0 {
                        // Empty lines before a last record count as they do before any other.
                        row = row.saturating_add(blank_lines(input, start, pos));
                    }
                    push(&mut out, input, start, pos, row, col);
                }
                break;
            }
            csv_core::ReadFieldResult::InputEmpty | csv_core::ReadFieldResult::OutputFull => {
                if nin == 0 && pos >= input.len() {
                    break;
                }
            }
            csv_core::ReadFieldResult::Field { record_end } => {
                if col == 0 {
                    // csv-core skips empty lines before a record: they still separate tables.
                    row = row.saturating_add(blank_lines(input, start, pos));
                }
                push(&mut out, input, start, pos, row, col);
                start = pos;
                if record_end {
                    row = row.saturating_add(1);
                    col = 0;
                } else {
                    col = col.saturating_add(1);
                }
                if out.len() >= max_cells {
                    break;
                }
            }
            csv_core::ReadFieldResult::End => break,
        }
    }
    out
}

/// Empty lines at the start of `input[start..end)` (a `\n` right after the `\r` that ended the
/// previous record is that record's line end, not an empty line).
fn blank_lines(input: &[u8], start: usize, end: usize) -> u32 {
    let lead = input[start..end]
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    let mut n = input[start..start + lead]
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    if n > 0 && input[start] == b'\n' && start > 0 && input[start - 1] == b'\r' {
        n -= 1;
    }
    n as u32
}

fn push(out: &mut Vec<GridCell>, input: &[u8], start: usize, end: usize, row: u32, col: u32) {
    // The input a field took ends with its delimiter or line end; blank lines before a record
    // belong to it: trim both.
    let mut s = start;
    while s < end && matches!(input[s], b'\r' | b'\n') {
        s += 1;
    }
    let mut e = end;
    while e > s && matches!(input[e - 1], b',' | b'\t' | b';' | b'\r' | b'\n') {
        e -= 1;
    }
    if s < e {
        out.push(GridCell {
            start: s,
            end: e,
            row,
            col,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(t: &str) -> Vec<(u32, u32, &str)> {
        csv_grid(t, 1000)
            .iter()
            .map(|c| (c.row, c.col, &t[c.start..c.end]))
            .collect()
    }

    #[test]
    fn tab_separated_plain_texts() {
        let list = "顧客名簿\r\n\r\n氏名\t個人番号\t携帯\r\n山田\t123456789018\t090-1234-5678\r\n\
                    鈴木\t440268599525\t080-1234-5678\r\n佐藤\t\t070-1234-5678\r\n";
        assert!(looks_tab_separated(list));
        assert!(looks_tab_separated(&format!("\u{feff}{list}")));
        // Prose, a text with a tab or two, tab-indented code, two tabbed lines.
        assert!(!looks_tab_separated(
            "お世話になっております。\n山田です。\n"
        ));
        assert!(!looks_tab_separated(
            "件名\t見積\n本文です。\n二行目です。\n三行目\tです。\n四行目です。\n五行目です。\n"
        ));
        assert!(!looks_tab_separated(
            "fn main() {\n\tlet a = 1;\n\tlet b = 2;\n\tprintln!(\"{a}\");\n}\n"
        ));
        assert!(!looks_tab_separated("a\tb\nc\td\n"));
        assert!(!looks_tab_separated(""));
    }

    #[test]
    fn tables_inside_running_text() {
        let t = "山田様\r\n\r\nお世話になっております。\r\n以下の通りです。\r\n\
                 氏名\t個人番号\t携帯\r\n山田\t123456789018\t090-1234-5678\r\n\
                 鈴木\t440268599525\t080-1234-5678\r\n\r\nよろしくお願いします。\r\n\
                 社名\t部署\r\nA社\t営業\r\nB社\t総務\r\n";
        let g = pasted_tables_grid(t, 1000);
        let cells: Vec<(u32, u32, &str)> = g
            .iter()
            .map(|c| (c.row, c.col, &t[c.start..c.end]))
            .collect();
        assert_eq!(
            &cells[..3],
            &[(1, 0, "氏名"), (1, 1, "個人番号"), (1, 2, "携帯")]
        );
        assert_eq!(cells[5], (2, 2, "090-1234-5678"));
        assert_eq!(cells[8], (3, 2, "080-1234-5678"));
        // The second table starts after a gap in the rows.
        assert_eq!(cells[9], (5, 0, "社名"));
        assert_eq!(cells.len(), 15);
        // Lines ended by a bare CR are rows too: the next table still starts after them.
        let cr = "a\tb\rc\td\ne\tf\rg\th\ni\tj\rk\tl\n\n本文\nx\ty\nz\tw\nu\tv\n";
        let rows: Vec<u32> = pasted_tables_grid(cr, 100).iter().map(|c| c.row).collect();
        assert_eq!(
            rows,
            [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 8, 8, 9, 9, 10, 10]
        );
        // Prose with a stray tab, tab-indented lines, two tabbed lines: no table.
        assert!(pasted_tables_grid("本文\tです。\n二行目\n", 1000).is_empty());
        assert!(pasted_tables_grid("手順:\n\t一\n\t二\n\t三\n", 1000).is_empty());
        assert!(pasted_tables_grid("a\tb\nc\td\n", 1000).is_empty());
        assert!(pasted_tables_grid("", 1000).is_empty());
        assert_eq!(pasted_tables_grid(t, 4).len(), 4);
    }

    #[test]
    fn csv_lines_inside_running_text() {
        let t = "田中様\nリストです。\n氏名,個人番号,携帯\n山田,123456789018,090-1234-5678\n\
                 鈴木,440268599525,080-1234-5678\n\n以上です。\n";
        let g = pasted_tables_grid(t, 1000);
        let cells: Vec<(u32, u32, &str)> = g
            .iter()
            .map(|c| (c.row, c.col, &t[c.start..c.end]))
            .collect();
        assert_eq!(cells.len(), 9);
        assert_eq!(cells[1], (1, 1, "個人番号"));
        assert_eq!(cells[4], (2, 1, "123456789018"));
        assert_eq!(cells[8], (3, 2, "080-1234-5678"));
        // Prose and amounts with commas, two lines, two columns: not tables.
        for t in [
            "Hi Bob,\nThanks, as discussed, here it is.\nBest, Alice\n",
            "Dear all, as agreed, the list:\nfirst, second, third\nfourth, fifth, sixth\n",
            "見積: 1,200,000円\n値引: 200,000円\n合計: 1,000,000円\n",
            "a,b,c\nd,e,f\n",
            "氏名,番号\n山田,123456789018\n鈴木,440268599525\n",
        ] {
            assert!(pasted_tables_grid(t, 1000).is_empty(), "{t:?}");
        }
    }

    #[test]
    fn fields_rows_quotes_and_delimiters() {
        assert_eq!(
            cells("氏名,個人番号\r\n\"山田, 太郎\",768426846565\r\n佐藤,\"3212\n23307923\"\n"),
            [
                (1, 0, "氏名"),
                (1, 1, "個人番号"),
                (2, 0, "\"山田, 太郎\""),
                (2, 1, "768426846565"),
                (3, 0, "佐藤"),
                (3, 1, "\"3212\n23307923\""),
            ]
        );
        assert_eq!(
            cells("a\tb\n1\t2"),
            [(1, 0, "a"), (1, 1, "b"), (2, 0, "1"), (2, 1, "2")]
        );
        assert_eq!(cells("a;b;c\n1;2;3")[4], (2, 1, "2"));
        // A title line without delimiters above a TSV table.
        assert_eq!(cells("一覧\n\na\tb\n1\t2")[4], (4, 1, "2"));
        assert_eq!(cells("一覧\r\n\r\na,b\r\n1,2")[4], (4, 1, "2"));
        assert_eq!(cells("a,b\r\n1,2\r\n")[3], (2, 1, "2"));
        // Empty lines before a last record without a line end (its row was 2).
        assert_eq!(cells("a\n\n\"b\"")[1], (3, 0, "\"b\""));
        assert_eq!(cells("a\n\nb")[1], (3, 0, "b"));
        // Empty fields keep their column numbers; the cap is honoured; odd input never panics.
        assert_eq!(cells("a,,c")[1], (1, 2, "c"));
        assert_eq!(csv_grid("a,b,c,d", 2).len(), 2);
        for t in ["", "\"", "\"\"\"", ",,,\n\n\n", "a\r\r\rb"] {
            let _ = csv_grid(t, 10);
        }
    }

    /// The quote-free split gives csv-core's cells on texts made of delimiters, line ends,
    /// letters and kanji in any order, with or without a byte order mark, whatever the cap.
    #[test]
    fn quote_free_split_matches_csv_core() {
        let pieces = [
            "a", "bc", "氏名", ",", ",", "\t", ";", "\n", "\r", "\r\n", "\n\n", " ",
        ];
        let mut rng = crate::benchdata::Rng::new();
        let mut next = || rng.next_u64();
        let mut compared = 0;
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let bom = if next() % 4 == 0 { "\u{feff}" } else { "" };
            let t: String = std::iter::once(bom)
                .chain((0..len).map(|_| pieces[(next() % pieces.len() as u64) as usize]))
                .collect();
            let cap = [1000, 1, 2, 3, 5][(next() % 5) as usize];
            let (fast, core) = csv_grid_both(&t, cap).expect("no quotes");
            assert_eq!(fast, core, "{t:?} cap {cap}");
            compared += usize::from(!core.is_empty());
        }
        assert!(compared > 10_000, "{compared}");
    }
}
