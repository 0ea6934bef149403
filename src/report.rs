//! A message or a file, inspected: extraction, then detection per text segment, then one report
//! with the message headers, attachments, findings with their locations, unscannable items and
//! per-detector counts.
//!
//! Detection runs in the scanner's arena segment by segment; the report itself is owned so that
//! it can outlive the scan (the workflow layer stores it, the C ABI hands it out). Values are
//! kept raw in the report for callers that need them; [`Report::to_json`] prints them only when
//! asked.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Map, Value};

/// The strings of a finding: values up to 24 bytes (every number and most secrets) are kept
/// inline, without an allocation each (a 10,000-row list has 30,000 findings of three).
pub use compact_str::CompactString;

use crate::detect::{EvidenceKind, Scanner};
use crate::extract::{
    self, Attachment, ExtractOptions, Extraction, FileKind, MessageInfo, Unscannable,
};
use crate::rules::Confidence;

/// An immutable string shared by the findings of a report that hold the same one (a detector
/// id, a location, an evidence text): cloning it is a reference count, not a copy. It reads as
/// a `str` (`Deref`, `as_str`, `Display`) and compares with `str`, `&str` and `String`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> SharedStr {
        SharedStr(Arc::from(s))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> SharedStr {
        SharedStr(Arc::from(s))
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> String {
        s.0.to_string()
    }
}

impl std::fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, o: &str) -> bool {
        &*self.0 == o
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, o: &&str) -> bool {
        &*self.0 == *o
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, o: &String) -> bool {
        *self.0 == **o
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, o: &SharedStr) -> bool {
        self == &*o.0
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, o: &SharedStr) -> bool {
        *self == &*o.0
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, o: &SharedStr) -> bool {
        **self == *o.0
    }
}

impl serde::Serialize for SharedStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Evidence of a finding, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEvidence {
    /// What kind of evidence.
    pub kind: EvidenceKind,
    /// The word, check or signal (shared by the findings that give the same one).
    pub detail: SharedStr,
    /// Characters between a context word and the value.
    pub distance: Option<usize>,
}

/// A finding with its location.
///
/// The detector id, the location, the sheet and the evidence texts are shared ([`SharedStr`]) by
/// the findings of one report that have the same ones, and so is the evidence list (an `Arc`
/// slice: the findings of one column give the same reasons): a 10,000-row list has 30,000
/// findings, and one allocation per field and finding cost as much as the detection.
#[derive(Debug, Clone)]
pub struct ReportFinding {
    /// Detector id.
    pub detector: SharedStr,
    /// Confidence.
    pub confidence: Confidence,
    /// Where: `body`, `subject`, `見積書.zip/data.xlsx`, a file name.
    pub location: SharedStr,
    /// Byte offsets in the location's extracted text (for a UTF-8 text file: in the file).
    pub start: usize,
    /// End offset (exclusive).
    pub end: usize,
    /// PDF page, if any.
    pub page: Option<u32>,
    /// Sheet name, if any.
    pub sheet: Option<SharedStr>,
    /// Cell (`B2`), if any.
    pub cell: Option<CompactString>,
    /// The raw value. Sensitive.
    pub value: CompactString,
    /// The normalised value (what uniqueness counts).
    pub normalized: CompactString,
    /// The masked value.
    pub value_masked: CompactString,
    /// Why. Shared by the findings of one report that give the same evidence; read it as a
    /// slice (`f.evidence.iter()`, `f.evidence.len()`, `&f.evidence[..]`).
    pub evidence: Arc<[ReportEvidence]>,
}

/// Per-detector totals over the whole message or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportCount {
    /// Detector id.
    pub detector: String,
    /// Findings.
    pub findings: usize,
    /// Distinct normalised values.
    pub unique: usize,
}

