//! Rules in TOML: the built-in detector set embedded in the crate, and user rules files that add
//! regex detectors, keyword lists and dictionary files, add context words, and retune or disable
//! built-ins.
//!
//! Every error names the file, the line and column, and the field, e.g.
//! `rules.toml:12:9: detector[1].regex: invalid regex: unclosed group`.
//! The format is documented in `docs/rules.md` and by the commented example `corpus/rules/example.toml`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The built-in detectors: ids, names, kinds, context words. Compiled into the library.
pub const BUILTIN_RULES: &str = include_str!("builtin.toml");

/// Confidence of a finding. Ordered: `Low < Medium < High`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// The format and any check digit hold, but nothing around the value says what it is.
    Low = 1,
    /// Format plus one more signal (a strong structure, a bracketed marking, a weak context).
    Medium = 2,
    /// Format, check and a context word (or an unambiguous format such as a secret prefix).
    High = 3,
}

impl Confidence {
    /// `"low"`, `"medium"` or `"high"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }

    /// One level up, saturating at `High`.
    pub fn raised(self) -> Confidence {
        match self {
            Confidence::Low => Confidence::Medium,
            _ => Confidence::High,
        }
    }

    /// One level down; `None` below `Low`.
    pub fn lowered(self) -> Option<Confidence> {
        match self {
            Confidence::High => Some(Confidence::Medium),
            Confidence::Medium => Some(Confidence::Low),
            Confidence::Low => None,
        }
    }

    /// Parses `"low"`, `"medium"`, `"high"` (case-insensitive).
    pub fn parse(s: &str) -> Option<Confidence> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Some(Confidence::Low),
            "medium" => Some(Confidence::Medium),
            "high" => Some(Confidence::High),
            _ => None,
        }
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a finding's value is masked in reports, logs and audit rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskStyle {
    /// Shown as found (keywords and markings an administrator wrote themselves).
    None,
    /// Every letter and digit but the last four replaced by `*`.
    Last4,
    /// Every letter and digit but the first character replaced by `*`.
    First1,
    /// Every letter and digit replaced by `*`.
    Full,
    /// Card numbers: the first four and last four digits shown (`4111 **** **** 1111`).
    First4Last4,
    /// Secrets: the public type prefix shown (`ghp_`, `xoxb-`, `sk_live_`, `AIza`, a PEM header
    /// line), everything else replaced by `*`.
    Secret,
}

