//! Office Open XML (docx, xlsx, pptx) and OpenDocument (odt, ods, odp), read part by part with
//! a streaming XML walker. Worksheets are streamed cell by cell (never a dense range: a sheet
//! with cells A1 and XFD1048576 costs two cells), each sheet one segment with rows as lines and
//! cells separated by tabs, every cell's position kept for locations like `Sheet1!B2`.

use std::borrow::Cow;
use std::io::Cursor;

use compact_str::CompactString;
use zip::ZipArchive;

use super::archive::{read_entry, Entry};
use super::filetype::FileKind;
use super::xml::{attr, attr_ref, attrs_ref, walk, xml_text, Node};
use super::{Ctx, Reason, Segment};

type Zip<'a> = ZipArchive<Cursor<&'a [u8]>>;

fn open<'a>(ctx: &mut Ctx<'_>, location: &str, data: &'a [u8]) -> Option<Zip<'a>> {
    match ZipArchive::new(Cursor::new(data)) {
        Ok(z) => Some(z),
        Err(e) => {
            ctx.unscannable(location, Reason::Corrupt, format!("zip: {e}"));
            None
        }
    }
}

/// Reads a part by name (None when absent or unreadable; problems are reported).
fn part(ctx: &mut Ctx<'_>, z: &mut Zip<'_>, location: &str, name: &str) -> Option<Vec<u8>> {
    let i = z.index_for_name(name)?;
    match read_entry(ctx, z, i, location) {
        Entry::Whole(b) | Entry::Cut(b) => Some(b),
        Entry::Encrypted(how) => {
            ctx.unscannable(location, Reason::Encrypted, how);
            None
        }
        Entry::Failed(e) => {
            ctx.unscannable(location, Reason::Corrupt, format!("{name}: {e}"));
            None
        }
    }
}

/// Part names matching a prefix and suffix, in natural order (`slide2` before `slide10`).
fn parts_like(z: &Zip<'_>, prefix: &str, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = z
        .file_names_raw()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
        .collect();
    v.sort_by_key(|n| {
        let digits: String = n[prefix.len()..]
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        (digits.parse::<u64>().unwrap_or(0), n.clone())
    });
    v
}

/// Text of a WordprocessingML / DrawingML part: paragraphs as lines, tabs and cells as tabs.
/// Table cells met while a document's text is written out: their spans in the text and grid
/// positions (rows numbered across tables, with a gap between two tables), for header context.
#[derive(Default)]
pub(crate) struct Cells {
    pub grid: Vec<crate::detect::GridCell>,
    row: u32,
    next_col: u32,
    open: Option<(usize, u32)>,
    span: u32,
}

impl Cells {
    fn table(&mut self) {
        self.row = self.row.saturating_add(2);
    }

    fn row(&mut self) {
        self.row = self.row.saturating_add(1);
        self.next_col = 0;
    }

    fn start(&mut self, at: usize) {
        self.open = Some((at, self.next_col));
        self.span = 1;
    }

    /// A merged cell that is not repeated in the markup (Word's `gridSpan`).
    fn span(&mut self, n: Option<String>) {
        self.span = n
            .and_then(|v| v.parse().ok())
            .unwrap_or(1u32)
            .clamp(1, 1000);
    }

    fn end(&mut self, text: &str) {
        if let Some((start, col)) = self.open.take() {
            let end = text.trim_end().len().max(start);
            if end > start && self.grid.len() < super::GRID_CELLS {
                self.grid.push(crate::detect::GridCell {
                    start,
                    end,
                    row: self.row,
                    col,
                });
            }
            self.next_col = col.saturating_add(self.span);
        }
    }
}

