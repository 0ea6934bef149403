//! Check digits and structural checks, on normalised ASCII input.
//!
//! Every function takes the *normalised* value (ASCII digits, ASCII upper-case letters, no
//! separators) and answers `true` only when the value is well formed. They never panic, whatever
//! the input; a wrong length is simply `false`. The algorithms and their test vectors are those
//! of `../shared/research/detection-anchors.md` section 5 and are checked against python-stdnum
//! by `tests/stdnum_diff.rs`.

/// The canonical form of a value as the detectors validate it: width-folded (`１２３４` → `1234`),
/// separators (spaces, hyphens, dots and their look-alikes) dropped, letters upper-cased.
pub fn canonical(value: &str) -> Vec<u8> {
    value
        .chars()
        .map(super::normalize::fold_char)
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase() as u8)
        .collect()
}

/// Luhn (ISO/IEC 7812-1) over ASCII digits. Any non-digit makes it `false`.
pub fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &c) in digits.iter().rev().enumerate() {
        if !c.is_ascii_digit() {
            return false;
        }
        let mut v = u32::from(c - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Japanese Individual Number (マイナンバー): 12 digits, the last a check digit over the first 11
/// with weights 6,5,4,3,2,7,6,5,4,3,2; check = 11 - (S mod 11), or 0 when the remainder is <= 1.
pub fn my_number(digits: &[u8]) -> bool {
    if digits.len() != 12 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    const W: [u32; 11] = [6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let s: u32 = digits[..11]
        .iter()
        .zip(W)
        .map(|(&c, w)| u32::from(c - b'0') * w)
        .sum();
    let r = s % 11;
    let check = if r <= 1 { 0 } else { 11 - r };
    u32::from(digits[11] - b'0') == check
}

/// Japanese Corporate Number (法人番号): 13 digits, the *first* a check digit 1-9 over the other 12:
/// weights 1,2,1,2,... counted from the right; check = 9 - (S mod 9).
pub fn corporate_number(digits: &[u8]) -> bool {
    if digits.len() != 13 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let s: u32 = digits[1..]
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &c)| u32::from(c - b'0') * if i % 2 == 0 { 1 } else { 2 })
        .sum();
    u32::from(digits[0] - b'0') == 9 - s % 9
}

/// BBAN structure per country, from the SWIFT IBAN registry (release 101): runs of `n` (digits),
/// `a` (upper-case letters) and `c` (letters or digits), e.g. `4a14n` for GB. `None` for a country
/// that does not issue IBANs.
pub fn iban_bban_structure(country: &[u8]) -> Option<&'static str> {
    let s = match country {
        b"AD" => "8n12c",
        b"AE" => "19n",
        b"AL" => "8n16c",
        b"AT" => "16n",
        b"AZ" => "4a20c",
        b"BA" => "16n",
        b"BE" => "12n",
        b"BG" => "4a6n8c",
        b"BH" => "4a14c",
        b"BI" => "23n",
        b"BR" => "23n1a1c",
        b"BY" => "4c4n16c",
        b"CH" => "5n12c",
        b"CR" => "18n",
        b"CY" => "8n16c",
        b"CZ" => "20n",
        b"DE" => "18n",
        b"DJ" => "23n",
        b"DK" => "14n",
        b"DO" => "4c20n",
        b"EE" => "16n",
        b"EG" => "25n",
        b"ES" => "20n",
        b"FI" => "14n",
        b"FK" => "2a12n",
        b"FO" => "14n",
        b"FR" => "10n11c2n",
        b"GB" => "4a14n",
        b"GE" => "2a16n",
        b"GI" => "4a15c",
        b"GL" => "14n",
        b"GR" => "7n16c",
        b"GT" => "24c",
        b"HN" => "4a20n",
        b"HR" => "17n",
        b"HU" => "24n",
        b"IE" => "4a14n",
        b"IL" => "19n",
        b"IQ" => "4a15n",
        b"IS" => "22n",
        b"IT" => "1a10n12c",
        b"JO" => "4a4n18c",
        b"KW" => "4a22c",
        b"KZ" => "3n13c",
        b"LB" => "4n20c",
        b"LC" => "4a24c",
        b"LI" => "5n12c",
        b"LT" => "16n",
        b"LU" => "3n13c",
        b"LV" => "4a13c",
        b"LY" => "21n",
        b"MC" => "10n11c2n",
        b"MD" => "20c",
        b"ME" => "18n",
        b"MK" => "3n10c2n",
        b"MN" => "16n",
        b"MR" => "23n",
        b"MT" => "4a5n18c",
        b"MU" => "4a19n3a",
        b"NI" => "4a20n",
        b"NL" => "4a10n",
        b"NO" => "11n",
        b"OM" => "3n16c",
        b"PK" => "4a16c",
        b"PL" => "24n",
        b"PS" => "4a21c",
        b"PT" => "21n",
        b"QA" => "4a21c",
        b"RO" => "4a16c",
        b"RS" => "18n",
        b"RU" => "14n15c",
        b"SA" => "2n18c",
        b"SC" => "4a20n3a",
        b"SD" => "14n",
        b"SE" => "20n",
        b"SI" => "15n",
        b"SK" => "20n",
        b"SM" => "1a10n12c",
        b"SO" => "19n",
        b"ST" => "21n",
        b"SV" => "4a20n",
        b"TL" => "19n",
        b"TN" => "20n",
        b"TR" => "6n16c",
        b"UA" => "6n19c",
        b"VA" => "18n",
        b"VG" => "4a16n",
        b"XK" => "16n",
        b"YE" => "4a4n18c",
        _ => return None,
    };
    Some(s)
}