/// The result of inspecting one message or file.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Headers of the message (None for a plain file).
    pub message: Option<MessageInfo>,
    /// Attachments and archive members with their metadata.
    pub attachments: Vec<Attachment>,
    /// Findings in document order.
    pub findings: Vec<ReportFinding>,
    /// What could not be inspected, and why.
    pub unscannable: Vec<Unscannable>,
    /// Password candidates found in bodies (PPAP). Sensitive: JSON shows the count only.
    pub password_candidates: Vec<String>,
    /// Per-detector counts.
    pub counts: Vec<ReportCount>,
    /// The message's own body texts (not attachments), for policy text conditions. Sensitive.
    pub body_text: String,
    /// Size of the inspected message or file in bytes.
    pub size: u64,
    /// Decoded bytes of the message's own attachments, (location, bytes), when
    /// [`ExtractOptions::keep_attachments`] was set: what the evidence store keeps.
    pub kept: Vec<(String, Vec<u8>)>,
    /// The engine that made the report (`None` for a report put together by hand): a policy
    /// evaluated on the report may name only its detectors ([`crate::policy::EvalError`]).
    pub engine: Option<std::sync::Arc<crate::Engine>>,
}

impl Scanner {
    /// Inspects a raw RFC 5322 message: headers, bodies, attachments, nested messages.
    pub fn inspect_message(&mut self, raw: &[u8], opts: &ExtractOptions) -> Report {
        let ex = extract::extract_message(raw, opts);
        let mut r = self.detect_extraction(ex);
        r.size = raw.len() as u64;
        r
    }

    /// Inspects one file (a document, an archive, an `.eml`, a text file) called `name`.
    pub fn inspect_file(&mut self, name: &str, data: &[u8], opts: &ExtractOptions) -> Report {
        let ex = extract::extract_file(name, data, opts);
        let mut r = self.detect_extraction(ex);
        r.size = data.len() as u64;
        r
    }

    /// Runs detection over extracted segments and assembles the report.
    pub fn detect_extraction(&mut self, ex: Extraction) -> Report {
        let mut findings: Vec<ReportFinding> = Vec::new();
        let mut body_text = String::new();
        for seg in ex.segments.iter().filter(|s| s.location == "body") {
            body_text.push_str(&seg.text);
            body_text.push('\n');
        }
        // Values already reported per alternative group (text/plain vs text/html of one mail).
        let mut seen_in_group: HashSet<(u32, String, String)> = HashSet::new();
        let mut detectors = Shared::default();
        let mut details = Shared::default();
        let mut evidence = SharedEvidence::default();
        // The counts. While one segment (a file, a sheet, a body without an alternative) has
        // findings, they are the scan's own: it counted the same findings by the same keys
        // (`detect::count_key`). From a second segment on, `count_findings`' keys, taken
        // while each finding's strings are still in the cache (a pass over 30,000 findings
        // afterwards missed it on every one).
        let engine = self.engine().clone();
        let order: Vec<&str> = engine.detectors().iter().map(|d| d.id.as_str()).collect();
        let mut alone: Option<Vec<ReportCount>> = None;
        let mut keyed = false;
        let mut keys: Vec<u64> = Vec::new();
        let mut last = (0usize, "");
        let mut ex = ex;
        for seg in ex.segments.iter_mut() {
            // The grid is handed over, not copied: a long CSV has up to 500,000 cells.
            let grid = std::mem::take(&mut seg.grid);
            let seg = &*seg;
            let r = if grid.is_empty() {
                self.scan_str(&seg.text)
            } else {
                self.scan_grid(seg.text.as_bytes(), grid)
            };
            if r.findings.is_empty() {
                continue;
            }
            let location = SharedStr::from(seg.location.as_str());
            let sheet = seg.sheet.as_deref().map(SharedStr::from);
            if findings.is_empty() && seg.alternative_group.is_none() {
                alone = Some(
                    r.counts
                        .iter()
                        .map(|c| ReportCount {
                            detector: c.detector.to_string(),
                            findings: c.findings,
                            unique: c.unique,
                        })
                        .collect(),
                );
            } else if !keyed {
                keyed = true;
                alone = None;
                keys = findings
                    .iter()
                    .filter_map(|f| count_key(&order, &mut last, &f.detector, &f.normalized))
                    .collect();
            }
            findings.reserve(r.findings.len());
            if keyed {
                keys.reserve(r.findings.len());
            }
            let mut cell_from = 0;
            for f in r.findings {
                if let Some(g) = seg.alternative_group {
                    if !seen_in_group.insert((g, f.detector.to_string(), f.normalized.to_string()))
                    {
                        continue;
                    }
                }
                if keyed {
                    keys.extend(count_key(&order, &mut last, f.detector, f.normalized));
                }
                findings.push(ReportFinding {
                    detector: detectors.get(f.detector),
                    confidence: f.confidence,
                    location: location.clone(),
                    start: seg.byte_base + f.start,
                    end: seg.byte_base + f.end,
                    page: seg.page,
                    sheet: sheet.clone(),
                    cell: seg.cell_at_from(f.start, &mut cell_from),
                    value: CompactString::new(f.value),
                    normalized: CompactString::new(f.normalized),
                    value_masked: CompactString::new(f.value_masked),
                    evidence: evidence.get(f.evidence, &mut details),
                });
            }
        }
        let counts = alone.unwrap_or_else(|| counts_of(&order, keys));
        Report {
            message: ex.message,
            attachments: ex.attachments,
            findings,
            unscannable: ex.unscannable,
            password_candidates: ex.password_candidates,
            counts,
            body_text,
            size: 0,
            kept: ex.kept,
            engine: Some(self.engine().clone()),
        }
    }
}

