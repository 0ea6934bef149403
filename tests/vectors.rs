//! Runs every rule test vector in `corpus/vectors/*.toml` through the library (see the README
//! there for the format).

use std::path::Path;
use std::sync::Arc;

use ping32dlp::{Confidence, Engine, Scanner};

#[derive(serde::Deserialize)]
struct File {
    detector: Option<String>,
    #[serde(default)]
    positive: Vec<Case>,
    #[serde(default)]
    negative: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    detector: Option<String>,
    text: String,
    value: Option<String>,
    confidence: Option<String>,
    #[allow(dead_code)]
    note: Option<String>,
}

#[test]
fn every_vector() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/vectors");
    let engine = Arc::new(Engine::builtin());
    let mut scanner = Scanner::new(engine.clone());
    let mut failures = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut count = 0;
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
    {
        let file: File = toml::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (positive, case) in file
            .positive
            .iter()
            .map(|c| (true, c))
            .chain(file.negative.iter().map(|c| (false, c)))
        {
            count += 1;
            let det = case
                .detector
                .clone()
                .or_else(|| file.detector.clone())
                .expect("detector");
            assert!(
                engine.detector(&det).is_some(),
                "{}: unknown detector {det}",
                path.display()
            );
            seen.insert((det.clone(), positive));
            let r = scanner.scan_str(&case.text);
            let mine: Vec<_> = r.findings.iter().filter(|f| f.detector == det).collect();
            if positive {
                let want = case.value.as_deref().expect("positive needs a value");
                let min = case
                    .confidence
                    .as_deref()
                    .map_or(Confidence::Low, |c| Confidence::parse(c).unwrap());
                match mine.iter().find(|f| f.value == want) {
                    None => failures.push(format!(
                        "{}: {det} missed {want:?} in {:?}; found {:?}",
                        path.display(),
                        case.text,
                        r.findings
                            .iter()
                            .map(|f| (f.detector, f.value, f.confidence))
                            .collect::<Vec<_>>()
                    )),
                    Some(f) if f.confidence < min => failures.push(format!(
                        "{}: {det} found {want:?} at {} confidence, want at least {min}",
                        path.display(),
                        f.confidence
                    )),
                    Some(_) => {}
                }
            } else if let Some(v) = case.value.as_deref() {
                // A negative with a value: that value must not be found (others may).
                if let Some(f) = mine.iter().find(|f| f.value == v) {
                    failures.push(format!(
                        "{}: {det} should not find {v:?} in {:?}; found it at {}",
                        path.display(),
                        case.text,
                        f.confidence
                    ));
                }
            } else if !mine.is_empty() {
                failures.push(format!(
                    "{}: {det} should find nothing in {:?}; found {:?}",
                    path.display(),
                    case.text,
                    mine.iter()
                        .map(|f| (f.value, f.confidence))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(count > 100, "only {count} vectors");
    // Every built-in detector has positives; the checksum and format detectors have negatives too.
    for d in engine.detectors() {
        assert!(
            seen.contains(&(d.id.clone(), true)),
            "no positive vector for {}",
            d.id
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {count} vectors failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