fn wordml_text(xml: &str, out: &mut String, cells: &mut Cells) -> Result<(), String> {
    let mut in_text = false;
    walk(xml, |n| match n {
        Node::Start { name, e } => match name {
            "t" | "delText" => in_text = true,
            "tab" => out.push('\t'),
            "br" | "cr" => out.push('\n'),
            "tbl" => cells.table(),
            "tr" => cells.row(),
            "tc" => cells.start(out.len()),
            // Word's merged cell; PowerPoint repeats merged cells (hMerge) and needs no span.
            "gridSpan" => cells.span(attr(e, "val")),
            _ => {}
        },
        Node::End { name } => match name {
            "t" | "delText" => in_text = false,
            "p" => out.push('\n'),
            "tc" => {
                cells.end(out);
                out.push('\t')
            }
            _ => {}
        },
        Node::Text(t) => {
            if in_text {
                out.push_str(t)
            }
        }
    })
}

/// Document properties: title, author, last modified by.
fn core_properties(xml: &str) -> Vec<(String, String)> {
    let mut props = Vec::new();
    let mut cur: Option<&'static str> = None;
    let _ = walk(xml, |n| match n {
        Node::Start { name, .. } => {
            cur = match name {
                "title" => Some("title"),
                "creator" | "initial-creator" => Some("author"),
                "lastModifiedBy" => Some("last_modified_by"),
                _ => None,
            }
        }
        Node::End { .. } => cur = None,
        Node::Text(t) => {
            if let Some(k) = cur {
                let t = t.trim();
                // ODF writes the last author as dc:creator after meta:initial-creator.
                let key = if k == "author"
                    && props.iter().any(|(p, _): &(String, String)| p == "author")
                {
                    "last_modified_by"
                } else {
                    k
                };
                if !t.is_empty() && !props.iter().any(|(p, _)| p == key) {
                    props.push((key.to_string(), t.to_string()));
                }
            }
        }
    });
    props
}

/// docx, xlsx, pptx. Returns the document properties.
pub(crate) fn ooxml(
    ctx: &mut Ctx<'_>,
    location: &str,
    data: &[u8],
    kind: FileKind,
) -> Vec<(String, String)> {
    let Some(mut z) = open(ctx, location, data) else {
        return Vec::new();
    };
    let props = part(ctx, &mut z, location, "docProps/core.xml")
        .map(|b| core_properties(&xml_text(&b)))
        .unwrap_or_default();
    match kind {
        FileKind::Docx => {
            let mut names = vec!["word/document.xml".to_string()];
            for (p, s) in [("word/header", ".xml"), ("word/footer", ".xml")] {
                names.extend(parts_like(&z, p, s));
            }
            names.extend(
                [
                    "word/footnotes.xml",
                    "word/endnotes.xml",
                    "word/comments.xml",
                ]
                .map(str::to_string),
            );
            let mut text = String::new();
            let mut cells = Cells::default();
            for n in names {
                if !ctx.in_time(location) {
                    break;
                }
                if let Some(b) = part(ctx, &mut z, location, &n) {
                    if let Err(e) = wordml_text(&xml_text(&b), &mut text, &mut cells) {
                        ctx.unscannable(location, Reason::Corrupt, format!("{n}: {e}"));
                    }
                    text.push('\n');
                }
            }
            ctx.push_text(Segment {
                location: location.to_string(),
                text,
                grid: cells.grid,
                ..Segment::default()
            });
        }
        FileKind::Pptx => {
            let mut names = parts_like(&z, "ppt/slides/slide", ".xml");
            names.extend(parts_like(&z, "ppt/notesSlides/notesSlide", ".xml"));
            names.extend(parts_like(&z, "ppt/comments/comment", ".xml"));
            let mut text = String::new();
            let mut cells = Cells::default();
            for n in names {
                if !ctx.in_time(location) {
                    break;
                }
                if let Some(b) = part(ctx, &mut z, location, &n) {
                    if let Err(e) = wordml_text(&xml_text(&b), &mut text, &mut cells) {
                        ctx.unscannable(location, Reason::Corrupt, format!("{n}: {e}"));
                    }
                    text.push('\n');
                }
            }
            ctx.push_text(Segment {
                location: location.to_string(),
                text,
                grid: cells.grid,
                ..Segment::default()
            });
        }
        FileKind::Xlsx => xlsx(ctx, &mut z, location),
        _ => {}
    }
    props
}