/// IBAN length per country (4 + the BBAN length of the registry).
pub fn iban_length(country: &[u8]) -> Option<usize> {
    iban_bban_structure(country).map(|s| 4 + runs(s).map(|(n, _)| n).sum::<usize>())
}

fn runs(s: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= b.len() {
            return None;
        }
        let mut n = 0usize;
        while i < b.len() && b[i].is_ascii_digit() {
            n = n * 10 + usize::from(b[i] - b'0');
            i += 1;
        }
        let kind = *b.get(i)?;
        i += 1;
        Some((n, kind))
    })
}

/// True when the BBAN (an IBAN without its first four characters) has the country's structure.
pub fn iban_bban_ok(country: &[u8], bban: &[u8]) -> bool {
    let Some(st) = iban_bban_structure(country) else {
        return false;
    };
    let mut i = 0;
    for (n, kind) in runs(st) {
        let Some(part) = bban.get(i..i + n) else {
            return false;
        };
        let ok = match kind {
            b'n' => part.iter().all(u8::is_ascii_digit),
            b'a' => part.iter().all(u8::is_ascii_uppercase),
            _ => part
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        };
        if !ok {
            return false;
        }
        i += n;
    }
    i == bban.len()
}

/// ISO 7064 MOD 97-10 over an IBAN (country, check digits, BBAN; upper-case, no spaces).
pub fn iban_mod97(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let mut r: u32 = 0;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        r = match c {
            b'0'..=b'9' => (r * 10 + u32::from(c - b'0')) % 97,
            b'A'..=b'Z' => (r * 100 + u32::from(c - b'A') + 10) % 97,
            _ => return false,
        };
    }
    r == 1
}

/// A whole IBAN: a known country, the registry's BBAN structure and length, digits in the check
/// position, mod 97. (National check digits inside some BBANs are not verified.)
pub fn iban(iban: &[u8]) -> bool {
    iban.len() >= 5
        && iban[2].is_ascii_digit()
        && iban[3].is_ascii_digit()
        && iban_bban_ok(&iban[..2], &iban[4..])
        && iban_mod97(iban)
}

/// US Social Security Number structure: 9 digits, area not 000, 666 or 9xx, group not 00,
/// serial not 0000.
pub fn us_ssn(digits: &[u8]) -> bool {
    if digits.len() != 9 || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let (area, group, serial) = (&digits[..3], &digits[3..5], &digits[5..]);
    area != b"000" && area != b"666" && area[0] != b'9' && group != b"00" && serial != b"0000"
}

