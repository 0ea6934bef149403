//! Tables laid out in a text (a CSV file, a worksheet): which header cell speaks for each cell's
//! column and which label cell for its row, however far away they are.
//!
//! A customer list puts `個人番号` once at the top of a column and the numbers a thousand rows
//! below, far outside any context window. Given the cells of a text (their byte spans and grid
//! positions), [`Layout`] finds the tables in it and their header rows:
//! * rows without a gap form a block; an empty row or a jump in row numbers starts another table
//!   (several tables on one sheet);
//! * in a block, the first rows that hold no value-like cell (six or more digits) are looked at:
//!   a row of one cell followed by a row of text is a title and is skipped; the first row with two
//!   or more cells, or one cell above values, is the header;
//! * a header row's empty column inside its span takes the header cell to its left (a merged
//!   header cell leaves only its first cell filled), and a group header row right above it
//!   (`連絡先` over `携帯` / `自宅`) is a second header for the columns below it;
//! * a row's first cell, when it is text and not the cell itself, is the row's label.
//!
//! The scorer then takes context for a cell from the cell itself, its column's header cells and
//! its row label, instead of a character window that would reach into other columns' headers.

use std::cell::Cell;

/// One cell of a table: its bytes `[start, end)` in the text and its grid position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GridCell {
    /// First byte of the cell's text.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// Row (any origin; consecutive rows differ by one).
    pub row: u32,
    /// Column (any origin).
    pub col: u32,
}

/// What speaks for one cell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CellContext {
    /// Its column's header cell and the group header above it (byte spans).
    pub header: [Option<(usize, usize)>; 2],
    /// Its row's label cell.
    pub label: Option<(usize, usize)>,
}

impl CellContext {
    pub fn is_empty(&self) -> bool {
        self.header[0].is_none() && self.header[1].is_none() && self.label.is_none()
    }
}

/// One table: consecutive rows, and its header row (with the group header row above it).
#[derive(Debug, Default)]
struct Block {
    first: u32,
    last: u32,
    /// The header row's number, its cells and the group header's cells.
    header: Option<(u32, Vec<GridCell>, Option<Vec<GridCell>>)>,
}

/// The cells of a text with what speaks for each. Memory: the cells (24 bytes each, owned, not
/// copied), the header rows and one label per row; a cell's context is worked out when asked.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    /// Sorted by position in the text.
    cells: Vec<GridCell>,
    /// Sorted by first row.
    blocks: Vec<Block>,
    /// Each row's label cell, sorted by row.
    labels: Vec<GridCell>,
    /// Where the last lookups ended in `cells` and `labels`: values are looked up in text order,
    /// so the next answer is usually at or just after the last one.
    cell_hint: Cell<usize>,
    label_hint: Cell<usize>,
}

/// `v.partition_point(before)` (`before` holds for a prefix of `v`), starting from the index
/// remembered in `hint`: a few steps forward when lookups move forward, a binary search when
/// they jump.
fn seek<T>(v: &[T], hint: &Cell<usize>, before: impl Fn(&T) -> bool) -> usize {
    let h = hint.get().min(v.len());
    let i = if h > 0 && !before(&v[h - 1]) {
        v[..h].partition_point(&before)
    } else {
        let mut i = h;
        let stop = (h + 8).min(v.len());
        while i < stop && before(&v[i]) {
            i += 1;
        }
        if i == stop && i < v.len() {
            i + v[i..].partition_point(&before)
        } else {
            i
        }
    };
    hint.set(i);
    i
}

/// Cells with six or more digits (ASCII or full-width) are values, not headers or labels.
/// Counted on the bytes: a full-width digit is `EF BC 90..99` and those bytes are that digit
/// wherever they stand, in valid UTF-8 or not (`EF` is never a continuation byte).
fn valueish(text: &[u8], c: &GridCell) -> bool {
    let s = &text[c.start..c.end];
    let (mut digits, mut i) = (0, 0);
    while i < s.len() && digits < 6 {
        if s[i].is_ascii_digit() {
            digits += 1;
        } else if s[i] == 0xEF
            && s.get(i + 1..i + 3)
                .is_some_and(|t| matches!(t, [0xBC, 0x90..=0x99]))
        {
            digits += 1;
            i += 2;
        }
        i += 1;
    }
    digits >= 6
}

fn blank(text: &[u8], c: &GridCell) -> bool {
    text[c.start..c.end].iter().all(u8::is_ascii_whitespace)
}

/// The cell of `row` for column `col`, or the nearest one to its left while `col` is within the
/// row's span (or up to `right_bound`).
fn lookup(row: &[GridCell], col: u32, right_bound: u32) -> Option<(usize, usize)> {
    let last = row.last()?.col;
    if col > last.max(right_bound) {
        return None;
    }
    row.iter()
        .rev()
        .find(|c| c.col <= col)
        .map(|c| (c.start, c.end))
}

