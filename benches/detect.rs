//! Criterion benchmarks of the detection engine.
//!
//! * `scan/builtin`: every built-in detector with validation and context over a generated mixed
//!   Japanese/English business text (~4 MB, values planted every few KB, decoys everywhere).
//! * `scan/dictionary_{1k,10k,100k}`: a keyword dictionary of that size alone (`without_builtins`)
//!   and together with the built-ins.
//! * `stage/*`: the stages of `scan/builtin` one at a time, on the same text: `triggers` (the
//!   SIMD classification and the walk over trigger bytes), `candidates` (the trigger handlers:
//!   digit tokenizing, checksums and other validation, emails, secrets; and the literal filter),
//!   `context` (context words, negative words and confidence for those candidates), `literals`
//!   (the literal filter alone: markings and labels; `literals_dictionary_10k` with a
//!   10,000-term dictionary). `scan/builtin` minus `candidates` and `context` is the cost of
//!   overlaps and findings (masking, evidence).
//! * `inspect/message/*`: whole-message inspection (MIME, attachments, documents, detection) of
//!   the corpus messages; the typical one has a body, a docx, an xlsx, a PDF and a zip.
//! * `build/*`: compiling the built-in rules, and a 100k-term dictionary.
//!
//! Point them at your own data: `PING32DLP_BENCH_CORPUS=file.txt` replaces the generated text,
//! `PING32DLP_BENCH_RULES=rules.toml` adds your rules to the `scan/builtin` engine.
//!
//!     cargo bench --bench detect
//!     PING32DLP_BENCH_CORPUS=mail.txt cargo bench --bench detect -- scan/builtin

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ping32dlp::{Engine, Scanner};

/// A small deterministic generator (xorshift), so every run scans the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

