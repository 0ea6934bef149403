//! Replays every input the fuzzers ever crashed on (`fuzz/regressions/<target>/*`): each must now
//! run to the end. New crashes are added by copying the artifact there.

use std::path::Path;

#[test]
fn fuzz_crashes_stay_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let names = [
        ("message", "message.eml"),
        ("zip", "archive.zip"),
        ("compressed", "archive.7z"),
        ("msg", "mail.msg"),
        ("pdf", "document.pdf"),
        ("ooxml", "document.docx"),
        ("spreadsheet", "book.xlsx"),
    ];
    let mut replayed = 0;
    for (target, name) in names.iter().chain([("text", "")].iter()) {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for e in dir {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            if *target == "text" {
                ping32dlp::fuzzing::scan(&data);
            } else {
                ping32dlp::fuzzing::inspect(name, &data);
            }
            replayed += 1;
        }
    }
    for (target, run) in [
        ("rules", ping32dlp::fuzzing::rules as fn(&[u8])),
        ("policy", ping32dlp::fuzzing::policy),
        ("engine_image", ping32dlp::fuzzing::engine_image),
        ("ppt", ping32dlp::fuzzing::ppt_stream),
        ("xml", ping32dlp::fuzzing::xml),
        ("table", ping32dlp::fuzzing::table),
    ] {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for e in dir {
            run(&std::fs::read(e.unwrap().path()).unwrap());
            replayed += 1;
        }
    }
    // The integrations' targets are replayed by their own crates' tests.
    // The directory exists and holds at least the seeds of past findings (see fuzz/README.md).
    assert!(root.is_dir());
    let _ = replayed;
}