/// Column letters of a 0-based column index (0 → A, 26 → AA).
#[cfg(test)]
fn column_name(c: u32) -> String {
    let mut letters = [0u8; 7];
    let n = column_letters(c, &mut letters);
    String::from_utf8_lossy(&letters[7 - n..]).into_owned()
}

/// Writes the letters of column `c` (0 = `A`, 26 = `AA`) at the end of `out`; returns how
/// many (a u32 needs at most 7).
fn column_letters(mut c: u32, out: &mut [u8; 7]) -> usize {
    let mut n = 0;
    loop {
        out[6 - n] = b'A' + (c % 26) as u8;
        n += 1;
        if c < 26 {
            break;
        }
        c = c / 26 - 1;
    }
    n
}

/// `B12` for column 1, row 12: at most 17 bytes (7 letters, 10 digits), so held inline, with
/// no allocation (only cells holding a finding are named, but a list has 30,000 of those).
pub(crate) fn cell_name(col: u32, row: u32) -> CompactString {
    let mut letters = [0u8; 7];
    let n = column_letters(col, &mut letters);
    let mut digits = [0u8; 10];
    let mut d = digits.len();
    let mut r = row;
    loop {
        d -= 1;
        digits[d] = b'0' + (r % 10) as u8;
        r /= 10;
        if r == 0 {
            break;
        }
    }
    let mut name = CompactString::with_capacity(n + digits.len() - d);
    for &b in letters[7 - n..].iter().chain(&digits[d..]) {
        name.push(char::from(b));
    }
    name
}

/// Splits `B12` into (column index, row number).
fn parse_ref(r: &str) -> Option<(u32, u32)> {
    let n = r.bytes().take_while(u8::is_ascii_alphabetic).count();
    let row: u32 = r[n..].parse().ok()?;
    let mut col = 0u32;
    for c in r[..n].bytes() {
        col = col
            .checked_mul(26)?
            .checked_add(u32::from(c.to_ascii_uppercase() - b'A') + 1)?;
    }
    Some((col.checked_sub(1)?, row))
}

/// Excel stores numbers as doubles: `1.23456789012E+11` is the integer `123456789012`.
fn number_text(v: &str) -> Cow<'_, str> {
    if v.contains(['E', 'e']) {
        if let Ok(f) = v.parse::<f64>() {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                return Cow::Owned(format!("{}", f as i64));
            }
        }
    }
    Cow::Borrowed(v)
}

/// A sheet being built: text with rows as lines and the start offset of each cell.
#[derive(Default)]
pub(crate) struct SheetText {
    pub text: String,
    pub cells: Vec<super::CellStart>,
    /// The same cells with their spans and grid positions, for header context.
    pub grid: Vec<crate::detect::GridCell>,
    row: Option<u32>,
}

impl SheetText {
    /// Appends a cell (rows must come in order; a new row starts a new line).
    pub fn cell(&mut self, row: u32, col: u32, value: &str) {
        if value.is_empty() {
            return;
        }
        match self.row {
            Some(r) if r == row => self.text.push('\t'),
            Some(_) => self.text.push('\n'),
            None => {}
        }
        self.row = Some(row);
        self.cells.push(super::CellStart {
            at: self.text.len(),
            col,
            row,
        });
        if self.grid.len() < super::GRID_CELLS {
            self.grid.push(crate::detect::GridCell {
                start: self.text.len(),
                end: self.text.len() + value.len(),
                row,
                col,
            });
        }
        self.text.push_str(value);
    }
}

