//! The detection engine: built-in and user detectors compiled once into an immutable [`Engine`],
//! run by per-thread [`Scanner`]s.
//!
//! # Data flow of one scan
//!
//! ```text
//! text ──► trigger scan (digits, 0xEF, @, A, _, x, /, -) ──► digit tokenizer, email, secrets ─┐
//!      ──► literal filter (markings, keywords, dictionaries) ──► anchored verification ──────┤
//!      ──► user regexes (on width-folded text, offsets mapped back) ─────────────────────────┤
//!                                                                                           ▼
//!                      candidates ──► context words (lazy, ±window) ──► confidence ──► overlaps
//!                                 ──► min count / min confidence ──► findings (masked, in the arena)
//! ```
//!
//! Module map: `digits` (numeric detectors), `secrets` (email and secrets), `literals` (keyword
//! and dictionary matcher), `context` (context words), `validate` (check digits), `normalize`
//! (width folding and offset maps), `mask`, `trigger` (skipping to the next interesting byte),
//! `build` (rules to engine), `scan` (the scanner and the pipeline above).

mod build;
mod context;
mod digits;
mod image;
pub(crate) mod literals;
mod mask;
pub mod normalize;
mod scan;
mod secrets;
mod table;
mod trigger;
pub mod validate;

pub use build::EngineBuilder;
pub use image::EngineImageError;
pub use mask::mask as mask_value;
#[doc(hidden)]
pub use scan::Stage;
pub(crate) use scan::{count_key, key_det};
pub use scan::{DetectorCount, Evidence, EvidenceKind, Finding, ScanResult, Scanner};
pub use table::GridCell;
#[cfg(all(test, feature = "simd"))]
pub(crate) use trigger::{
    classify_scalar as classify_trigger_scalar, is_trigger as is_trigger_byte,
};

use crate::rules::{Confidence, MaskStyle};

/// Index of a detector in the engine.
pub(crate) type DetId = u16;

/// The matcher behind a built-in detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BuiltinKind {
    /// `credit_card`
    CreditCard,
    /// `jp_my_number`
    JpMyNumber,
    /// `jp_corporate_number`
    JpCorporateNumber,
    /// `jp_bank_account`
    JpBankAccount,
    /// `jp_drivers_license`
    JpDriversLicense,
    /// `jp_passport`
    JpPassport,
    /// `jp_residence_card`
    JpResidenceCard,
    /// `jp_basic_pension_number`
    JpBasicPensionNumber,
    /// `jp_phone`
    JpPhone,
    /// `phone`
    Phone,
    /// `email_address`
    EmailAddress,
    /// `iban`
    Iban,
    /// `us_ssn`
    UsSsn,
    /// `aws_access_key_id`
    AwsAccessKeyId,
    /// `aws_secret_access_key`
    AwsSecretAccessKey,
    /// `github_token`
    GithubToken,
    /// `slack_token`
    SlackToken,
    /// `google_api_key`
    GoogleApiKey,
    /// `stripe_secret_key`
    StripeSecretKey,
    /// `private_key`
    PrivateKey,
}

impl BuiltinKind {
    /// Every built-in matcher, in a fixed order.
    pub const ALL: [BuiltinKind; 20] = [
        BuiltinKind::CreditCard,
        BuiltinKind::JpMyNumber,
        BuiltinKind::JpCorporateNumber,
        BuiltinKind::JpBankAccount,
        BuiltinKind::JpDriversLicense,
        BuiltinKind::JpPassport,
        BuiltinKind::JpResidenceCard,
        BuiltinKind::JpBasicPensionNumber,
        BuiltinKind::JpPhone,
        BuiltinKind::Phone,
        BuiltinKind::EmailAddress,
        BuiltinKind::Iban,
        BuiltinKind::UsSsn,
        BuiltinKind::AwsAccessKeyId,
        BuiltinKind::AwsSecretAccessKey,
        BuiltinKind::GithubToken,
        BuiltinKind::SlackToken,
        BuiltinKind::GoogleApiKey,
        BuiltinKind::StripeSecretKey,
        BuiltinKind::PrivateKey,
    ];