/// A rules-file error: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// What kind of document: `rules` or `policy` (names text given without a file:
    /// `<policy>:3:10`).
    pub document: &'static str,
    /// The file, or `None` for rules given as a string.
    pub file: Option<PathBuf>,
    /// 1-based line; 0 when the error has no position (a missing file).
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// The field, e.g. `detector[2].regex` or `builtin.credit_card.min_count`.
    pub field: String,
    /// What is wrong, in one sentence.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self
            .file
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("<{}>", self.document));
        if self.line > 0 {
            write!(f, "{file}:{}:{}: ", self.line, self.column)?;
        } else {
            write!(f, "{file}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for RuleError {}

/// A rules document being read: its text and name, to turn byte spans into line and column.
pub(crate) struct Source<'a> {
    #[allow(dead_code)]
    pub file: Option<&'a Path>,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        field: &str,
        msg: impl Into<String>,
    ) -> RuleError {
        let (line, column) = match span {
            Some(s) => line_col(self.text, s.start),
            None => (0, 0),
        };
        RuleError {
            document: "rules",
            file: self.file.map(Path::to_path_buf),
            line,
            column,
            field: field.to_string(),
            message: msg.into(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// `[settings]` of a rules file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsDef {
    pub context_window: Option<Spanned<i64>>,
    pub negative_window: Option<Spanned<i64>>,
    pub min_confidence: Option<Spanned<String>>,
    pub report_test_values: Option<bool>,
}

/// One detector: a built-in's definition in `builtin.toml`, or a user's `[[detector]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DetectorDef {
    pub id: Spanned<String>,
    /// Built-ins only: the matcher behind the detector.
    pub kind: Option<Spanned<String>>,
    pub name_en: Option<String>,
    pub name_ja: Option<String>,
    pub description: Option<String>,
    /// User detectors: the pattern (regex-automata syntax; matched on width-folded text).
    pub regex: Option<Spanned<String>>,
    /// User detectors: a check on the match (`luhn`, `my_number`, `corporate_number`, `iban`).
    pub validator: Option<Spanned<String>>,
    /// Keyword-kind built-ins: the terms and the terms reported at low confidence.
    #[serde(default)]
    pub terms: Vec<String>,
    #[serde(default)]
    pub low_terms: Vec<String>,
    #[serde(default)]
    pub case_sensitive: bool,
    pub confidence: Option<Spanned<String>>,
    #[serde(default)]
    pub context: Vec<String>,
    #[serde(default)]
    pub negative_context: Vec<String>,
    pub context_window: Option<Spanned<i64>>,
    pub context_required: Option<bool>,
    pub min_count: Option<Spanned<i64>>,
    pub min_confidence: Option<Spanned<String>>,
    pub mask: Option<Spanned<String>>,
    pub enabled: Option<bool>,
}

/// `[[keywords]]`: a keyword list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeywordsDef {
    pub id: Spanned<String>,
    pub name_en: Option<String>,
    pub name_ja: Option<String>,
    pub terms: Spanned<Vec<String>>,
    #[serde(default)]
    pub case_sensitive: bool,
    pub confidence: Option<Spanned<String>>,
    #[serde(default)]
    pub context: Vec<String>,
    #[serde(default)]
    pub negative_context: Vec<String>,
    pub context_window: Option<Spanned<i64>>,
    pub min_count: Option<Spanned<i64>>,
    pub min_confidence: Option<Spanned<String>>,
    pub mask: Option<Spanned<String>>,
}

/// `[[dictionary]]`: a dictionary file, one term per line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DictionaryDef {
    pub id: Spanned<String>,
    pub name_en: Option<String>,
    pub name_ja: Option<String>,
    pub path: Spanned<String>,
    #[serde(default)]
    pub case_sensitive: bool,
    pub confidence: Option<Spanned<String>>,
    pub min_count: Option<Spanned<i64>>,
    pub min_confidence: Option<Spanned<String>>,
    pub mask: Option<Spanned<String>>,
}

/// `[builtin.<id>]`: retunes a built-in detector.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BuiltinOverride {
    pub enabled: Option<bool>,
    pub confidence: Option<Spanned<String>>,
    pub min_confidence: Option<Spanned<String>>,
    pub min_count: Option<Spanned<i64>>,
    pub context_window: Option<Spanned<i64>>,
    #[serde(default)]
    pub context: Vec<String>,
    #[serde(default)]
    pub negative_context: Vec<String>,
    pub context_required: Option<bool>,
    pub mask: Option<Spanned<String>>,
}

/// A whole rules document (built-in or user).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RulesDoc {
    #[serde(default)]
    pub settings: SettingsDef,
    #[serde(default)]
    pub detector: Vec<DetectorDef>,
    #[serde(default)]
    pub keywords: Vec<KeywordsDef>,
    #[serde(default)]
    pub dictionary: Vec<DictionaryDef>,
    #[serde(default)]
    pub builtin: BTreeMap<String, Spanned<BuiltinOverride>>,
    /// `builtins = false` disables every built-in detector (then enable some with `[builtin.x]`).
    pub builtins: Option<bool>,
}

/// Parses a rules document, turning TOML and schema errors into [`RuleError`]s with positions.
pub(crate) fn parse_doc(src: &Source<'_>) -> Result<RulesDoc, RuleError> {
    toml::from_str::<RulesDoc>(src.text).map_err(|e| {
        let span = e.span();
        let field = span
            .clone()
            .map(|s| field_at(src.text, s.start))
            .unwrap_or_default();
        src.error(span, &field, e.message().trim().to_string())
    })
}