fn xlsx(ctx: &mut Ctx<'_>, z: &mut Zip<'_>, location: &str) {
    // Shared strings: one buffer and where each string ends in it (a 10,000-row list has
    // 50,000 of them; a `String` each cost more than reading them).
    let mut shared_text = String::new();
    let mut shared_ends: Vec<usize> = Vec::new();
    if let Some(b) = part(ctx, z, location, "xl/sharedStrings.xml") {
        let xml = xml_text(&b);
        let (mut in_si, mut in_t, mut in_rph) = (false, false, false);
        let cur = &mut shared_text;
        let r = walk(&xml, |n| match n {
            Node::Start { name, .. } => match name {
                "si" => {
                    in_si = true;
                    // An `si` left open (malformed) is dropped: only closed ones count.
                    cur.truncate(shared_ends.last().copied().unwrap_or(0));
                }
                "t" => in_t = true,
                "rPh" => in_rph = true, // phonetic (furigana) runs: not part of the value
                _ => {}
            },
            Node::End { name } => match name {
                "si" => {
                    in_si = false;
                    shared_ends.push(cur.len());
                }
                "t" => in_t = false,
                "rPh" => in_rph = false,
                _ => {}
            },
            Node::Text(t) => {
                if in_si && in_t && !in_rph {
                    cur.push_str(t)
                }
            }
        });
        if let Err(e) = r {
            ctx.unscannable(location, Reason::Corrupt, format!("sharedStrings.xml: {e}"));
        }
        shared_text.truncate(shared_ends.last().copied().unwrap_or(0));
    }
    let shared = |i: usize| -> Option<&str> {
        let end = *shared_ends.get(i)?;
        let start = if i == 0 { 0 } else { shared_ends[i - 1] };
        shared_text.get(start..end)
    };
    // Sheets: names from workbook.xml, files from its relationships.
    let mut sheets: Vec<(String, String)> = Vec::new(); // (name, r:id)
    if let Some(b) = part(ctx, z, location, "xl/workbook.xml") {
        let _ = walk(&xml_text(&b), |n| {
            if let Node::Start { name: "sheet", e } = n {
                if let (Some(name), Some(rid)) = (attr(e, "name"), attr(e, "id")) {
                    sheets.push((name, rid));
                }
            }
        });
    }
    let mut targets: Vec<(String, String)> = Vec::new();
    if let Some(b) = part(ctx, z, location, "xl/_rels/workbook.xml.rels") {
        let _ = walk(&xml_text(&b), |n| {
            if let Node::Start {
                name: "Relationship",
                e,
            } = n
            {
                if let (Some(id), Some(t)) = (attr(e, "Id"), attr(e, "Target")) {
                    let t = t.trim_start_matches('/');
                    let path = if t.starts_with("xl/") {
                        t.to_string()
                    } else {
                        format!("xl/{t}")
                    };
                    targets.push((id, path));
                }
            }
        });
    }
    let mut files: Vec<(String, String)> = sheets
        .iter()
        .filter_map(|(name, rid)| {
            targets
                .iter()
                .find(|(id, _)| id == rid)
                .map(|(_, p)| (name.clone(), p.clone()))
        })
        .collect();
    if files.is_empty() {
        files = parts_like(z, "xl/worksheets/sheet", ".xml")
            .into_iter()
            .map(|p| (p.clone(), p))
            .collect();
    }
    let mut cells_left = ctx.limits().cells;
    for (sheet_name, path) in files {
        if !ctx.in_time(location) || cells_left == 0 {
            break;
        }
        let Some(b) = part(ctx, z, location, &path) else {
            continue;
        };
        let xml = xml_text(&b);
        let mut sheet = SheetText::default();
        let (mut r, mut c) = (0u32, 0u32);
        let (mut t_attr, mut in_v, mut in_is_t, mut val) =
            (String::new(), false, false, String::new());
        let mut in_cell = false;
        let mut next_col = 0u32;
        let mut row_no = 0u32;
        let mut over = false;
        let res = walk(&xml, |n| match n {
            Node::Start { name, e } => match name {
                "row" => {
                    row_no = attr_ref(e, "r")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(row_no + 1);
                    next_col = 0;
                }
                "c" => {
                    in_cell = true;
                    val.clear();
                    t_attr.clear();
                    let [t, r_attr] = attrs_ref(e, ["t", "r"]);
                    if let Some(t) = t {
                        t_attr.push_str(&t);
                    }
                    match r_attr.and_then(|v| parse_ref(&v)) {
                        Some((col, row)) => (c, r) = (col, row),
                        None => (c, r) = (next_col, row_no),
                    }
                    next_col = c + 1;
                }
                "v" => in_v = true,
                "t" if in_cell => in_is_t = true,
                _ => {}
            },
            Node::End { name } => match name {
                "c" => {
                    in_cell = false;
                    if cells_left == 0 {
                        over = true;
                        return;
                    }
                    cells_left -= 1;
                    let text: Cow<'_, str> = match t_attr.as_str() {
                        "s" => val
                            .trim()
                            .parse::<usize>()
                            .ok()
                            .and_then(shared)
                            .map_or(Cow::Borrowed(""), Cow::Borrowed),
                        "inlineStr" | "str" | "e" => Cow::Borrowed(val.as_str()),
                        "b" => Cow::Borrowed(""),
                        _ => number_text(val.trim()),
                    };
                    sheet.cell(r, c, &text);
                }
                "v" => in_v = false,
                "t" => in_is_t = false,
                _ => {}
            },
            Node::Text(t) => {
                if in_cell && (in_v || in_is_t) {
                    val.push_str(t)
                }
            }
        });
        if let Err(e) = res {
            ctx.unscannable(location, Reason::Corrupt, format!("{path}: {e}"));
        }
        if over {
            ctx.unscannable(location, Reason::LimitExceeded, "cells");
        }
        ctx.push_text(Segment {
            location: location.to_string(),
            text: sheet.text,
            sheet: Some(sheet_name),
            cells: sheet.cells,
            grid: sheet.grid,
            ..Segment::default()
        });
    }
    // Cell comments.
    let mut text = String::new();
    for n in parts_like(z, "xl/comments", ".xml") {
        if let Some(b) = part(ctx, z, location, &n) {
            let _ = wordml_text(&xml_text(&b), &mut text, &mut Cells::default());
        }
    }
    ctx.push_text(Segment {
        location: location.to_string(),
        text,
        ..Segment::default()
    });
}

