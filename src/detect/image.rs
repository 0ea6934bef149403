//! A compiled [`Engine`] saved as bytes and loaded again without compiling its terms.
//!
//! An agent with a 100,000-term dictionary builds its engine once (or a build server does), saves
//! it with [`Engine::to_bytes`], and every start loads it with [`Engine::from_bytes`]; like
//! Hyperscan's `hs_serialize_database`, an image is tied to the library version that made it.
//!
//! # Format
//!
//! ```text
//! "PING32DLP-ENGINE"          16 bytes
//! format version              u32, little-endian (FORMAT)
//! library version             u16 length, then UTF-8 (CARGO_PKG_VERSION)
//! body length                 u64, little-endian
//! body                        postcard: detectors, terms, term actions, the literal matcher's
//!                             hashed tiers and tries, context words, regex patterns
//! SHA-256                     32 bytes, of everything before it
//! ```
//!
//! The body is decoded by postcard (no hand-written decoder) and then checked as untrusted input:
//! every index the scan follows is bounded, every list that is walked is acyclic, every setting is
//! in the range a rules file may give it. What is cheap to compile again (regexes, context words,
//! the few terms shorter than 6 bytes) is compiled again; the hashed tiers and tries, which are
//! what a large dictionary costs, are taken as they are.

use std::collections::HashSet;

use regex_automata::meta::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::build::{widest_windows, MAX_TERMS, MAX_TERM_BYTES};
use super::context::{ContextWords, WordRole};
use super::literals::{LiteralMatcher, MatcherIn, MatcherOut};
use super::{BuiltinKind, DetId, DetectorInfo, DetectorKind, Engine, TermAction};

const MAGIC: &[u8; 16] = b"PING32DLP-ENGINE";
/// Bumped whenever the body's layout or meaning changes.
const FORMAT: u32 = 2;
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why bytes could not be loaded as an engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineImageError {
    /// Not an engine image at all (wrong magic, truncated header).
    NotAnEngine,
    /// An engine image of another library version or format: build it again with this one.
    Version {
        /// The version that wrote the image.
        found: String,
        /// This library's version.
        expected: String,
    },
    /// The checksum does not match, or the body is inconsistent: the file was damaged.
    Damaged(String),
}

impl std::fmt::Display for EngineImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineImageError::NotAnEngine => {
                f.write_str("not a libping32dlp engine image (no PING32DLP-ENGINE header)")
            }
            EngineImageError::Version { found, expected } => write!(
                f,
                "engine image written by libping32dlp {found}; this is {expected}: build the \
                 engine again from its rules and dictionaries"
            ),
            EngineImageError::Damaged(why) => write!(f, "engine image damaged: {why}"),
        }
    }
}

impl std::error::Error for EngineImageError {}

#[derive(Serialize)]
struct BodyOut<'a> {
    detectors: &'a [DetectorInfo],
    literal_terms: &'a [Box<[u8]>],
    term_actions: &'a [Vec<TermAction>],
    literals: Option<MatcherOut<'a>>,
    context: Vec<(String, WordRole)>,
    regexes: Vec<(&'a str, DetId)>,
    report_test_values: bool,
}

#[derive(Deserialize)]
struct BodyIn {
    detectors: Vec<DetectorInfo>,
    literal_terms: Vec<Box<[u8]>>,
    term_actions: Vec<Vec<TermAction>>,
    literals: Option<MatcherIn>,
    context: Vec<(String, WordRole)>,
    regexes: Vec<(String, DetId)>,
    report_test_values: bool,
}

fn damaged(why: impl Into<String>) -> EngineImageError {
    EngineImageError::Damaged(why.into())
}