/// Best-effort name of the field at a byte offset: the key on that line, qualified by the nearest
/// table header above it (`[[detector]]` entries are numbered).
fn field_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    // The enclosing table: the last header before this line, with the index of array tables.
    let mut header = String::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in text[..line_start].lines() {
        let t = l.trim();
        if let Some(name) = t
            .strip_prefix("[[")
            .and_then(|r| r.split_once("]]"))
            .map(|(n, _)| n.trim())
        {
            let n = counts.entry(name.to_string()).or_insert(0);
            header = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = t
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|(n, _)| n.trim())
        {
            header = name.to_string();
        }
    }
    match (header.is_empty(), key) {
        (_, None) if line.trim_start().starts_with('[') => line.trim().to_string(),
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{header}.{k}"),
        (_, None) => header,
    }
}

/// Parses a confidence field.
pub(crate) fn confidence_field(
    src: &Source<'_>,
    v: &Option<Spanned<String>>,
    field: &str,
) -> Result<Option<Confidence>, RuleError> {
    match v {
        None => Ok(None),
        Some(s) => Confidence::parse(s.get_ref()).map(Some).ok_or_else(|| {
            src.error(
                Some(s.span()),
                field,
                format!(
                    "`{}` is not a confidence: use \"low\", \"medium\" or \"high\"",
                    s.get_ref()
                ),
            )
        }),
    }
}

/// Parses a mask field.
pub(crate) fn mask_field(
    src: &Source<'_>,
    v: &Option<Spanned<String>>,
    field: &str,
) -> Result<Option<MaskStyle>, RuleError> {
    match v {
        None => Ok(None),
        Some(s) => match s.get_ref().as_str() {
            "none" => Ok(Some(MaskStyle::None)),
            "last4" => Ok(Some(MaskStyle::Last4)),
            "first1" => Ok(Some(MaskStyle::First1)),
            "full" => Ok(Some(MaskStyle::Full)),
            "first4_last4" => Ok(Some(MaskStyle::First4Last4)),
            "secret" => Ok(Some(MaskStyle::Secret)),
            other => Err(src.error(
                Some(s.span()),
                field,
                format!("`{other}` is not a mask style: use \"none\", \"last4\", \"first1\" or \"full\""),
            )),
        },
    }
}

/// Parses a positive integer field within `lo..=hi`.
pub(crate) fn int_field(
    src: &Source<'_>,
    v: &Option<Spanned<i64>>,
    field: &str,
    lo: i64,
    hi: i64,
) -> Result<Option<usize>, RuleError> {
    match v {
        None => Ok(None),
        Some(s) => {
            let n = *s.get_ref();
            if (lo..=hi).contains(&n) {
                Ok(Some(n as usize))
            } else {
                Err(src.error(
                    Some(s.span()),
                    field,
                    format!("{n} is out of range: use {lo} to {hi}"),
                ))
            }
        }
    }
}

/// Checks a detector id: lower-case ASCII letters, digits, `_`, `-`, `.`, `:`; 1 to 64 characters.
pub(crate) fn check_id(
    src: &Source<'_>,
    id: &Spanned<String>,
    field: &str,
) -> Result<(), RuleError> {
    let s = id.get_ref();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b':')
        });
    if ok {
        Ok(())
    } else {
        Err(src.error(
            Some(id.span()),
            field,
            format!("`{s}` is not a valid id: use 1-64 lower-case letters, digits, `_`, `-`, `.` or `:`"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_rules_parse() {
        let src = Source {
            file: None,
            text: BUILTIN_RULES,
        };
        let doc = parse_doc(&src).expect("builtin.toml parses");
        assert!(doc.detector.len() >= 20);
    }

    #[test]
    fn errors_name_line_and_field() {
        let text = "[settings]\ncontext_window = 10\n\n[[detector]]\nid = \"x\"\nregexp = \"a\"\n";
        let src = Source {
            file: Some(Path::new("r.toml")),
            text,
        };
        let e = parse_doc(&src).unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert_eq!(e.field, "detector[0].regexp", "{e}");
        assert!(e.to_string().starts_with("r.toml:6:"), "{e}");
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("日本\nx", 7), (2, 1));
    }
}