impl Layout {
    /// The layout of `grid` over `text` (cells out of range or blank are dropped).
    pub fn new(text: &[u8], mut cells: Vec<GridCell>) -> Layout {
        cells.retain(|c| c.start < c.end && c.end <= text.len() && !blank(text, c));
        cells.sort_unstable_by_key(|c| (c.row, c.col));
        cells.dedup_by_key(|c| (c.row, c.col));
        // Rows (index ranges), then blocks of consecutive rows.
        let mut rows: Vec<(usize, usize)> = Vec::new();
        let mut i = 0;
        while i < cells.len() {
            let j = i + cells[i..]
                .iter()
                .take_while(|c| c.row == cells[i].row)
                .count();
            rows.push((i, j));
            i = j;
        }
        let mut blocks = Vec::new();
        let mut labels = Vec::new();
        let mut b = 0;
        while b < rows.len() {
            let mut e = b + 1;
            while e < rows.len() && cells[rows[e].0].row == cells[rows[e - 1].0].row + 1 {
                e += 1;
            }
            let block: Vec<&[GridCell]> = rows[b..e].iter().map(|&(s, t)| &cells[s..t]).collect();
            blocks.push(Self::block(text, &block));
            for r in &block {
                if let Some(first) = r.first().filter(|c| !valueish(text, c)) {
                    labels.push(*first);
                }
            }
            b = e;
        }
        drop(rows);
        cells.sort_unstable_by_key(|c| c.start);
        Layout {
            cells,
            blocks,
            labels,
            ..Layout::default()
        }
    }

    fn block(text: &[u8], rows: &[&[GridCell]]) -> Block {
        let mut header_at = None;
        for (k, r) in rows.iter().enumerate().take(4) {
            // A title (one cell, even with a date in it) above a row of two or more text cells.
            let text_row_next = rows
                .get(k + 1)
                .is_some_and(|n| n.len() >= 2 && !n.iter().any(|c| valueish(text, c)));
            if r.len() == 1 && text_row_next {
                continue;
            }
            if r.iter().any(|c| valueish(text, c)) {
                break;
            }
            let above_values = rows
                .get(k + 1)
                .is_some_and(|n| n.iter().any(|c| valueish(text, c)));
            if r.len() >= 2 || above_values {
                header_at = Some(k);
                break;
            }
        }
        // Two header rows: a text row of two or more cells right below, above the values, is the
        // header, and the first one its group header.
        if let Some(k) = header_at {
            let text_row = |r: &[GridCell]| r.len() >= 2 && !r.iter().any(|c| valueish(text, c));
            let values = |r: &[GridCell]| r.iter().any(|c| valueish(text, c));
            if rows.get(k + 1).is_some_and(|r| text_row(r))
                && rows.get(k + 2).is_some_and(|r| values(r))
            {
                header_at = Some(k + 1);
            }
        }
        Block {
            first: rows[0][0].row,
            last: rows[rows.len() - 1][0].row,
            header: header_at.map(|h| {
                let upper = (h > 0 && rows[h - 1].len() >= 2).then(|| rows[h - 1].to_vec());
                (rows[h][0].row, rows[h].to_vec(), upper)
            }),
        }
    }

