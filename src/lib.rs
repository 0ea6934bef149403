//! # libping32dlp
//!
//! A data-loss-prevention inspection engine for outbound email: it finds what must not leave the
//! company (Japanese My Numbers, corporate numbers, bank accounts, card numbers, secrets,
//! confidentiality markings, your own keywords and dictionaries) in text, fast and explainably.
//!
//! ## Which API do I want?
//!
//! * Scan text with the built-in detectors: [`Engine::builtin`], then a [`Scanner`].
//! * Add your rules (regex detectors, keyword lists, dictionary files, retuned built-ins):
//!   [`Engine::builder`] with a TOML rules file ([`EngineBuilder::rules_file`]).
//! * Decode text of unknown encoding (Shift_JIS, EUC-JP, ISO-2022-JP, UTF-16): [`text`].
//! * Check digits on their own: [`validate`].
//!
//! ## Architecture
//!
//! The [`Engine`] is compiled once and is immutable, `Send` and `Sync`: share it in an `Arc`.
//! Each thread makes its own [`Scanner`], which owns scratch memory (a bump arena and a few
//! vectors) reused from scan to scan; a [`ScanResult`] borrows the scanner until its next scan.
//! Detection is one pass over the text to collect candidates (a trigger scan for digits, emails
//! and secrets; a hashed literal filter for markings, keywords and dictionaries; user regexes),
//! then checks, context words within a window (300 characters by default, both directions),
//! overlap resolution and masking. See `DESIGN.md` for the data flow, limits and threat model.
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use ping32dlp::{Confidence, Engine, Scanner};
//!
//! let engine = Arc::new(Engine::builtin());
//! let mut scanner = Scanner::new(engine.clone());
//! let result = scanner.scan_str("お客様の個人番号は１２３４ ５６７８ ９０１８です。");
//! let f = &result.findings[0];
//! assert_eq!(f.detector, "jp_my_number");
//! assert_eq!(f.confidence, Confidence::High);
//! assert_eq!(f.value_masked, "**** **** ９０１８");
//! // Raw values are there for callers that need them, but reports use `value_masked`.
//! assert_eq!(f.normalized, "123456789018");
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod detect;
pub mod extract;
pub mod fuzzing;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod rules;
pub mod service;
#[cfg(feature = "simd")]
mod simd;
pub mod text;
pub mod timeutil;
pub mod workflow;

pub use detect::{
    validate, BuiltinKind, DetectorInfo, DetectorKind, Engine, EngineBuilder, Evidence,
    EvidenceKind, Finding, ScanResult, Scanner,
};
pub use extract::{ExtractOptions, Limits};
pub use report::{Report, ReportFinding};
pub use rules::{Confidence, MaskStyle, RuleError};
