//! Property tests: no panic on any input, offsets that point at what was matched, masks that never
//! reveal more than they promise.

use std::sync::{Arc, OnceLock};

use ping32dlp::detect::normalize::{fold_str, normalize};
use ping32dlp::{validate, Engine, MaskStyle, Scanner};
use proptest::prelude::*;

fn engine() -> Arc<Engine> {
    static E: OnceLock<Arc<Engine>> = OnceLock::new();
    E.get_or_init(|| {
        Arc::new(
            Engine::builder()
                .rules_str(
                    r#"
[[detector]]
id = "user_code"
regex = '[0-9]{4}-[0-9]{4}'
[[keywords]]
id = "kw"
terms = ["社外秘", "Project Falcon", "ABC商事"]
"#,
                )
                .build()
                .unwrap(),
        )
    })
    .clone()
}

/// Text made of pieces that drive every matcher: digits in both widths, separators, labels,
/// secret prefixes, kana, letters.
fn dlp_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
        "7",
        "8",
        "9",
        "０",
        "１",
        "２",
        "５",
        "９",
        "-",
        "－",
        "‐",
        " ",
        "　",
        "ー",
        "(",
        ")",
        "（",
        "+",
        "+81",
        "T",
        "Ｔ",
        "AB",
        "GB82",
        "WEST",
        "個人番号",
        "カード番号",
        "口座番号",
        "免許証",
        "は",
        "です",
        "。",
        "@",
        "taro@example.co.jp",
        "AKIA",
        "ASIA2E5A7F3B2Q4C7WZX",
        "ghp_",
        "xoxb-",
        "AIza",
        "sk_live_",
        "_",
        "/",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "\n",
        ".",
        ",",
        "社外秘",
        "機密",
        "極秘",
        "【",
        "】",
        "CONFIDENTIAL",
        "Project Falcon",
        "ＡＢＣ商事",
        "4111111111111111",
        "123456789018",
        "T7123456789012",
        "\u{FFFD}",
        "é",
        "😀",
    ]);
    prop::collection::vec(pieces, 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut s = Scanner::new(engine());
        let r = s.scan(&bytes);
        for f in r.findings {
            prop_assert!(f.start < f.end && f.end <= bytes.len());
        }
    }

    #[test]
    fn findings_point_at_their_values(text in dlp_text()) {
        let mut s = Scanner::new(engine());
        let r = s.scan_str(&text);
        for f in r.findings {
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end), "{f:?}");
            prop_assert_eq!(&text[f.start..f.end], f.value);
            match f.detector {
                // Digit detectors: the folded value, without separators, is what validated.
                "credit_card" | "jp_my_number" | "jp_corporate_number" | "jp_bank_account" | "jp_drivers_license"
                | "jp_basic_pension_number" | "us_ssn" | "iban" | "jp_passport" | "jp_residence_card" => {
                    prop_assert_eq!(validate::canonical(f.value), f.normalized.as_bytes().to_vec(), "{:?}", f);
                }
                // The user regex ran on folded text: the folded original must match it whole.
                "user_code" => {
                    let folded = fold_str(f.value);
                    prop_assert!(folded.len() == 9 && folded.as_bytes()[4] == b'-', "{:?} -> {folded:?}", f);
                    prop_assert_eq!(folded, f.normalized);
                }
                _ => {}
            }
        }
    }

    /// The scan goes through a large text in blocks (64 KiB): whatever straddles a block
    /// boundary is found as it is in a text of its own.
    #[test]
    fn blocks_find_what_a_lone_text_finds(text in dlp_text(), pad in 65_536usize - 160..65_540) {
        let key = |f: &ping32dlp::Finding<'_>, shift: usize| {
            (f.detector.to_string(), f.start - shift, f.end - shift, f.confidence)
        };
        let mut s = Scanner::new(engine());
        let alone: Vec<_> = s.scan_str(&text).findings.iter().map(|f| key(f, 0)).collect();
        let padded = format!("{}{text}", "\n".repeat(pad));
        let r = s.scan_str(&padded);
        let got: Vec<_> = r.findings.iter().map(|f| key(f, pad)).collect();
        prop_assert_eq!(got, alone);
    }

    #[test]
    fn offset_map_round_trips(text in dlp_text()) {
        let n = normalize(&text);
        // Every folded char boundary maps to an original char boundary whose prefix folds to the
        // folded prefix.
        for (i, _) in n.text.char_indices().chain(std::iter::once((n.text.len(), ' '))) {
            let o = n.to_original(i);
            prop_assert!(text.is_char_boundary(o));
            prop_assert_eq!(fold_str(&text[..o]), &n.text[..i]);
        }
    }

    #[test]
    fn masks_reveal_no_more_than_documented(value in "[0-9A-Za-z０-９ー\\- @.]{0,40}") {
        let alnum = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).count();
        let shown = |m: &str| m.chars().filter(|&c| c.is_alphanumeric()).count();
        let total = alnum(&value);
        for (style, limit) in [
            (MaskStyle::Full, 0),
            (MaskStyle::Last4, 4),
            (MaskStyle::First4Last4, 8),
        ] {
            let m = ping32dlp::detect::mask_value(&value, style);
            // At most the documented characters, and never more than half of the value.
            prop_assert!(shown(&m) <= limit && shown(&m) * 2 <= total, "{style:?} {value:?} -> {m:?}");
            prop_assert_eq!(m.chars().count(), value.chars().count());
        }
        let m = ping32dlp::detect::mask_value(&value, MaskStyle::First1);
        let local = value.split_once('@').map_or(value.as_str(), |(l, _)| l);
        let domain_len = value.split_once('@').map_or(0, |(_, d)| alnum(d));
        prop_assert!(shown(&m) <= 1 + domain_len, "{value:?} -> {m:?} (local {local:?})");
        let m = ping32dlp::detect::mask_value(&value, MaskStyle::Secret);
        prop_assert!(shown(&m) <= 11, "{value:?} -> {m:?}");
    }
}

/// Inputs built to make a careless matcher quadratic: they must finish (and are bounded by the
/// linear design: every handler looks a bounded distance around its trigger).
#[test]
fn hostile_repetitions_finish() {
    let mut s = Scanner::new(engine());
    for piece in [
        "-----BEGIN RSA PRIVATE KEY-----",
        "@",
        "a@b.",
        "1 ",
        "1-",
        "個人番号",
        "AKIA",
        "xoxb-1234567890-",
        "ghp_",
        "GB82 ",
        "Ｔ",
        "社外",
        "-----",
        "(0",
    ] {
        let text = piece.repeat(2_000_000 / piece.len());
        let r = s.scan_str(&text);
        assert!(r.findings.len() <= text.len());
    }
    let digits: String = (0..200_000)
        .map(|i| format!("{} ", 1000 + i % 9000))
        .collect();
    let _ = s.scan_str(&(String::from("個人番号 ") + &digits));
}