impl Engine {
    /// The compiled engine as bytes, to be loaded again by [`Engine::from_bytes`] of the same
    /// library version (on any machine of the same byte order). Versioned and checksummed.
    ///
    /// ```
    /// use ping32dlp::Engine;
    /// let engine = Engine::builder()
    ///     .rules_str("[[keywords]]\nid = \"codenames\"\nterms = [\"Project Falcon\"]\n")
    ///     .build()
    ///     .unwrap();
    /// let bytes = engine.to_bytes();
    /// let loaded = Engine::from_bytes(&bytes).unwrap();
    /// let mut scanner = ping32dlp::Scanner::new(std::sync::Arc::new(loaded));
    /// let result = scanner.scan_str("re: project falcon budget");
    /// assert_eq!(result.findings[0].detector, "codenames");
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let regexes = self
            .regex
            .as_ref()
            .map(|(_, dets)| {
                self.regex_patterns
                    .iter()
                    .map(String::as_str)
                    .zip(dets.iter().copied())
                    .collect()
            })
            .unwrap_or_default();
        let body = BodyOut {
            detectors: &self.detectors,
            literal_terms: &self.literal_terms,
            term_actions: &self.term_actions,
            literals: self.literals.as_ref().map(LiteralMatcher::image),
            context: self.context.pairs(),
            regexes,
            report_test_values: self.report_test_values,
        };
        let body = postcard::to_allocvec(&body).expect("an engine always serialises");
        let mut out = Vec::with_capacity(body.len() + 96);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&(VERSION.len() as u16).to_le_bytes());
        out.extend_from_slice(VERSION.as_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&body);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Loads an engine saved by [`Engine::to_bytes`]. Refuses images of another library version
    /// or format, damaged ones (checksum), and inconsistent ones, with the reason.
    pub fn from_bytes(bytes: &[u8]) -> Result<Engine, EngineImageError> {
        let rest = bytes
            .strip_prefix(&MAGIC[..])
            .ok_or(EngineImageError::NotAnEngine)?;
        let (format, rest) = take(rest, 4).ok_or(EngineImageError::NotAnEngine)?;
        let format = u32::from_le_bytes(format.try_into().expect("4 bytes"));
        let (vlen, rest) = take(rest, 2).ok_or(EngineImageError::NotAnEngine)?;
        let vlen = u16::from_le_bytes(vlen.try_into().expect("2 bytes"));
        let (version, rest) = take(rest, vlen.into()).ok_or(EngineImageError::NotAnEngine)?;
        let version = String::from_utf8_lossy(version);
        if format != FORMAT || version != VERSION {
            return Err(EngineImageError::Version {
                found: format!("{version} (image format {format})"),
                expected: format!("{VERSION} (image format {FORMAT})"),
            });
        }
        let (blen, rest) = take(rest, 8).ok_or_else(|| damaged("truncated"))?;
        let blen = u64::from_le_bytes(blen.try_into().expect("8 bytes"));
        let blen = usize::try_from(blen).map_err(|_| damaged("body length"))?;
        if rest.len() != blen.checked_add(32).ok_or_else(|| damaged("body length"))? {
            return Err(damaged(format!(
                "{} bytes where the header promises {}",
                bytes.len(),
                bytes.len() - rest.len() + blen + 32
            )));
        }
        let (body, sum) = rest.split_at(blen);
        if Sha256::digest(&bytes[..bytes.len() - 32])[..] != *sum {
            return Err(damaged("checksum mismatch"));
        }
        Engine::from_body(body)
    }

    /// The body after the checksum passed: decoded by postcard, then checked (also the fuzz
    /// entry point, which cannot forge a checksum).
    pub(crate) fn from_body(body: &[u8]) -> Result<Engine, EngineImageError> {
        let b: BodyIn = postcard::from_bytes(body).map_err(|e| damaged(e.to_string()))?;

        // Detectors: unique ids, settings in the ranges rules files allow, each built-in once.
        if b.detectors.len() > usize::from(DetId::MAX) {
            return Err(damaged("too many detectors"));
        }
        let mut ids = HashSet::new();
        let mut builtin = [None; BuiltinKind::ALL.len()];
        for (i, d) in b.detectors.iter().enumerate() {
            let p = &d.params;
            if !ids.insert(d.id.as_str())
                || p.context_window > 1000
                || p.negative_window > 1000
                || !(1..=100_000).contains(&p.min_count)
            {
                return Err(damaged(format!("detector `{}` is inconsistent", d.id)));
            }
            if let DetectorKind::Builtin(k) = d.kind {
                if builtin[k.index()].replace(i as DetId).is_some() {
                    return Err(damaged(format!("built-in `{}` twice", d.id)));
                }
            }
        }
        let det_ok = |det: DetId| usize::from(det) < b.detectors.len();

        // Terms and what each does.
        if b.literal_terms.len() > MAX_TERMS
            || b.term_actions.len() != b.literal_terms.len()
            || b.literal_terms
                .iter()
                .any(|t| t.is_empty() || t.len() > MAX_TERM_BYTES)
        {
            return Err(damaged("term list"));
        }
        let actions_ok = b.term_actions.iter().flatten().all(|a| match a {
            TermAction::Report { det, .. } => det_ok(*det),
            TermAction::AwsSecretLabel => true,
        });
        if !actions_ok {
            return Err(damaged("a term reports to a detector the engine lacks"));
        }
        let refs: Vec<&[u8]> = b.literal_terms.iter().map(|t| t.as_ref()).collect();
        let literals = match (b.literals, refs.is_empty()) {
            (None, true) => None,
            (Some(img), false) => Some(LiteralMatcher::from_image(img, &refs).map_err(damaged)?),
            _ => {
                return Err(damaged(
                    "terms without a matcher, or a matcher without terms",
                ))
            }
        };

        // Context words and regexes: compiled again (small).
        if !b.context.iter().all(|(_, r)| det_ok(r.det)) {
            return Err(damaged("a context word names a detector the engine lacks"));
        }
        let context = ContextWords::new(b.context).map_err(damaged)?;
        let regex = if b.regexes.is_empty() {
            None
        } else {
            let mut compiled = Vec::with_capacity(b.regexes.len());
            let mut dets = Vec::with_capacity(b.regexes.len());
            for (pattern, det) in &b.regexes {
                if !det_ok(*det) {
                    return Err(damaged("a regex names a detector the engine lacks"));
                }
                compiled.push(Regex::new(pattern).map_err(|e| damaged(e.to_string()))?);
                dets.push(*det);
            }
            Some((compiled, dets))
        };
        let (max_window, max_negative_window) = widest_windows(&b.detectors);
        let phone_labels = Engine::compile_phone_labels(&context, &builtin);
        Ok(Engine {
            phone_labels,
            detectors: b.detectors,
            builtin,
            literals,
            literal_terms: b.literal_terms,
            term_actions: b.term_actions,
            context,
            regex,
            regex_patterns: b.regexes.into_iter().map(|(p, _)| p).collect(),
            max_window,
            max_negative_window,
            report_test_values: b.report_test_values,
        })
    }
}

