//! From rules documents to a compiled [`Engine`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use regex_automata::meta::Regex;
use regex_automata::Input;

use super::context::{ContextWords, WordRole};
use super::literals::LiteralMatcher;
use super::normalize::{fold_str, half_width_katakana};
use super::{
    BuiltinKind, DetId, DetParams, DetectorInfo, DetectorKind, Engine, TermAction, Validator,
};
use crate::rules::{
    check_id, confidence_field, int_field, mask_field, parse_doc, Confidence, DetectorDef,
    MaskStyle, RuleError, RulesDoc, Source, BUILTIN_RULES,
};

/// Longest dictionary or keyword term, in bytes.
pub const MAX_TERM_BYTES: usize = 256;
/// Most terms in one engine (all keyword lists and dictionaries together).
pub const MAX_TERMS: usize = 2_000_000;

/// Builds an [`Engine`]: the built-in detectors plus rules files and dictionary files.
///
/// ```
/// use ping32dlp::Engine;
/// let engine = Engine::builder()
///     .rules_str("[[keywords]]\nid = \"codenames\"\nterms = [\"Project Falcon\"]\n")
///     .build()
///     .unwrap();
/// assert!(engine.detector("codenames").is_some());
/// ```
#[derive(Debug, Default)]
pub struct EngineBuilder {
    docs: Vec<(Option<PathBuf>, String)>,
    dictionaries: Vec<PathBuf>,
    no_builtins: bool,
}

struct Pending {
    info: DetectorInfo,
    positive: Vec<String>,
    negative: Vec<String>,
    /// Keyword lists: (term, confidence).
    terms: Vec<(String, Confidence)>,
    regex: Option<String>,
}