/// What the findings of one report share (strings, evidence lists): the `N` newest distinct
/// values are kept and found by their content, the last one found tried first (a column's
/// findings ask for the same ones in a row); a value not kept is made anew, so a look-up stays
/// bounded on any text.
struct Kept<T, const N: usize> {
    kept: Vec<T>,
    /// The slot that the next new value replaces once `kept` is full.
    next: usize,
    /// The slot of the last value found or made.
    last: usize,
}

impl<T, const N: usize> Default for Kept<T, N> {
    fn default() -> Self {
        Kept {
            kept: Vec::new(),
            next: 0,
            last: 0,
        }
    }
}

impl<T: Clone, const N: usize> Kept<T, N> {
    /// The kept value that is `same`, or a new one from `make` (kept in place of the oldest).
    fn get(&mut self, same: impl Fn(&T) -> bool, make: impl FnOnce() -> T) -> T {
        if let Some(k) = self.kept.get(self.last).filter(|k| same(k)) {
            return k.clone();
        }
        if let Some(i) = self.kept.iter().position(&same) {
            self.last = i;
            return self.kept[i].clone();
        }
        let new = make();
        if self.kept.len() < N {
            self.last = self.kept.len();
            self.kept.push(new.clone());
        } else {
            self.last = self.next;
            self.kept[self.next] = new.clone();
            self.next = (self.next + 1) % N;
        }
        new
    }
}

/// The strings that the findings of one report share (there are few: the detectors and
/// context words that fired).
#[derive(Default)]
struct Shared(Kept<SharedStr, STRINGS_KEPT>);

const STRINGS_KEPT: usize = 16;

impl Shared {
    fn get(&mut self, s: &str) -> SharedStr {
        self.0.get(
            |a| a.len() == s.len() && a.as_str() == s,
            || SharedStr::from(s),
        )
    }
}

/// The evidence lists that the findings of one report share: a list's column gives one,
/// running text a few more with their distances.
#[derive(Default)]
struct SharedEvidence(Kept<Arc<[ReportEvidence]>, EVIDENCE_KEPT>);

const EVIDENCE_KEPT: usize = 8;