    /// The cell that holds byte `at`, with what speaks for it.
    pub fn cell_at(&self, at: usize) -> Option<(GridCell, CellContext)> {
        let i = seek(&self.cells, &self.cell_hint, |c| c.start <= at);
        let c = *self.cells.get(i.checked_sub(1)?)?;
        if at >= c.end {
            return None;
        }
        let mut cc = CellContext::default();
        let bi = self.blocks.partition_point(|b| b.first <= c.row);
        let block = self
            .blocks
            .get(bi.checked_sub(1)?)
            .filter(|b| c.row <= b.last)?;
        if let Some((h, hrow, upper)) = block.header.as_ref().filter(|(h, _, _)| c.row > *h) {
            let _ = h;
            let hlast = hrow.last().map_or(0, |x| x.col);
            cc.header[0] = match hrow.iter().find(|x| x.col == c.col) {
                Some(x) => Some((x.start, x.end)),
                // Inside the header row's span: a merged header cell.
                None => lookup(hrow, c.col, 0).filter(|_| c.col < hlast),
            };
            if let Some(u) = upper {
                cc.header[1] = lookup(u, c.col, hlast);
            }
        }
        let li = seek(&self.labels, &self.label_hint, |l| l.row < c.row);
        if let Some(l) = self
            .labels
            .get(li)
            .filter(|l| l.row == c.row && l.col < c.col)
        {
            cc.label = Some((l.start, l.end));
        }
        Some((c, cc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte count of digits agrees with counting the characters of the lossy decoding.
    #[test]
    fn valueish_counts_digits_like_the_decoded_text() {
        let by_chars = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .chars()
                .filter(|ch| ch.is_ascii_digit() || ('０'..='９').contains(ch))
                .count()
                >= 6
        };
        let pieces: [&[u8]; 9] = [
            b"1",
            b"a",
            "０".as_bytes(),
            "９".as_bytes(),
            "Ｚ".as_bytes(),
            b"\xEF\xBC",
            b"\xEF",
            b"\xBC\x95",
            "個".as_bytes(),
        ];
        let mut rng = crate::benchdata::Rng::new();
        let mut next = || rng.next_u64();
        for _ in 0..20_000 {
            let mut b = Vec::new();
            for _ in 0..next() % 12 {
                b.extend_from_slice(pieces[(next() % 9) as usize]);
            }
            let cell = GridCell {
                start: 0,
                end: b.len(),
                row: 0,
                col: 0,
            };
            assert_eq!(valueish(&b, &cell), by_chars(&b), "{b:x?}");
        }
    }

    #[test]
    fn seek_answers_like_partition_point_whatever_the_order_of_lookups() {
        let v: Vec<usize> = (0..200).map(|i| i * 8 + (i % 7)).collect();
        let hint = Cell::new(0);
        // Forward in small steps, jumps both ways, past both ends.
        let mut at = 0usize;
        let mut x = 12345u64;
        for n in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            at = match n % 5 {
                0 => (x >> 33) as usize % 1700,
                _ => at + (x >> 60) as usize,
            };
            let want = v.partition_point(|e| *e <= at);
            assert_eq!(seek(&v, &hint, |e| *e <= at), want, "at {at}");
        }
        assert_eq!(seek(&[] as &[usize], &hint, |e| *e <= 3), 0);
    }

    /// Cells of a text written as rows of `\t`-separated cells (empty cells kept as positions).
    fn grid(text: &str) -> Vec<GridCell> {
        let mut v = Vec::new();
        let mut off = 0;
        for (r, line) in text.split('\n').enumerate() {
            let mut o = off;
            for (c, cell) in line.split('\t').enumerate() {
                v.push(GridCell {
                    start: o,
                    end: o + cell.len(),
                    row: r as u32 + 1,
                    col: c as u32,
                });
                o += cell.len() + 1;
            }
            off += line.len() + 1;
        }
        v
    }

    fn text_of(t: &str, s: Option<(usize, usize)>) -> Option<&str> {
        s.map(|(a, b)| &t[a..b])
    }

    #[test]
    fn header_after_a_title_merged_cells_group_headers_and_two_tables() {
        let t = "顧客一覧（2026年11月）\n\
                 氏名\t連絡先\t\t番号\n\
                 \t携帯\t自宅\t個人番号\n\
                 山田\t09012345678\t0312345678\t768426846565\n\
                 \n\
                 注文番号\t金額\n\
                 202610160001\t5000";
        let l = Layout::new(t.as_bytes(), grid(t));
        let at = |needle: &str| l.cell_at(t.find(needle).unwrap()).unwrap().1;
        // The title row is skipped; 携帯/自宅/個人番号 is the header and 氏名/連絡先/番号 its
        // group header, whose merged 連絡先 spans 携帯 and 自宅.
        let mobile = at("09012345678");
        assert_eq!(text_of(t, mobile.header[0]), Some("携帯"));
        assert_eq!(text_of(t, mobile.header[1]), Some("連絡先"));
        assert_eq!(text_of(t, mobile.label), Some("山田"));
        let home = at("0312345678");
        assert_eq!(text_of(t, home.header[0]), Some("自宅"));
        assert_eq!(text_of(t, home.header[1]), Some("連絡先"));
        let my = at("768426846565");
        assert_eq!(text_of(t, my.header[0]), Some("個人番号"));
        assert_eq!(text_of(t, my.header[1]), Some("番号"));
        // A one-row header with a merged cell: the empty column takes the cell to its left.
        let t2 = "氏名\t連絡先\t\t備考\n山田\t09012345678\t0312345678\tなし";
        let l2 = Layout::new(t2.as_bytes(), grid(t2));
        let home2 = l2.cell_at(t2.find("0312345678").unwrap()).unwrap().1;
        assert_eq!(text_of(t2, home2.header[0]), Some("連絡先"));
        // The second table has its own header.
        assert_eq!(text_of(t, at("202610160001").header[0]), Some("注文番号"));
        assert!(l.cell_at(t.find("顧客一覧").unwrap()).unwrap().1.is_empty());
    }

    #[test]
    fn single_column_lists_and_tables_without_headers() {
        let t = "個人番号\n768426846565\n321223307923";
        let l = Layout::new(t.as_bytes(), grid(t));
        let c = l.cell_at(t.find("321223307923").unwrap()).unwrap().1;
        assert_eq!(text_of(t, c.header[0]), Some("個人番号"));
        // All rows are values: no header, no label.
        let t = "768426846565\t4111111111111111\n321223307923\t5555555555554444";
        let l = Layout::new(t.as_bytes(), grid(t));
        assert!(l.cell_at(t.find("5555").unwrap()).unwrap().1.is_empty());
        // Out-of-range and empty grids are ignored.
        let bad = [GridCell {
            start: 5,
            end: 500,
            row: 1,
            col: 1,
        }];
        assert!(Layout::new(b"abc", bad.to_vec()).cell_at(1).is_none());
        assert!(Layout::new(b"", Vec::new()).cell_at(0).is_none());
    }
}