/// odt, ods, odp. Returns the document properties.
pub(crate) fn odf(
    ctx: &mut Ctx<'_>,
    location: &str,
    data: &[u8],
    kind: FileKind,
) -> Vec<(String, String)> {
    let Some(mut z) = open(ctx, location, data) else {
        return Vec::new();
    };
    if let Some(m) = part(ctx, &mut z, location, "META-INF/manifest.xml") {
        if memchr::memmem::find(&m, b"encryption-data").is_some() {
            ctx.unscannable(location, Reason::Encrypted, "odf");
            return Vec::new();
        }
    }
    let props = part(ctx, &mut z, location, "meta.xml")
        .map(|b| core_properties(&xml_text(&b)))
        .unwrap_or_default();
    let Some(content) = part(ctx, &mut z, location, "content.xml") else {
        ctx.unscannable(location, Reason::Corrupt, "no content.xml");
        return props;
    };
    let xml = xml_text(&content);
    if kind == FileKind::Ods {
        ods(ctx, location, &xml);
        return props;
    }
    let mut text = String::new();
    let mut cells = Cells::default();
    let r = walk(&xml, |n| match n {
        Node::Start { name, e } => match name {
            "tab" => text.push('\t'),
            "line-break" => text.push('\n'),
            "s" => {
                let n: usize = attr(e, "c").and_then(|v| v.parse().ok()).unwrap_or(1);
                text.push_str(&" ".repeat(n.min(64)));
            }
            "table" => cells.table(),
            "table-row" => cells.row(),
            // ODF repeats merged cells as covered cells: one column each.
            "table-cell" | "covered-table-cell" => cells.start(text.len()),
            _ => {}
        },
        Node::End { name } => {
            if matches!(name, "p" | "h") {
                text.push('\n')
            } else if matches!(name, "table-cell" | "covered-table-cell") {
                cells.end(&text);
                text.push('\t')
            }
        }
        Node::Text(t) => text.push_str(t),
    });
    if let Err(e) = r {
        ctx.unscannable(location, Reason::Corrupt, format!("content.xml: {e}"));
    }
    ctx.push_text(Segment {
        location: location.to_string(),
        text,
        grid: cells.grid,
        ..Segment::default()
    });
    props
}