impl SharedEvidence {
    fn get(
        &mut self,
        ev: &[crate::detect::Evidence<'_>],
        details: &mut Shared,
    ) -> Arc<[ReportEvidence]> {
        let same = |kept: &Arc<[ReportEvidence]>| {
            kept.len() == ev.len()
                && kept.iter().zip(ev).all(|(k, e)| {
                    k.kind == e.kind && k.distance == e.distance && k.detail.as_str() == e.detail
                })
        };
        let make = || {
            ev.iter()
                .map(|e| ReportEvidence {
                    kind: e.kind,
                    detail: details.get(e.detail),
                    distance: e.distance,
                })
                .collect()
        };
        self.0.get(same, make)
    }
}

/// Findings and distinct values per detector, in the order given (detectors without findings
/// left out). Values are told apart by a 64-bit hash of their normalized form and counted by
/// sorting: a 10,000-row list has 30,000 findings, and a set of copied strings cost more than
/// the rest of the report.
fn count_findings<'a>(
    order: impl Iterator<Item = &'a str>,
    findings: &[ReportFinding],
) -> Vec<ReportCount> {
    let order: Vec<&str> = order.collect();
    let mut last = (0usize, "");
    let keys = findings
        .iter()
        .filter_map(|f| count_key(&order, &mut last, &f.detector, &f.normalized))
        .collect();
    counts_of(&order, keys)
}