fn luhn_complete(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let mut v = u32::from(b - b'0');
            if i % 2 == 0 {
                v *= 2;
                if v > 9 {
                    v -= 9;
                }
            }
            v
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn my_number_complete(body: &str) -> String {
    let w = [6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let s: u32 = body
        .bytes()
        .zip(w)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let r = s % 11;
    format!("{body}{}", if r <= 1 { 0 } else { 11 - r })
}

const JA: &[&str] = &[
    "いつも大変お世話になっております。",
    "先日の打ち合わせでは貴重なお時間をいただき、誠にありがとうございました。",
    "見積金額は¥4,278,000（税込）となります。",
    "納期につきましては2026年3月10日を予定しております。",
    "添付の資料をご確認いただけますと幸いです。",
    "〒100-0005 東京都千代田区丸の内1丁目",
    "管理番号926389503173の案件は法務部へ移管されました。",
    "商品コード4975968351821の単価改定についてご案内いたします。",
    "次回の定例会議は２０２６年４月１５日 10:00から第3会議室にて開催いたします。",
];
const EN: &[&str] = &[
    "Thank you for your time at yesterday's meeting.",
    "Order ORD-2026-556838 has shipped and should arrive within 3 business days.",
    "Invoice INV-00482913 is due on March 10, 2026.",
    "Tracking number for the replacement unit: 4716230595180426.",
    "Release v2.14.3 is now available in the staging environment.",
];

/// Mixed business text with a planted value about every 4 KB.
fn corpus(bytes: usize) -> String {
    if let Ok(path) = std::env::var("PING32DLP_BENCH_CORPUS") {
        let raw = std::fs::read(&path).expect("PING32DLP_BENCH_CORPUS");
        return ping32dlp::text::decode_text(&raw).text.into_owned();
    }
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut s = String::with_capacity(bytes + 256);
    let mut next_plant = 4096;
    while s.len() < bytes {
        let ja = r.below(10) < 6;
        s.push_str(r.pick(if ja { JA } else { EN }));
        if r.below(6) == 0 {
            s.push('\n');
        }
        if s.len() >= next_plant {
            next_plant += 2048 + r.below(4096);
            let v = match r.below(8) {
                0 => format!(
                    "カード番号{}です。",
                    luhn_complete(&format!("4{}", r.digits(14)))
                ),
                1 => format!("個人番号：{}。", my_number_complete(&r.digits(11))),
                2 => format!("TEL 0{}-{}-{} ", 3 + r.below(4), r.digits(4), r.digits(4)),
                3 => format!("Email: user{}@example.co.jp ", r.digits(3)),
                4 => "【社外秘】".to_string(),
                5 => format!("aws_access_key_id = AKIA{}\n", "QZ4XK7TB2WJ6NR3M"),
                6 => format!(
                    "SSN: {}-{}-{}. ",
                    100 + r.below(600),
                    10 + r.below(89),
                    1000 + r.below(8999)
                ),
                _ => "IBAN: GB82 WEST 1234 5698 7654 32 ".to_string(),
            };
            s.push_str(&v);
        }
    }
    s
}

/// `n` dictionary terms: company, project and person names; deterministic.
fn dictionary(n: usize) -> Vec<String> {
    const FAMILY: &[&str] = &[
        "山田", "田中", "佐藤", "鈴木", "高橋", "伊藤", "渡辺", "中村", "小林", "加藤",
    ];
    const BIZ: &[&str] = &[
        "商事",
        "物産",
        "精機",
        "工業",
        "電機",
        "製作所",
        "化学",
        "建設",
        "運輸",
        "食品",
    ];
    const ADJ: &[&str] = &[
        "Amber", "Arctic", "Azure", "Bold", "Cobalt", "Crimson", "Delta", "Golden", "Lunar",
        "Polar",
    ];
    const NOUN: &[&str] = &[
        "Falcon", "Harbor", "Summit", "Tiger", "Nebula", "Orca", "Phoenix", "Raven", "Willow",
        "Zephyr",
    ];
    const KATA: &[&str] = &[
        "ア", "カ", "サ", "タ", "ナ", "ハ", "マ", "ヤ", "ラ", "ワ", "ガ", "ザ", "ダ", "バ", "パ",
    ];
    let mut r = Rng(0xDEAD_BEEF_1234_5678);
    let mut out = std::collections::BTreeSet::new();
    while out.len() < n {
        let t = match r.below(3) {
            0 => format!(
                "{}{}{}{}",
                r.pick(KATA),
                r.pick(KATA),
                r.pick(FAMILY),
                r.pick(BIZ)
            ),
            1 => format!("Project {} {}-{}", r.pick(ADJ), r.pick(NOUN), r.below(1000)),
            _ => format!(
                "{}{}{}ホールディングス",
                r.pick(KATA),
                r.pick(KATA),
                r.pick(KATA)
            ),
        };
        out.insert(t);
    }
    out.into_iter().collect()
}

fn dictionary_engine(terms: &[String], builtins: bool) -> Engine {
    let dir = std::env::temp_dir().join(format!("ping32dlp-bench-dict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("dict-{}.txt", terms.len()));
    std::fs::write(&path, terms.join("\n")).unwrap();
    let mut b = Engine::builder().dictionary_file(&path);
    if !builtins {
        b = b.without_builtins();
    }
    b.build().unwrap()
}

fn scan(c: &mut Criterion) {
    let text = corpus(4 << 20);
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(20);
    let mut b = Engine::builder();
    if let Ok(rules) = std::env::var("PING32DLP_BENCH_RULES") {
        b = b.rules_file(rules).expect("PING32DLP_BENCH_RULES");
    }
    let mut scanner = Scanner::new(Arc::new(b.build().expect("rules")));
    g.bench_function("builtin", |b| {
        b.iter(|| black_box(scanner.scan_str(black_box(&text)).findings.len()))
    });
    for n in [1_000usize, 10_000, 100_000] {
        let terms = dictionary(n);
        let mut text_d = text.clone();
        for t in terms.iter().step_by((n / 50).max(1)) {
            text_d.push_str(&format!("案件名：{t}の件です。"));
        }
        let mut alone = Scanner::new(Arc::new(dictionary_engine(&terms, false)));
        g.bench_with_input(BenchmarkId::new("dictionary_alone", n), &text_d, |b, t| {
            b.iter(|| black_box(alone.scan_str(black_box(t)).findings.len()))
        });
        let mut all = Scanner::new(Arc::new(dictionary_engine(&terms, true)));
        g.bench_with_input(
            BenchmarkId::new("dictionary_with_builtins", n),
            &text_d,
            |b, t| b.iter(|| black_box(all.scan_str(black_box(t)).findings.len())),
        );
    }
    g.finish();
}

/// The scan's stages one at a time (see the module notes).
fn stages(c: &mut Criterion) {
    use ping32dlp::detect::Stage;
    let text = corpus(4 << 20);
    let bytes = text.as_bytes();
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(20);
    let mut s = Scanner::new(Arc::new(Engine::builtin()));
    for (name, stage) in [
        ("triggers", Stage::Triggers),
        ("literals", Stage::Literals),
        ("candidates", Stage::Candidates),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(s.run_stage(stage, black_box(bytes))))
        });
    }
    assert!(s.run_stage(Stage::Candidates, bytes) > 0);
    g.bench_function("context", |b| {
        b.iter(|| black_box(s.run_stage(Stage::Context, black_box(bytes))))
    });
    let terms = dictionary(10_000);
    let mut d = Scanner::new(Arc::new(dictionary_engine(&terms, true)));
    g.bench_function("literals_dictionary_10k", |b| {
        b.iter(|| black_box(d.run_stage(Stage::Literals, black_box(bytes))))
    });
    g.finish();
}

/// Whole-message inspection of the corpus' typical mail (body, docx, xlsx, pdf, zip) and the
/// other corpus messages.
fn inspect(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/extract/mail");
    let mut scanner = Scanner::new(Arc::new(Engine::builtin()));
    let opts = ping32dlp::ExtractOptions::default();
    let mut g = c.benchmark_group("inspect");
    for name in [
        "08-typical.eml",
        "01-iso2022jp-attachments.eml",
        "03-forwarded.eml",
    ] {
        let data = std::fs::read(dir.join(name)).expect("corpus message");
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_with_input(BenchmarkId::new("message", name), &data, |b, d| {
            b.iter(|| black_box(scanner.inspect_message(black_box(d), &opts).findings.len()))
        });
    }
    g.finish();
}

fn build(c: &mut Criterion) {
    let mut g = c.benchmark_group("build");
    g.bench_function("builtin", |b| b.iter(|| black_box(Engine::builtin())));
    let terms = dictionary(100_000);
    g.sample_size(10);
    g.bench_function("dictionary_100k", |b| {
        b.iter(|| black_box(dictionary_engine(&terms, false)))
    });
    g.finish();
}

criterion_group!(benches, scan, stages, inspect, build);
criterion_main!(benches);