fn ods(ctx: &mut Ctx<'_>, location: &str, xml: &str) {
    let mut cells_left = ctx.limits().cells;
    let mut sheets: Vec<(String, SheetText)> = Vec::new();
    let (mut row, mut col) = (0u32, 0u32);
    let (mut row_repeat, mut col_repeat) = (1u32, 1u32);
    let mut in_cell = false;
    let mut cell_text = String::new();
    // office:value (a number or date cell's value); both buffers are reused from cell to cell.
    let mut value = String::new();
    let mut over = false;
    let r = walk(xml, |n| match n {
        Node::Start { name, e } => match name {
            "table" => {
                sheets.push((attr(e, "name").unwrap_or_default(), SheetText::default()));
                row = 0;
            }
            "table-row" => {
                row += 1;
                col = 0;
                row_repeat = attr_ref(e, "number-rows-repeated")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1)
                    .max(1);
            }
            "table-cell" | "covered-table-cell" => {
                in_cell = true;
                cell_text.clear();
                value.clear();
                let [v, repeated] = attrs_ref(e, ["value", "number-columns-repeated"]);
                if let Some(v) = v {
                    value.push_str(&v);
                }
                col_repeat = repeated.and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
            }
            "p" if in_cell && !cell_text.is_empty() => cell_text.push('\n'),
            _ => {}
        },
        Node::End { name } => match name {
            "table-cell" | "covered-table-cell" => {
                in_cell = false;
                let v = if cell_text.is_empty() {
                    &value
                } else {
                    &cell_text
                };
                if !v.is_empty() {
                    // A repeated non-empty cell is stored once: it is one value to inspect.
                    if cells_left == 0 {
                        over = true;
                    } else if let Some((_, s)) = sheets.last_mut() {
                        cells_left -= 1;
                        s.cell(row, col, v);
                    }
                }
                col = col.saturating_add(col_repeat);
            }
            "table-row" => row = row.saturating_add(row_repeat - 1),
            _ => {}
        },
        Node::Text(t) => {
            if in_cell {
                cell_text.push_str(t)
            }
        }
    });
    if let Err(e) = r {
        ctx.unscannable(location, Reason::Corrupt, format!("content.xml: {e}"));
    }
    if over {
        ctx.unscannable(location, Reason::LimitExceeded, "cells");
    }
    for (name, s) in sheets {
        ctx.push_text(Segment {
            location: location.to_string(),
            text: s.text,
            sheet: Some(name),
            cells: s.cells,
            grid: s.grid,
            ..Segment::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_refs() {
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(16383), "XFD");
        assert_eq!(column_name(u32::MAX), "MWLQKWV");
        assert_eq!(cell_name(1, 12), "B12");
        assert_eq!(cell_name(16383, 1_048_576), "XFD1048576");
        assert_eq!(cell_name(u32::MAX, u32::MAX), "MWLQKWV4294967295");
        assert_eq!(cell_name(0, 0), "A0");
        assert!(!cell_name(u32::MAX, u32::MAX).is_heap_allocated());
        assert_eq!(parse_ref("XFD1048576"), Some((16383, 1048576)));
        assert_eq!(parse_ref("B2"), Some((1, 2)));
        assert_eq!(number_text("1.23456789012E+11"), "123456789012");
    }
}