    /// The `kind` name used in `builtin.toml`.
    pub fn name(self) -> &'static str {
        match self {
            BuiltinKind::CreditCard => "credit_card",
            BuiltinKind::JpMyNumber => "jp_my_number",
            BuiltinKind::JpCorporateNumber => "jp_corporate_number",
            BuiltinKind::JpBankAccount => "jp_bank_account",
            BuiltinKind::JpDriversLicense => "jp_drivers_license",
            BuiltinKind::JpPassport => "jp_passport",
            BuiltinKind::JpResidenceCard => "jp_residence_card",
            BuiltinKind::JpBasicPensionNumber => "jp_basic_pension_number",
            BuiltinKind::JpPhone => "jp_phone",
            BuiltinKind::Phone => "phone",
            BuiltinKind::EmailAddress => "email_address",
            BuiltinKind::Iban => "iban",
            BuiltinKind::UsSsn => "us_ssn",
            BuiltinKind::AwsAccessKeyId => "aws_access_key_id",
            BuiltinKind::AwsSecretAccessKey => "aws_secret_access_key",
            BuiltinKind::GithubToken => "github_token",
            BuiltinKind::SlackToken => "slack_token",
            BuiltinKind::GoogleApiKey => "google_api_key",
            BuiltinKind::StripeSecretKey => "stripe_secret_key",
            BuiltinKind::PrivateKey => "private_key",
        }
    }

    fn from_name(s: &str) -> Option<BuiltinKind> {
        BuiltinKind::ALL.iter().copied().find(|k| k.name() == s)
    }

    fn index(self) -> usize {
        BuiltinKind::ALL
            .iter()
            .position(|&k| k == self)
            .unwrap_or(0)
    }
}

/// What kind of matcher a detector uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DetectorKind {
    /// A hand-written built-in matcher.
    Builtin(BuiltinKind),
    /// A keyword list (built-in markings or a user's `[[keywords]]`).
    Keywords,
    /// A dictionary file.
    Dictionary,
    /// A user regex.
    Regex,
}

/// A check a user regex detector can apply to its match (digits and letters only, folded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Validator {
    /// Luhn over the digits.
    Luhn,
    /// The My Number check digit over 12 digits.
    MyNumber,
    /// The corporate number check digit over 13 digits.
    CorporateNumber,
    /// ISO 7064 mod 97 over an IBAN.
    Iban,
}

impl Validator {
    fn parse(s: &str) -> Option<Validator> {
        match s {
            "luhn" => Some(Validator::Luhn),
            "my_number" => Some(Validator::MyNumber),
            "corporate_number" => Some(Validator::CorporateNumber),
            "iban" => Some(Validator::Iban),
            _ => None,
        }
    }

    fn check(self, canon: &[u8]) -> bool {
        match self {
            Validator::Luhn => validate::luhn(canon),
            Validator::MyNumber => validate::my_number(canon),
            Validator::CorporateNumber => {
                let d = canon.strip_prefix(b"T").unwrap_or(canon);
                validate::corporate_number(d)
            }
            Validator::Iban => validate::iban(canon),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Validator::Luhn => "luhn",
            Validator::MyNumber => "my_number_check_digit",
            Validator::CorporateNumber => "corporate_number_check_digit",
            Validator::Iban => "iban_mod97",
        }
    }
}

/// A detector as compiled into the engine.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DetectorInfo {
    /// Stable id, e.g. `jp_my_number`, `dictionary:customers`.
    pub id: String,
    /// English name.
    pub name_en: String,
    /// Japanese name.
    pub name_ja: String,
    /// One-line description.
    pub description: String,
    /// The matcher behind it.
    pub kind: DetectorKind,
    /// True for detectors compiled into the library.
    pub builtin: bool,
    pub(crate) params: DetParams,
}