/// SSNs that were published and never belong to a person (Woolworth's wallet card, the
/// advertising samples). Reported with low confidence only.
pub fn us_ssn_is_sample(digits: &[u8]) -> bool {
    matches!(
        digits,
        b"078051120" | b"219099999" | b"123456789" | b"111111111" | b"457555462"
    )
}

/// The first two digits of a Japanese driver's licence number name the issuing prefectural
/// public safety commission (公安委員会). Codes as printed on licences: 10-14 北海道 (札幌, 函館,
/// 旭川, 釧路, 北見), 20-25 東北, 30 東京, 40-49 関東甲信越・静岡, 50-55 北陸・東海, 60-65 近畿,
/// 70-74 中国, 80-83 四国, 90-97 九州・沖縄.
pub fn jp_license_commission(code: u8) -> bool {
    matches!(code, 10..=14 | 20..=25 | 30 | 40..=49 | 50..=55 | 60..=65 | 70..=74 | 80..=83 | 90..=97)
}

/// Credit card brand by issuer identification number and length. `None` when no brand issues
/// numbers of this prefix and length.
pub fn card_brand(digits: &[u8]) -> Option<&'static str> {
    let n = digits.len();
    if !(12..=19).contains(&n) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let p = |k: usize| -> u32 {
        digits[..k]
            .iter()
            .fold(0u32, |a, &c| a * 10 + u32::from(c - b'0'))
    };
    let (p1, p2, p3, p4, p6) = (p(1), p(2), p(3), p(4), p(6));
    if p1 == 4 && matches!(n, 13 | 16 | 19) {
        return Some("visa");
    }
    if n == 16 && ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) {
        return Some("mastercard");
    }
    if (p2 == 34 || p2 == 37) && n == 15 {
        return Some("amex");
    }
    if (3528..=3589).contains(&p4) && (16..=19).contains(&n) {
        return Some("jcb");
    }
    if ((300..=305).contains(&p3) || p3 == 309 || p2 == 36 || p2 == 38 || p2 == 39)
        && (14..=19).contains(&n)
    {
        return Some("diners");
    }
    if (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65) && (16..=19).contains(&n) {
        return Some("discover");
    }
    if (622126..=622925).contains(&p6) && (16..=19).contains(&n) {
        return Some("discover");
    }
    if p2 == 62 && (16..=19).contains(&n) {
        return Some("unionpay");
    }
    if (p2 == 50 || (56..=69).contains(&p2)) && (12..=19).contains(&n) {
        return Some("maestro");
    }
    None
}

/// Card numbers published as test numbers by the card networks and payment processors.
pub fn card_is_test_number(digits: &[u8]) -> bool {
    matches!(
        digits,
        b"4111111111111111"
            | b"4242424242424242"
            | b"4012888888881881"
            | b"4000056655665556"
            | b"5555555555554444"
            | b"5105105105105100"
            | b"2223003122003222"
            | b"378282246310005"
            | b"371449635398431"
            | b"378734493671000"
            | b"6011111111111117"
            | b"6011000990139424"
            | b"3056930009020004"
            | b"36227206271667"
            | b"3566002020360505"
            | b"3530111333300000"
            | b"6200000000000005"
            | b"6205500000000000004"
    )
}