/// The first `n` bytes and the rest, if there are `n`.
fn take(b: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (b.len() >= n).then(|| b.split_at(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scanner;
    use std::sync::Arc;

    const RULES: &str = r#"
[[keywords]]
id = "codenames"
terms = ["Project Falcon", "ファルコン計画", "ID7", "社外秘資料"]
context = ["予算"]

[[detector]]
id = "employee_id"
regex = 'EMP-[0-9]{6}'
"#;

    fn engine() -> Engine {
        let dict: String = (0..5000).map(|i| format!("customer-{i:05}\n")).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("customers.txt");
        std::fs::write(&path, dict).unwrap();
        Engine::builder()
            .rules_str(RULES)
            .dictionary_file(&path)
            .build()
            .unwrap()
    }

    const TEXT: &str = "予算: Project Falcon / ファルコン計画 ID7 社外秘資料 EMP-123456, \
        customer-00042 and CUSTOMER-04999; card 4111 1111 1111 1111, マイナンバー 1234 5678 9018";

    #[test]
    fn a_loaded_engine_finds_what_the_built_one_finds() {
        let built = engine();
        let loaded = Engine::from_bytes(&built.to_bytes()).unwrap();
        assert_eq!(format!("{built:?}"), format!("{loaded:?}"));
        // Saving the loaded engine gives the same bytes.
        assert_eq!(built.to_bytes(), loaded.to_bytes());
        let mut a = Scanner::new(Arc::new(built));
        let mut b = Scanner::new(Arc::new(loaded));
        let a = format!("{:?}", a.scan_str(TEXT).findings);
        let b = format!("{:?}", b.scan_str(TEXT).findings);
        for d in [
            "codenames",
            "employee_id",
            "dictionary:customers",
            "credit_card",
        ] {
            assert!(a.contains(&format!("{d:?}")), "{d} not in {a}");
        }
        assert_eq!(a, b);
    }

    #[test]
    fn damaged_and_foreign_images_are_refused() {
        let bytes = engine().to_bytes();
        assert_eq!(
            Engine::from_bytes(b"hello").unwrap_err(),
            EngineImageError::NotAnEngine
        );
        // Every truncation and a flipped byte anywhere: refused, never a panic.
        for cut in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
            assert!(Engine::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in (0..bytes.len()).step_by(bytes.len() / 101 + 1) {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            assert!(Engine::from_bytes(&b).is_err(), "flip at {at}");
        }
        // Another version: named in the error.
        let mut b = bytes.clone();
        let v = 16 + 4 + 2;
        b[v] = b'9';
        match Engine::from_bytes(&b).unwrap_err() {
            EngineImageError::Version { found, .. } => assert!(found.starts_with('9'), "{found}"),
            e => panic!("{e}"),
        }
    }

    /// Bodies that decode but lie (indices out of range, cycles): the checks refuse them. Each
    /// body is the real one with one byte changed, so postcard often still decodes it.
    #[test]
    fn inconsistent_bodies_are_refused_without_panic() {
        let small = Engine::builder().rules_str(RULES).build().unwrap();
        let bytes = small.to_bytes();
        let start = 16 + 4 + 2 + VERSION.len() + 8;
        let body = &bytes[start..bytes.len() - 32];
        assert!(Engine::from_body(body).is_ok());
        let mut refused = 0;
        for at in (0..body.len()).step_by(body.len() / 400 + 1) {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = body.to_vec();
                if b[at] == v {
                    continue;
                }
                b[at] = v;
                if let Ok(e) = Engine::from_body(&b) {
                    // Whatever loads must scan without panicking.
                    let _ = Scanner::new(Arc::new(e)).scan_str(TEXT).findings.len();
                } else {
                    refused += 1;
                }
            }
        }
        assert!(refused > 0);
    }
}