/// Tunables of one detector (defaults from `builtin.toml` and `[settings]`, overrides from rules).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct DetParams {
    pub context_window: usize,
    pub negative_window: usize,
    pub context_required: bool,
    pub min_count: usize,
    pub min_confidence: Confidence,
    pub fixed_confidence: Option<Confidence>,
    pub base_confidence: Confidence,
    pub mask: MaskStyle,
    pub validator: Option<Validator>,
    pub case_sensitive: bool,
}

/// The compiled rule set: immutable, `Send + Sync`, built once and shared (usually in an `Arc`)
/// by every [`Scanner`].
pub struct Engine {
    pub(crate) detectors: Vec<DetectorInfo>,
    pub(crate) builtin: [Option<DetId>; BuiltinKind::ALL.len()],
    pub(crate) literals: Option<literals::LiteralMatcher>,
    pub(crate) literal_terms: Vec<Box<[u8]>>,
    pub(crate) term_actions: Vec<Vec<TermAction>>,
    pub(crate) context: context::ContextWords,
    /// The phone detectors' ASCII context words (`tel`, `fax`, `mobile`): letters that may be
    /// glued to a number's first digit without making it an identifier.
    pub(crate) phone_labels: Vec<Box<[u8]>>,
    pub(crate) regex: Option<(Vec<regex_automata::meta::Regex>, Vec<DetId>)>,
    /// The regex detectors' patterns, in the order of `regex` (kept for [`Engine::to_bytes`]).
    pub(crate) regex_patterns: Vec<String>,
    /// The widest context window of any detector, in characters.
    pub(crate) max_window: usize,
    /// The widest negative window of any detector, in characters.
    pub(crate) max_negative_window: usize,
    pub(crate) report_test_values: bool,
}

/// What a literal term does when found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum TermAction {
    /// Report a finding of this keyword / dictionary detector; `exact` holds the term's bytes when
    /// it is case-sensitive.
    Report {
        det: DetId,
        confidence: Confidence,
        exact: Option<Box<[u8]>>,
    },
    /// Look for an AWS secret access key right after this label.
    AwsSecretLabel,
}

impl Engine {
    /// The engine with every built-in detector on its defaults.
    pub fn builtin() -> Engine {
        EngineBuilder::new()
            .build()
            .expect("the embedded built-in rules are valid (checked by tests)")
    }

    /// A builder, to add rules files and dictionaries to the built-ins.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::new()
    }

    /// Every enabled detector, in report order.
    pub fn detectors(&self) -> &[DetectorInfo] {
        &self.detectors
    }

    /// The detector with this id, if enabled.
    pub fn detector(&self, id: &str) -> Option<&DetectorInfo> {
        self.detectors.iter().find(|d| d.id == id)
    }

    /// Approximate heap bytes held by the compiled matchers.
    pub fn heap_bytes(&self) -> usize {
        self.literals
            .as_ref()
            .map_or(0, literals::LiteralMatcher::heap_bytes)
            + self
                .literal_terms
                .iter()
                .map(|t| t.len() + 16)
                .sum::<usize>()
            + self.term_actions.len() * 24
            + self.context.heap_bytes()
    }

    pub(crate) fn det_for(&self, kind: BuiltinKind) -> Option<DetId> {
        self.builtin[kind.index()]
    }

    /// The `phone_labels` field, from the compiled context words.
    pub(crate) fn compile_phone_labels(
        context: &context::ContextWords,
        builtin: &[Option<DetId>; BuiltinKind::ALL.len()],
    ) -> Vec<Box<[u8]>> {
        let dets: Vec<DetId> = [BuiltinKind::JpPhone, BuiltinKind::Phone]
            .iter()
            .filter_map(|k| builtin[k.index()])
            .collect();
        context.ascii_labels(&dets)
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field(
                "detectors",
                &self
                    .detectors
                    .iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("literal_terms", &self.literal_terms.len())
            .field("context_words", &self.context.words.len())
            .finish()
    }
}
