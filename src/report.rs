//! A message or a file, inspected: extraction, then detection per text segment, then one report
//! with the message headers, attachments, findings with their locations, unscannable items and
//! per-detector counts.
//!
//! Detection runs in the scanner's arena segment by segment; the report itself is owned so that
//! it can outlive the scan (the workflow layer stores it, the C ABI hands it out). Values are
//! kept raw in the report for callers that need them; [`Report::to_json`] prints them only when
//! asked.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};

use crate::detect::{EvidenceKind, Scanner};
use crate::extract::{
    self, Attachment, ExtractOptions, Extraction, FileKind, MessageInfo, Unscannable,
};
use crate::rules::Confidence;

/// Evidence of a finding, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEvidence {
    /// What kind of evidence.
    pub kind: EvidenceKind,
    /// The word, check or signal.
    pub detail: String,
    /// Characters between a context word and the value.
    pub distance: Option<usize>,
}

/// A finding with its location.
#[derive(Debug, Clone)]
pub struct ReportFinding {
    /// Detector id.
    pub detector: String,
    /// Confidence.
    pub confidence: Confidence,
    /// Where: `body`, `subject`, `見積書.zip/data.xlsx`, a file name.
    pub location: String,
    /// Byte offsets in the location's extracted text (for a UTF-8 text file: in the file).
    pub start: usize,
    /// End offset (exclusive).
    pub end: usize,
    /// PDF page, if any.
    pub page: Option<u32>,
    /// Sheet name, if any.
    pub sheet: Option<String>,
    /// Cell (`B2`), if any.
    pub cell: Option<String>,
    /// The raw value. Sensitive.
    pub value: String,
    /// The normalised value (what uniqueness counts).
    pub normalized: String,
    /// The masked value.
    pub value_masked: String,
    /// Why.
    pub evidence: Vec<ReportEvidence>,
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
        let mut findings = Vec::new();
        let mut body_text = String::new();
        for seg in ex.segments.iter().filter(|s| s.location == "body") {
            body_text.push_str(&seg.text);
            body_text.push('\n');
        }
        // Values already reported per alternative group (text/plain vs text/html of one mail).
        let mut seen_in_group: HashSet<(u32, String, String)> = HashSet::new();
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
            for f in r.findings {
                if let Some(g) = seg.alternative_group {
                    if !seen_in_group.insert((g, f.detector.to_string(), f.normalized.to_string()))
                    {
                        continue;
                    }
                }
                findings.push(ReportFinding {
                    detector: f.detector.to_string(),
                    confidence: f.confidence,
                    location: seg.location.clone(),
                    start: seg.byte_base + f.start,
                    end: seg.byte_base + f.end,
                    page: seg.page,
                    sheet: seg.sheet.clone(),
                    cell: seg.cell_at(f.start),
                    value: f.value.to_string(),
                    normalized: f.normalized.to_string(),
                    value_masked: f.value_masked.to_string(),
                    evidence: f
                        .evidence
                        .iter()
                        .map(|e| ReportEvidence {
                            kind: e.kind,
                            detail: e.detail.to_string(),
                            distance: e.distance,
                        })
                        .collect(),
                });
            }
        }
        let counts = count_findings(
            self.engine().detectors().iter().map(|d| d.id.as_str()),
            &findings,
        );
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

/// Findings and distinct values per detector, in the order given (detectors without findings
/// left out). Values are told apart by a 64-bit hash of their normalized form and counted by
/// sorting: a 10,000-row list has 30,000 findings, and a set of copied strings cost more than
/// the rest of the report.
fn count_findings<'a>(
    order: impl Iterator<Item = &'a str>,
    findings: &[ReportFinding],
) -> Vec<ReportCount> {
    let order: Vec<&str> = order.collect();
    let index: HashMap<&str, usize> = order.iter().enumerate().map(|(i, d)| (*d, i)).collect();
    // (detector's place in `order`, value hash): integers sort fast; findings of a detector
    // that is not in `order` are not counted.
    let mut keys: Vec<(usize, u64)> = findings
        .iter()
        .filter_map(|f| {
            let d = *index.get(f.detector.as_str())?;
            Some((d, crate::detect::fnv(f.normalized.as_bytes())))
        })
        .collect();
    keys.sort_unstable();
    let mut counts = Vec::new();
    for group in keys.chunk_by(|a, b| a.0 == b.0) {
        counts.push(ReportCount {
            detector: order[group[0].0].to_string(),
            findings: group.len(),
            unique: 1 + group.windows(2).filter(|w| w[0].1 != w[1].1).count(),
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
                o.insert("value_masked".into(), json!(f.value_masked));
                if show_values {
                    o.insert("value".into(), json!(f.value));
                    o.insert("normalized".into(), json!(f.normalized));
                }
                o.insert("location".into(), json!(f.location));
                if let Some(p) = f.page {
                    o.insert("page".into(), json!(p));
                }
                if let Some(s) = &f.sheet {
                    o.insert("sheet".into(), json!(s));
                }
                if let Some(c) = &f.cell {
                    o.insert("cell".into(), json!(c));
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