impl EngineBuilder {
    /// The built-in detectors only.
    pub fn new() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Adds a rules file. The file is read now; its errors come from [`build`](Self::build).
    pub fn rules_file(mut self, path: impl AsRef<Path>) -> Result<EngineBuilder, RuleError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| RuleError {
            document: "rules",
            file: Some(path.to_path_buf()),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read rules file: {e}"),
        })?;
        self.docs.push((Some(path.to_path_buf()), text));
        Ok(self)
    }

    /// Adds rules given as a TOML string.
    pub fn rules_str(mut self, text: &str) -> EngineBuilder {
        self.docs.push((None, text.to_string()));
        self
    }

    /// Adds a dictionary file (one term per line) as detector `dictionary:<file stem>`.
    pub fn dictionary_file(mut self, path: impl AsRef<Path>) -> EngineBuilder {
        self.dictionaries.push(path.as_ref().to_path_buf());
        self
    }

    /// Leaves out every built-in detector (a rules file can still enable some with `[builtin.x]`
    /// `enabled = true`). For measuring user rules on their own.
    pub fn without_builtins(mut self) -> EngineBuilder {
        self.no_builtins = true;
        self
    }

    /// Compiles everything. Errors name the file, line and field.
    pub fn build(self) -> Result<Engine, RuleError> {
        let builtin_src = Source {
            file: Some(Path::new("<builtin.toml>")),
            text: BUILTIN_RULES,
        };
        let builtin_doc = parse_doc(&builtin_src)?;
        let mut window = int_field(
            &builtin_src,
            &builtin_doc.settings.context_window,
            "settings.context_window",
            0,
            1000,
        )?
        .unwrap_or(300);
        let mut neg_window = int_field(
            &builtin_src,
            &builtin_doc.settings.negative_window,
            "settings.negative_window",
            0,
            1000,
        )?
        .unwrap_or(24);
        let mut min_conf = Confidence::Low;
        let mut report_test_values = true;

        // Settings first: they are the defaults every detector starts from.
        let user: Vec<(Option<PathBuf>, String, RulesDoc)> = self
            .docs
            .into_iter()
            .map(|(file, text)| {
                let doc = parse_doc(&Source {
                    file: file.as_deref(),
                    text: &text,
                })?;
                Ok((file, text, doc))
            })
            .collect::<Result<_, RuleError>>()?;
        let mut all_builtins_off = self.no_builtins;
        for (file, text, doc) in &user {
            let src = Source {
                file: file.as_deref(),
                text,
            };
            if let Some(w) = int_field(
                &src,
                &doc.settings.context_window,
                "settings.context_window",
                0,
                1000,
            )? {
                window = w;
            }
            if let Some(w) = int_field(
                &src,
                &doc.settings.negative_window,
                "settings.negative_window",
                0,
                1000,
            )? {
                neg_window = w;
            }
            if let Some(c) = confidence_field(
                &src,
                &doc.settings.min_confidence,
                "settings.min_confidence",
            )? {
                min_conf = c;
            }
            if let Some(t) = doc.settings.report_test_values {
                report_test_values = t;
            }
            if doc.builtins == Some(false) {
                all_builtins_off = true;
            }
        }

        // Built-ins.
        let mut pending: Vec<Pending> = Vec::new();
        for (i, def) in builtin_doc.detector.iter().enumerate() {
            let p = builtin_pending(
                &builtin_src,
                def,
                i,
                window,
                neg_window,
                min_conf,
                all_builtins_off,
            )?;
            pending.push(p);
        }
        // Overrides, then user detectors.
        for (file, text, doc) in &user {
            let src = Source {
                file: file.as_deref(),
                text,
            };
            for (id, ov) in &doc.builtin {
                let field = format!("builtin.{id}");
                let Some(p) = pending
                    .iter_mut()
                    .find(|p| p.info.builtin && &p.info.id == id)
                else {
                    return Err(src.error(
                        Some(ov.span()),
                        &field,
                        format!("no built-in detector is called `{id}`"),
                    ));
                };
                let table_span = Some(ov.span());
                let ov = ov.get_ref();
                if let Some(e) = ov.enabled {
                    p.info.params.min_count = if e { p.info.params.min_count.max(1) } else { 0 };
                }
                if let Some(c) =
                    confidence_field(&src, &ov.confidence, &format!("{field}.confidence"))?
                {
                    p.info.params.fixed_confidence = Some(c);
                }
                if let Some(c) =
                    confidence_field(&src, &ov.min_confidence, &format!("{field}.min_confidence"))?
                {
                    p.info.params.min_confidence = c;
                }
                if let Some(n) = int_field(
                    &src,
                    &ov.min_count,
                    &format!("{field}.min_count"),
                    1,
                    100_000,
                )? {
                    p.info.params.min_count = n;
                }
                if let Some(w) = int_field(
                    &src,
                    &ov.context_window,
                    &format!("{field}.context_window"),
                    0,
                    1000,
                )? {
                    p.info.params.context_window = w;
                }
                if let Some(r) = ov.context_required {
                    p.info.params.context_required = r;
                }
                if let Some(m) = mask_field(&src, &ov.mask, &format!("{field}.mask"))? {
                    p.info.params.mask = m;
                }
                check_words(
                    &src,
                    &ov.context,
                    &format!("{field}.context"),
                    table_span.clone(),
                )?;
                check_words(
                    &src,
                    &ov.negative_context,
                    &format!("{field}.negative_context"),
                    table_span.clone(),
                )?;
                p.positive.extend(ov.context.iter().cloned());
                p.negative.extend(ov.negative_context.iter().cloned());
            }
            for (i, def) in doc.detector.iter().enumerate() {
                pending.push(user_regex(&src, def, i, window, neg_window, min_conf)?);
            }
            for (i, kw) in doc.keywords.iter().enumerate() {
                let field = format!("keywords[{i}]");
                check_id(&src, &kw.id, &format!("{field}.id"))?;
                let conf = confidence_field(&src, &kw.confidence, &format!("{field}.confidence"))?
                    .unwrap_or(Confidence::High);
                if kw.terms.get_ref().is_empty() {
                    return Err(src.error(
                        Some(kw.terms.span()),
                        &format!("{field}.terms"),
                        "a keyword list needs at least one term",
                    ));
                }
                let mut terms = Vec::new();
                for t in kw.terms.get_ref() {
                    check_term(t).map_err(|m| {
                        src.error(Some(kw.terms.span()), &format!("{field}.terms"), m)
                    })?;
                    for v in term_variants(t) {
                        terms.push((v, conf));
                    }
                }
                check_words(
                    &src,
                    &kw.context,
                    &format!("{field}.context"),
                    Some(kw.id.span()),
                )?;
                check_words(
                    &src,
                    &kw.negative_context,
                    &format!("{field}.negative_context"),
                    Some(kw.id.span()),
                )?;
                pending.push(Pending {
                    info: DetectorInfo {
                        id: kw.id.get_ref().clone(),
                        name_en: kw
                            .name_en
                            .clone()
                            .unwrap_or_else(|| kw.id.get_ref().clone()),
                        name_ja: kw
                            .name_ja
                            .clone()
                            .unwrap_or_else(|| kw.id.get_ref().clone()),
                        description: String::new(),
                        kind: DetectorKind::Keywords,
                        builtin: false,
                        params: DetParams {
                            context_window: int_field(
                                &src,
                                &kw.context_window,
                                &format!("{field}.context_window"),
                                0,
                                1000,
                            )?
                            .unwrap_or(window),
                            negative_window: neg_window,
                            context_required: false,
                            min_count: int_field(
                                &src,
                                &kw.min_count,
                                &format!("{field}.min_count"),
                                1,
                                100_000,
                            )?
                            .unwrap_or(1),
                            min_confidence: confidence_field(
                                &src,
                                &kw.min_confidence,
                                &format!("{field}.min_confidence"),
                            )?
                            .unwrap_or(min_conf),
                            fixed_confidence: None,
                            base_confidence: conf,
                            mask: mask_field(&src, &kw.mask, &format!("{field}.mask"))?
                                .unwrap_or(MaskStyle::None),
                            validator: None,
                            case_sensitive: kw.case_sensitive,
                        },
                    },
                    positive: kw.context.clone(),
                    negative: kw.negative_context.clone(),
                    terms,
                    regex: None,
                });
            }
            for (i, d) in doc.dictionary.iter().enumerate() {
                let field = format!("dictionary[{i}]");
                check_id(&src, &d.id, &format!("{field}.id"))?;
                let base = file
                    .as_deref()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new("."));
                let path = base.join(d.path.get_ref());
                let conf = confidence_field(&src, &d.confidence, &format!("{field}.confidence"))?
                    .unwrap_or(Confidence::High);
                let terms = read_dictionary(&path)
                    .map_err(|e| {
                        src.error(Some(d.path.span()), &format!("{field}.path"), e.to_string())
                    })?
                    .into_iter()
                    .map(|t| (t, conf))
                    .collect();
                pending.push(Pending {
                    info: DetectorInfo {
                        id: d.id.get_ref().clone(),
                        name_en: d.name_en.clone().unwrap_or_else(|| d.id.get_ref().clone()),
                        name_ja: d.name_ja.clone().unwrap_or_else(|| d.id.get_ref().clone()),
                        description: format!("dictionary {}", path.display()),
                        kind: DetectorKind::Dictionary,
                        builtin: false,
                        params: DetParams {
                            context_window: window,
                            negative_window: neg_window,
                            context_required: false,
                            min_count: int_field(
                                &src,
                                &d.min_count,
                                &format!("{field}.min_count"),
                                1,
                                100_000,
                            )?
                            .unwrap_or(1),
                            min_confidence: confidence_field(
                                &src,
                                &d.min_confidence,
                                &format!("{field}.min_confidence"),
                            )?
                            .unwrap_or(min_conf),
                            fixed_confidence: None,
                            base_confidence: conf,
                            mask: mask_field(&src, &d.mask, &format!("{field}.mask"))?
                                .unwrap_or(MaskStyle::First1),
                            validator: None,
                            case_sensitive: d.case_sensitive,
                        },
                    },
                    positive: Vec::new(),
                    negative: Vec::new(),
                    terms,
                    regex: None,
                });
            }
        }
        for path in &self.dictionaries {
            let terms = read_dictionary(path)?;
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("dictionary");
            let id: String = stem
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            pending.push(Pending {
                info: DetectorInfo {
                    id: format!("dictionary:{id}"),
                    name_en: format!("Dictionary {stem}"),
                    name_ja: format!("辞書 {stem}"),
                    description: format!("dictionary {}", path.display()),
                    kind: DetectorKind::Dictionary,
                    builtin: false,
                    params: DetParams {
                        context_window: window,
                        negative_window: neg_window,
                        context_required: false,
                        min_count: 1,
                        min_confidence: min_conf,
                        fixed_confidence: None,
                        base_confidence: Confidence::High,
                        mask: MaskStyle::First1,
                        validator: None,
                        case_sensitive: false,
                    },
                },
                positive: Vec::new(),
                negative: Vec::new(),
                terms: terms.into_iter().map(|t| (t, Confidence::High)).collect(),
                regex: None,
            });
        }
        assemble(pending, report_test_values)
    }
}