/// A Japanese JAN / EAN-13 product code: 13 digits with a GS1 prefix of Japan (45, 49) and a valid
/// EAN check digit (weights 1,3 from the left). Such numbers are not card or corporate numbers
/// unless a label says so.
pub fn jan_code(digits: &[u8]) -> bool {
    if digits.len() != 13
        || !digits.iter().all(u8::is_ascii_digit)
        || !(digits.starts_with(b"45") || digits.starts_with(b"49"))
    {
        return false;
    }
    let s: u32 = digits[..12]
        .iter()
        .enumerate()
        .map(|(i, &c)| u32::from(c - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    u32::from(digits[12] - b'0') == (10 - s % 10) % 10
}

/// True when every digit is the same (`111111111111`) or the digits count straight up or down:
/// values people type as placeholders.
pub fn is_degenerate(digits: &[u8]) -> bool {
    if digits.len() < 2 {
        return true;
    }
    let same = digits.iter().all(|&c| c == digits[0]);
    let up = digits
        .windows(2)
        .all(|w| w[1] == if w[0] == b'9' { b'0' } else { w[0] + 1 });
    let down = digits
        .windows(2)
        .all(|w| w[1] == if w[0] == b'0' { b'9' } else { w[0] - 1 });
    // A valid value may end in a check digit that breaks the pattern: look at all but the last.
    let body = &digits[..digits.len() - 1];
    let body_same = body.iter().all(|&c| c == body[0]);
    same || up || down || body_same
}

/// True when the first eight digits read as a plausible calendar date `YYYYMMDD` (1900-2099):
/// the "date plus sequence" order numbers that pass a check digit by chance.
pub fn starts_with_date(digits: &[u8]) -> bool {
    if digits.len() < 8 || !digits[..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n = |a: usize, b: usize| {
        digits[a..b]
            .iter()
            .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'))
    };
    let (y, m, d) = (n(0, 4), n(4, 6), n(6, 8));
    (1900..=2099).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
}

/// Shannon entropy in bits per byte.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_vectors() {
        assert!(luhn(b"79927398713"));
        assert!(luhn(b"4111111111111111"));
        assert!(!luhn(b"4111111111111112"));
        assert!(!luhn(b""));
        assert!(!luhn(b"41x1"));
    }

    #[test]
    fn my_number_vectors() {
        assert!(my_number(b"123456789018"));
        assert!(my_number(b"621498320257"));
        assert!(!my_number(b"621498320258"));
        assert!(my_number(b"111111111118"));
        assert!(!my_number(b"12345678901"));
    }

    #[test]
    fn corporate_number_vectors() {
        assert!(corporate_number(b"5835678256246"));
        assert!(corporate_number(b"7123456789012"));
        assert!(corporate_number(b"4011001098993"));
        assert!(corporate_number(b"2120901007402"));
        assert!(!corporate_number(b"1835678256246"));
        assert!(!corporate_number(b"0835678256246"));
    }

    #[test]
    fn iban_vectors() {
        assert!(iban(b"GB82WEST12345698765432"));
        assert!(iban(b"DE89370400440532013000"));
        assert!(!iban(b"GB82WEST12345698765433"));
        assert!(!iban(b"DE8937040044053201300")); // wrong length for DE
        assert!(!iban(b"ZZ82WEST12345698765432"));
    }

    #[test]
    fn ssn_rules() {
        assert!(us_ssn(b"123456789"));
        assert!(!us_ssn(b"000456789"));
        assert!(!us_ssn(b"666456789"));
        assert!(!us_ssn(b"900456789"));
        assert!(!us_ssn(b"123006789"));
        assert!(!us_ssn(b"123450000"));
    }

    #[test]
    fn brands() {
        assert_eq!(card_brand(b"4111111111111111"), Some("visa"));
        assert_eq!(card_brand(b"2223003122003222"), Some("mastercard"));
        assert_eq!(card_brand(b"378282246310005"), Some("amex"));
        assert_eq!(card_brand(b"3566002020360505"), Some("jcb"));
        assert_eq!(card_brand(b"36227206271667"), Some("diners"));
        assert_eq!(card_brand(b"6011111111111117"), Some("discover"));
        assert_eq!(card_brand(b"6200000000000005"), Some("unionpay"));
        assert_eq!(card_brand(b"6205500000000000004"), Some("unionpay"));
        assert_eq!(card_brand(b"1234567890123456"), None);
    }

    #[test]
    fn jan() {
        assert!(jan_code(b"4901234567894"));
        assert!(!jan_code(b"4901234567895"));
        assert!(!jan_code(b"5901234123457"));
    }

    #[test]
    fn dates_and_degenerate() {
        assert!(starts_with_date(b"202610160001"));
        assert!(!starts_with_date(b"123456789018"));
        assert!(is_degenerate(b"111111111118"));
        assert!(is_degenerate(b"123456789012"));
        assert!(!is_degenerate(b"621498320257"));
    }
}
