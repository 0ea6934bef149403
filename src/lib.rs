//! # libping32dlp
//!
//! A data-loss-prevention inspection engine for outbound email: it finds what must not leave the
//! company (Japanese My Numbers, corporate numbers, bank accounts, card numbers, secrets,
//! confidentiality markings, your own keywords and dictionaries) in text, fast and explainably.
//!
//! ## Which API do I want?
//!
//! * Scan text with the built-in detectors: [`Engine::builtin`], then a [`Scanner`]
//!   ([`Scanner::scan_str`], example below).
//! * Inspect a whole mail (headers, bodies, attachments, archives, nested mails):
//!   [`Scanner::inspect_message`] gives a [`Report`]; a mail that arrives in pieces:
//!   [`spool::MessageSpool`] and [`Scanner::inspect_spooled`].
//! * Inspect one file (Office, PDF, spreadsheet, zip, text in any Japanese encoding):
//!   [`Scanner::inspect_file`].
//! * Judge a report with a policy, without any database: [`policy::Facts::from_report`] and
//!   [`policy::Policy::evaluate`] with [`policy::NoHistory`]. With the audit trail, approvals
//!   and history (SQLite or PostgreSQL): [`workflow::Workflow`].
//! * Add your rules (regex detectors, keyword lists, dictionary files, retuned built-ins):
//!   [`Engine::builder`] with a TOML rules file ([`EngineBuilder::rules_file`]); save the
//!   compiled engine and load it at the next start: [`Engine::to_bytes`], [`Engine::from_bytes`].
//! * Decode text of unknown encoding (Shift_JIS, EUC-JP, ISO-2022-JP, UTF-16): [`text`].
//! * Check digits on their own: [`validate`].
//!
//! A mail, inspected and judged by a policy without a database (a policy that blocks My Numbers
//! sent outside; the built-in policy, [`policy::Policy::default_monitor`], only monitors):
//!
//! ```
//! use std::sync::Arc;
//! use ping32dlp::policy::{parse_policy, Action, Context, Facts, NoHistory};
//! use ping32dlp::{Engine, ExtractOptions, Scanner};
//!
//! let raw = "From: ichiro@example.co.jp\r\nTo: buyer@partner.example\r\n\
//!            Subject: =?UTF-8?B?6KaL56mN5pu4?=\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n\
//!            個人番号 1234 5678 9018 の件です。\r\n";
//! let engine = Arc::new(Engine::builtin());
//! let mut scanner = Scanner::new(engine.clone());
//! let report = scanner.inspect_message(raw.as_bytes(), &ExtractOptions::default());
//! assert_eq!(report.message.as_ref().unwrap().subject.as_deref(), Some("見積書"));
//! assert_eq!(report.findings[0].detector, "jp_my_number");
//!
//! let policy = parse_policy(
//!     "[policy]\ninternal_domains = [\"example.co.jp\"]\n\
//!      [[rule]]\nid = \"no-mynumber-out\"\naction = \"block\"\n\
//!      when = { all = [{ recipients = \"any_external\" }, { detector = [\"jp_my_number\"] }] }\n",
//!     None,
//! )
//! .unwrap();
//! policy.check_detectors(&engine).unwrap(); // a typo'd detector name fails here
//! let ctx = Context { channel: "api".into(), ..Context::default() };
//! let verdict = policy.evaluate(&Facts::from_report(&report, &ctx), &NoHistory).unwrap();
//! assert_eq!(verdict.action, Action::Block);
//! assert_eq!(verdict.matched[0].rule, "no-mynumber-out");
//! ```
//!
//! One file (the extension is checked against the content; what cannot be read is reported):
//!
//! ```
//! use std::sync::Arc;
//! use ping32dlp::{Engine, ExtractOptions, Scanner};
//!
//! let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
//! let csv = "氏名,カード番号\n山田太郎,4111-1111-1111-1111\n".as_bytes();
//! let report = scanner.inspect_file("顧客.csv", csv, &ExtractOptions::default());
//! assert_eq!(report.findings[0].detector, "credit_card");
//! assert_eq!(report.findings[0].value_masked, "4111-****-****-1111"); // first 4, last 4
//! let report = scanner.inspect_file("x.zip", b"PK\x03\x04 truncated", &ExtractOptions::default());
//! assert!(!report.unscannable.is_empty()); // never a silent pass
//! ```
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

pub mod benchdata;
pub mod detect;
pub mod extract;
pub mod fuzzing;
pub mod net;
pub mod pipeline;
pub mod policy;
pub mod report;
pub mod rules;
pub mod service;
#[cfg(feature = "simd")]
mod simd;
pub mod spool;
pub mod text;
pub mod timeutil;
pub mod workflow;

pub use detect::{
    validate, BuiltinKind, DetectorInfo, DetectorKind, Engine, EngineBuilder, Evidence,
    EvidenceKind, Finding, ScanResult, Scanner,
};
pub use extract::{ExtractOptions, Limits};
pub use report::{Report, ReportFinding, SharedStr};
pub use rules::{Confidence, MaskStyle, RuleError};