fn check_term(t: &str) -> Result<(), String> {
    let t = t.trim();
    if t.chars().count() < 2 && t.is_ascii() {
        return Err(format!(
            "term `{t}` is too short: ASCII terms need at least 2 characters"
        ));
    }
    if t.is_empty() {
        return Err("empty term".into());
    }
    if t.len() > MAX_TERM_BYTES {
        return Err(format!("term is longer than {MAX_TERM_BYTES} bytes"));
    }
    Ok(())
}

fn check_words(
    src: &Source<'_>,
    words: &[String],
    field: &str,
    span: Option<std::ops::Range<usize>>,
) -> Result<(), RuleError> {
    for w in words {
        if w.trim().is_empty() || w.len() > MAX_TERM_BYTES {
            return Err(src.error(
                span.clone(),
                field,
                format!("context word `{w}` must be 1 to {MAX_TERM_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// A keyword and its width variants: `ＡＢＣ` also matches `ABC` and the other way round, and
/// katakana also in half-width forms (`ﾌｧﾙｺﾝ` for `ファルコン`).
fn term_variants(t: &str) -> Vec<String> {
    let t = t.trim().to_string();
    let folded = fold_str(&t);
    let wide: String = folded
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() {
                char::from_u32(c as u32 + 0xFEE0).unwrap_or(c)
            } else {
                c
            }
        })
        .collect();
    let half = half_width_katakana(&folded);
    let mut v = vec![t];
    for x in [Some(folded), Some(wide), half].into_iter().flatten() {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v
}

#[allow(clippy::too_many_arguments)]
fn builtin_pending(
    src: &Source<'_>,
    def: &DetectorDef,
    i: usize,
    window: usize,
    neg_window: usize,
    min_conf: Confidence,
    off: bool,
) -> Result<Pending, RuleError> {
    let field = format!("detector[{i}]");
    let kind_name = def
        .kind
        .as_ref()
        .map(|k| k.get_ref().as_str())
        .unwrap_or("");
    let kind = if kind_name == "keywords" {
        DetectorKind::Keywords
    } else {
        DetectorKind::Builtin(BuiltinKind::from_name(kind_name).ok_or_else(|| {
            src.error(
                def.kind.as_ref().map(|k| k.span()),
                &format!("{field}.kind"),
                format!("unknown built-in kind `{kind_name}`"),
            )
        })?)
    };
    let conf = confidence_field(src, &def.confidence, &format!("{field}.confidence"))?
        .unwrap_or(Confidence::Medium);
    let mut terms: Vec<(String, Confidence)> =
        def.terms.iter().map(|t| (t.clone(), conf)).collect();
    terms.extend(def.low_terms.iter().map(|t| (t.clone(), Confidence::Low)));
    let enabled = def.enabled.unwrap_or(true) && !off;
    Ok(Pending {
        info: DetectorInfo {
            id: def.id.get_ref().clone(),
            name_en: def.name_en.clone().unwrap_or_default(),
            name_ja: def.name_ja.clone().unwrap_or_default(),
            description: def.description.clone().unwrap_or_default(),
            kind,
            builtin: true,
            params: DetParams {
                context_window: int_field(
                    src,
                    &def.context_window,
                    &format!("{field}.context_window"),
                    0,
                    1000,
                )?
                .unwrap_or(window),
                negative_window: neg_window,
                context_required: def.context_required.unwrap_or(false),
                // min_count 0 marks a disabled detector until assemble() drops it.
                min_count: if enabled { 1 } else { 0 },
                min_confidence: min_conf,
                fixed_confidence: None,
                base_confidence: conf,
                mask: mask_field(src, &def.mask, &format!("{field}.mask"))?
                    .unwrap_or(MaskStyle::Last4),
                validator: None,
                case_sensitive: def.case_sensitive,
            },
        },
        positive: def.context.clone(),
        negative: def.negative_context.clone(),
        terms,
        regex: None,
    })
}

fn user_regex(
    src: &Source<'_>,
    def: &DetectorDef,
    i: usize,
    window: usize,
    neg_window: usize,
    min_conf: Confidence,
) -> Result<Pending, RuleError> {
    let field = format!("detector[{i}]");
    check_id(src, &def.id, &format!("{field}.id"))?;
    if def.kind.is_some() {
        return Err(src.error(
            def.kind.as_ref().map(|k| k.span()),
            &format!("{field}.kind"),
            "`kind` is for built-in detectors; a user detector has a `regex` (use [builtin.<id>] to retune a built-in)",
        ));
    }
    let Some(re) = &def.regex else {
        return Err(src.error(
            Some(def.id.span()),
            &format!("{field}.regex"),
            "a detector needs a `regex`",
        ));
    };
    let compiled = Regex::new(re.get_ref()).map_err(|e| {
        // regex-syntax draws the pattern with a caret on several lines; keep its last line.
        let msg = e
            .syntax_error()
            .map_or_else(|| e.to_string(), ToString::to_string);
        let last = msg
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(&msg)
            .trim();
        let last = last.strip_prefix("error: ").unwrap_or(last);
        src.error(
            Some(re.span()),
            &format!("{field}.regex"),
            format!("invalid regex: {last}"),
        )
    })?;
    if compiled.search(&Input::new("")).is_some() {
        return Err(src.error(
            Some(re.span()),
            &format!("{field}.regex"),
            "the regex matches the empty string",
        ));
    }
    let validator = match &def.validator {
        None => None,
        Some(v) => Some(Validator::parse(v.get_ref()).ok_or_else(|| {
            src.error(
                Some(v.span()),
                &format!("{field}.validator"),
                format!(
                    "unknown validator `{}`: use luhn, my_number, corporate_number or iban",
                    v.get_ref()
                ),
            )
        })?),
    };
    check_words(
        src,
        &def.context,
        &format!("{field}.context"),
        Some(def.id.span()),
    )?;
    check_words(
        src,
        &def.negative_context,
        &format!("{field}.negative_context"),
        Some(def.id.span()),
    )?;
    let conf = confidence_field(src, &def.confidence, &format!("{field}.confidence"))?
        .unwrap_or(Confidence::Medium);
    Ok(Pending {
        info: DetectorInfo {
            id: def.id.get_ref().clone(),
            name_en: def
                .name_en
                .clone()
                .unwrap_or_else(|| def.id.get_ref().clone()),
            name_ja: def
                .name_ja
                .clone()
                .unwrap_or_else(|| def.id.get_ref().clone()),
            description: def.description.clone().unwrap_or_default(),
            kind: DetectorKind::Regex,
            builtin: false,
            params: DetParams {
                context_window: int_field(
                    src,
                    &def.context_window,
                    &format!("{field}.context_window"),
                    0,
                    1000,
                )?
                .unwrap_or(window),
                negative_window: neg_window,
                context_required: def.context_required.unwrap_or(false),
                min_count: int_field(
                    src,
                    &def.min_count,
                    &format!("{field}.min_count"),
                    1,
                    100_000,
                )?
                .unwrap_or(1),
                min_confidence: confidence_field(
                    src,
                    &def.min_confidence,
                    &format!("{field}.min_confidence"),
                )?
                .unwrap_or(min_conf),
                fixed_confidence: None,
                base_confidence: conf,
                mask: mask_field(src, &def.mask, &format!("{field}.mask"))?
                    .unwrap_or(MaskStyle::Last4),
                validator,
                case_sensitive: true,
            },
        },
        positive: def.context.clone(),
        negative: def.negative_context.clone(),
        terms: Vec::new(),
        regex: Some(re.get_ref().clone()),
    })
}

/// One line of an error chain.
fn flatten(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s.replace('\n', " ")
}

/// Reads a dictionary file: UTF-8 (with or without BOM), UTF-16 with BOM, or a legacy Japanese
/// encoding guessed by chardetng. One term per line; blank lines and lines starting with `#` are
/// skipped.
pub(crate) fn read_dictionary(path: &Path) -> Result<Vec<String>, RuleError> {
    let err = |line: usize, msg: String| RuleError {
        document: "rules",
        file: Some(path.to_path_buf()),
        line,
        column: if line > 0 { 1 } else { 0 },
        field: String::new(),
        message: msg,
    };
    let bytes = std::fs::read(path).map_err(|e| err(0, format!("cannot read dictionary: {e}")))?;
    let text = crate::text::decode_text(&bytes).text;
    let mut terms = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}');
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        check_term(t).map_err(|m| err(n + 1, m))?;
        terms.push(t.to_string());
        if terms.len() > MAX_TERMS {
            return Err(err(n + 1, format!("more than {MAX_TERMS} terms")));
        }
    }
    Ok(terms)
}

/// The widest context window and the widest negative window of any detector, in characters.
pub(crate) fn widest_windows(detectors: &[DetectorInfo]) -> (usize, usize) {
    let max_window = detectors
        .iter()
        .map(|d| d.params.context_window.max(d.params.negative_window))
        .max()
        .unwrap_or(0);
    let max_negative_window = detectors
        .iter()
        .map(|d| d.params.negative_window)
        .max()
        .unwrap_or(0);
    (max_window, max_negative_window)
}

fn assemble(pending: Vec<Pending>, report_test_values: bool) -> Result<Engine, RuleError> {
    let mut seen = HashMap::new();
    let mut detectors = Vec::new();
    let mut builtin = [None; BuiltinKind::ALL.len()];
    let mut context_pairs = Vec::new();
    let mut term_index: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut literal_terms: Vec<Box<[u8]>> = Vec::new();
    let mut term_actions: Vec<Vec<TermAction>> = Vec::new();
    let mut regexes: Vec<String> = Vec::new();
    let mut regex_dets: Vec<DetId> = Vec::new();
    // Keys are always ASCII-case-folded: case-insensitive terms and the AWS labels need it, and a
    // case-sensitive term is compared byte for byte when found.
    let fold = true;
    for p in pending {
        if p.info.params.min_count == 0 {
            continue; // disabled
        }
        if seen.insert(p.info.id.clone(), ()).is_some() {
            return Err(RuleError {
                document: "rules",
                file: None,
                line: 0,
                column: 0,
                field: "id".into(),
                message: format!("detector id `{}` is defined twice", p.info.id),
            });
        }
        let det = detectors.len() as DetId;
        if let DetectorKind::Builtin(k) = p.info.kind {
            builtin[k.index()] = Some(det);
        }
        // Context words also in half-width katakana (`ｹｲﾀｲ` for `ケイタイ`).
        for (words, negative) in [(&p.positive, false), (&p.negative, true)] {
            for w in words {
                let role = WordRole { det, negative };
                if let Some(half) = half_width_katakana(w) {
                    context_pairs.push((half, role));
                }
                context_pairs.push((w.clone(), role));
            }
        }
        for (t, conf) in &p.terms {
            let key = if fold {
                t.to_ascii_lowercase().into_bytes()
            } else {
                t.clone().into_bytes()
            };
            let idx = *term_index.entry(key).or_insert_with(|| {
                literal_terms.push(t.as_bytes().into());
                term_actions.push(Vec::new());
                (literal_terms.len() - 1) as u32
            });
            let exact = p
                .info
                .params
                .case_sensitive
                .then(|| Box::<[u8]>::from(t.as_bytes()));
            term_actions[idx as usize].push(TermAction::Report {
                det,
                confidence: *conf,
                exact,
            });
        }
        if let Some(re) = &p.regex {
            regexes.push(re.clone());
            regex_dets.push(det);
        }
        detectors.push(p.info);
    }
    // Labels that announce an AWS secret access key.
    if builtin[BuiltinKind::AwsSecretAccessKey.index()].is_some() {
        for label in [
            "aws_secret_access_key",
            "secret_access_key",
            "SecretAccessKey",
            "aws_secret_key",
            "AWS Secret Access Key",
            "シークレットアクセスキー",
        ] {
            let key = if fold {
                label.to_ascii_lowercase().into_bytes()
            } else {
                label.as_bytes().to_vec()
            };
            let idx = *term_index.entry(key).or_insert_with(|| {
                literal_terms.push(label.as_bytes().into());
                term_actions.push(Vec::new());
                (literal_terms.len() - 1) as u32
            });
            term_actions[idx as usize].push(TermAction::AwsSecretLabel);
        }
    }
    let literals = if literal_terms.is_empty() {
        None
    } else {
        let refs: Vec<&[u8]> = literal_terms.iter().map(|t| t.as_ref()).collect();
        Some(LiteralMatcher::new(&refs, fold).map_err(|m| RuleError {
            document: "rules",
            file: None,
            line: 0,
            column: 0,
            field: "terms".into(),
            message: format!("cannot compile keyword and dictionary terms: {m}"),
        })?)
    };
    let context = ContextWords::new(context_pairs).map_err(|m| RuleError {
        document: "rules",
        file: None,
        line: 0,
        column: 0,
        field: "context".into(),
        message: format!("cannot compile context words: {m}"),
    })?;
    let regex = if regexes.is_empty() {
        None
    } else {
        // One regex per detector, so that one pattern never shadows another's match.
        let compiled = regexes
            .iter()
            .map(|r| Regex::new(r).map_err(Box::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RuleError {
                document: "rules",
                file: None,
                line: 0,
                column: 0,
                field: "detector.regex".into(),
                message: format!("cannot compile a regex detector: {}", flatten(&e)),
            })?;
        Some((compiled, regex_dets))
    };
    let regex_patterns = regexes;
    let (max_window, max_negative_window) = widest_windows(&detectors);
    let phone_labels = Engine::compile_phone_labels(&context, &builtin);
    Ok(Engine {
        phone_labels,
        max_negative_window,
        detectors,
        builtin,
        literals,
        literal_terms,
        term_actions,
        context,
        regex,
        regex_patterns,
        max_window,
        report_test_values,
    })
}