/// A finding's counting key ([`crate::detect::count_key`] of its detector's place in `order` and
/// its normalized value), or None for a detector that is not in `order` (not counted). Findings of one detector come in
/// runs (a column of a list), so `last`, the place found last, is tried first.
fn count_key<'a>(
    order: &[&'a str],
    last: &mut (usize, &'a str),
    detector: &str,
    normalized: &str,
) -> Option<u64> {
    let d = if detector == last.1 {
        last.0
    } else {
        let d = order.iter().position(|o| *o == detector)?;
        *last = (d, order[d]);
        d
    };
    Some(crate::detect::count_key(d, normalized.as_bytes()))
}

/// The counts of [`count_findings`] from the findings' keys ([`count_key`]).
fn counts_of(order: &[&str], mut keys: Vec<u64>) -> Vec<ReportCount> {
    use crate::detect::key_det;
    keys.sort_unstable();
    let mut counts = Vec::new();
    for group in keys.chunk_by(|a, b| key_det(*a) == key_det(*b)) {
        counts.push(ReportCount {
            detector: order[key_det(group[0])].to_string(),
            findings: group.len(),
            unique: 1 + group.windows(2).filter(|w| w[0] != w[1]).count(),
        });
    }
    counts
}

impl Report {
    /// Keeps only findings at `min` confidence or above, and counts them again (findings and
    /// distinct values per detector), as `scan --min-confidence` shows them.
    pub fn retain_min_confidence(&mut self, min: Confidence) {
        if min <= Confidence::Low {
            return;
        }
        self.findings.retain(|f| f.confidence >= min);
        self.counts = count_findings(
            self.counts.iter().map(|c| c.detector.as_str()),
            &self.findings,
        );
    }

    /// The report as JSON (the CLI's `scan --json` object without `path`): raw values and
    /// password candidates only with `show_values`.
    pub fn to_json(&self, show_values: bool) -> Value {
        let message = self.message.as_ref().map(|m| {
            json!({
                "subject": m.subject, "from": m.from, "to": m.to, "cc": m.cc, "bcc": m.bcc,
                "reply_to": m.reply_to, "date": m.date, "message_id": m.message_id,
            })
        });
        let attachments: Vec<Value> = self
            .attachments
            .iter()
            .map(|a| {
                let mut o = Map::new();
                o.insert("location".into(), json!(a.location));
                o.insert("name".into(), json!(a.name));
                o.insert("declared_type".into(), json!(a.declared_type));
                o.insert(
                    "true_type".into(),
                    json!(if a.kind == FileKind::Unknown && a.sha256.is_empty() {
                        None
                    } else {
                        Some(a.kind.mime())
                    }),
                );
                o.insert("kind".into(), json!(a.kind.short()));
                o.insert("size".into(), json!(a.size));
                o.insert(
                    "sha256".into(),
                    json!(if a.sha256.is_empty() {
                        None
                    } else {
                        Some(&a.sha256)
                    }),
                );
                o.insert("extension_mismatch".into(), json!(a.extension_mismatch));
                if crate::text::has_bidi_override(&a.name) {
                    o.insert("filename_spoofing".into(), json!(true));
                }
                if !a.properties.is_empty() {
                    let p: Map<String, Value> = a
                        .properties
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect();
                    o.insert("properties".into(), Value::Object(p));
                }
                Value::Object(o)
            })
            .collect();
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let mut o = Map::new();
                o.insert("detector".into(), json!(f.detector));
                o.insert("confidence".into(), json!(f.confidence.as_str()));
                o.insert("value_masked".into(), json!(f.value_masked.as_str()));
                if show_values {
                    o.insert("value".into(), json!(f.value.as_str()));
                    o.insert("normalized".into(), json!(f.normalized.as_str()));
                }
                o.insert("location".into(), json!(f.location));
                if let Some(p) = f.page {
                    o.insert("page".into(), json!(p));
                }
                if let Some(s) = &f.sheet {
                    o.insert("sheet".into(), json!(s));
                }
                if let Some(c) = &f.cell {
                    o.insert("cell".into(), json!(c.as_str()));
                }
                o.insert("start".into(), json!(f.start));
                o.insert("end".into(), json!(f.end));
                let ev: Vec<Value> = f
                    .evidence
                    .iter()
                    .map(|e| {
                        let mut m = Map::new();
                        m.insert("kind".into(), json!(e.kind.as_str()));
                        m.insert("detail".into(), json!(e.detail));
                        if let Some(d) = e.distance {
                            m.insert("distance".into(), json!(d));
                        }
                        Value::Object(m)
                    })
                    .collect();
                o.insert("evidence".into(), Value::Array(ev));
                Value::Object(o)
            })
            .collect();
        let unscannable: Vec<Value> = self
            .unscannable
            .iter()
            .map(|u| json!({"location": u.location, "reason": u.reason.as_str(), "detail": u.detail}))
            .collect();
        let mut counts = Map::new();
        for c in &self.counts {
            counts.insert(
                c.detector.clone(),
                json!({"findings": c.findings, "unique": c.unique}),
            );
        }
        let mut ppap = Map::new();
        ppap.insert(
            "password_candidates".into(),
            json!(self.password_candidates.len()),
        );
        if show_values {
            ppap.insert("passwords".into(), json!(self.password_candidates));
        }
        json!({
            "message": message,
            "attachments": attachments,
            "findings": findings,
            "unscannable": unscannable,
            "counts": counts,
            "ppap": ppap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, ExtractOptions};

    /// The counts a report carries are `count_findings` over its findings, whether they came
    /// from the scan of the one segment with findings or from the keys of several.
    #[test]
    fn counts_are_those_of_the_findings() {
        let engine = Arc::new(Engine::builtin());
        let mut scanner = Scanner::new(engine.clone());
        let order = || engine.detectors().iter().map(|d| d.id.as_str());
        let opts = ExtractOptions::default();
        let list = "氏名,個人番号,携帯電話\n山田,1234 5678 9018,090-1234-5678\n\
                    佐藤,1234 5678 9018,090-8765-4321\n鈴木,なし,090-1234-5678\n";
        let html = "<p>個人番号 1234 5678 9018</p><p>カード番号 5555-5555-5555-4444</p>";
        let mail = format!(
            "From: a@example.co.jp\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=M\r\n\r\n--M\r\n\
             Content-Type: multipart/alternative; boundary=A\r\n\r\n--A\r\n\
             Content-Type: text/plain; charset=UTF-8\r\n\r\n個人番号 1234 5678 9018\r\n\
             カード番号 5555-5555-5555-4444\r\n--A\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n\
             {html}\r\n--A--\r\n--M\r\nContent-Type: text/csv; charset=UTF-8\r\n\
             Content-Disposition: attachment; filename=list.csv\r\n\r\n{list}\r\n--M--\r\n"
        );
        let one = scanner.inspect_file("list.csv", list.as_bytes(), &opts);
        let alternatives = scanner.inspect_message(mail.as_bytes(), &opts);
        let two_files = scanner.inspect_file(
            "two.txt",
            format!("{list}\n\u{c}\n{list}").as_bytes(),
            &opts,
        );
        for (what, r) in [
            ("one segment", &one),
            ("body alternatives and a list", &alternatives),
            ("one text", &two_files),
        ] {
            assert!(!r.findings.is_empty(), "{what}");
            assert_eq!(r.counts, count_findings(order(), &r.findings), "{what}");
        }
        let my_number = |r: &Report| {
            r.counts
                .iter()
                .find(|c| c.detector == "jp_my_number")
                .map(|c| (c.findings, c.unique))
        };
        // The same My Number twice in the list, once in the body (its two alternatives are one
        // value): three findings, one value, across segments.
        assert_eq!(my_number(&one), Some((2, 1)));
        assert_eq!(my_number(&alternatives), Some((3, 1)));
    }

    #[test]
    fn shared_strings_are_shared_compared_and_bounded() {
        let mut sh = Shared::default();
        let a = sh.get("jp_my_number");
        let b = sh.get("jp_my_number");
        assert!(
            Arc::ptr_eq(&a.0, &b.0),
            "one allocation for a repeated string"
        );
        let other = String::from("jp_my_number");
        assert!(Arc::ptr_eq(&sh.get(&other).0, &a.0), "found by its text");
        let owned = String::from("jp_my_number");
        assert!(a == "jp_my_number" && a == *"jp_my_number" && a == owned);
        assert!("jp_my_number" == a && owned == a);
        assert_eq!(a.to_string(), "jp_my_number");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"jp_my_number\"");
        for i in 0..100 {
            assert_eq!(sh.get(&format!("word{i}")), format!("word{i}"));
        }
        assert_eq!(
            sh.0.kept.len(),
            STRINGS_KEPT,
            "the kept strings are bounded"
        );
        assert_eq!(sh.get("word99"), "word99");
    }

    #[test]
    fn evidence_lists_are_shared_by_content_and_bounded() {
        use crate::detect::{Evidence, EvidenceKind};
        let (mut sh, mut details) = (SharedEvidence::default(), Shared::default());
        let ev = |word: &'static str, distance: Option<usize>| {
            vec![
                Evidence {
                    kind: EvidenceKind::Context,
                    detail: word,
                    distance,
                },
                Evidence {
                    kind: EvidenceKind::Checksum,
                    detail: "mod11",
                    distance: None,
                },
            ]
        };
        let header = ev("column header 個人番号", None);
        let a = sh.get(&header, &mut details);
        // The same content from another slice (another finding) is the same list.
        assert!(Arc::ptr_eq(&a, &sh.get(&header.clone(), &mut details)));
        // Any difference (word, distance, kind, length) is another list, with its own content.
        for other in [
            ev("マイナンバー", None),
            ev("column header 個人番号", Some(0)),
            header[..1].to_vec(),
            vec![],
        ] {
            let b = sh.get(&other, &mut details);
            assert!(!Arc::ptr_eq(&a, &b));
            assert_eq!(b.len(), other.len());
            for (r, e) in b.iter().zip(&other) {
                assert!(r.kind == e.kind && r.detail == e.detail && r.distance == e.distance);
            }
        }
        assert!(
            Arc::ptr_eq(&a, &sh.get(&header, &mut details)),
            "still kept"
        );
        // Running text: every distance is another list; the kept ones stay bounded, and the
        // newest are the ones kept.
        for d in 0..100 {
            let l = sh.get(&ev("マイナンバー", Some(d)), &mut details);
            assert_eq!(l[0].distance, Some(d));
        }
        assert_eq!(sh.0.kept.len(), EVIDENCE_KEPT);
        let last = sh.get(&ev("マイナンバー", Some(99)), &mut details);
        assert!(Arc::ptr_eq(
            &last,
            &sh.get(&ev("マイナンバー", Some(99)), &mut details)
        ));
        assert_eq!(
            sh.get(&header, &mut details)[..],
            a[..],
            "a list no longer kept is rebuilt"
        );
    }
}
