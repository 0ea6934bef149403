//! Unit tests of the boundary itself: header drift, panics, NULL handling. The C tests in
//! `ffi/tests/*.c` exercise the built library from C under sanitizers.

use std::ffi::CStr;
use std::path::Path;
use std::ptr;

use crate::*;

fn generated_header() -> String {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_config(cfg)
        .with_crate(crate_dir)
        .generate()
        .expect("cbindgen")
        .write(&mut out);
    String::from_utf8(out).expect("utf-8 header")
}

/// The committed header is what cbindgen makes of the sources; `PING32DLP_BLESS=1` rewrites it.
#[test]
fn header_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/ping32dlp.h");
    let fresh = generated_header();
    if std::env::var_os("PING32DLP_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write header");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/ping32dlp.h is stale: run PING32DLP_BLESS=1 cargo test -p ping32dlp-ffi header"
    );
}

/// Every function the header declares is in `ffi/symbols.txt`, and the other way round.
#[test]
fn symbol_list_matches_header() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = generated_header();
    // Comments out, then every `ping32dlp_name(` outside a typedef is a declared function.
    let code: String = header
        .lines()
        .filter(|l| !l.trim_start().starts_with("//") && !l.contains("typedef"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut declared: Vec<String> = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("ping32dlp_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if tail[end..].trim_start().starts_with('(') {
            declared.push(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    declared.sort();
    declared.dedup();
    let path = dir.join("symbols.txt");
    if std::env::var_os("PING32DLP_BLESS").is_some() {
        std::fs::write(&path, declared.join("\n") + "\n").expect("write symbols");
        return;
    }
    let listed: Vec<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        declared, listed,
        "ffi/symbols.txt is stale (PING32DLP_BLESS=1 regenerates it)"
    );
}

/// Every declared function's comment says who owns what (an `Ownership:` line), as
/// rustls-ffi's header does: a vendor reads the header, not the sources.
#[test]
fn every_function_states_ownership() {
    let header = generated_header();
    let lines: Vec<&str> = header.lines().collect();
    let mut missing = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if t.starts_with("//")
            || t.starts_with('#')
            || t.starts_with("typedef")
            || l.starts_with(' ')
        {
            continue;
        }
        let Some(open) = t.find("ping32dlp_").filter(|_| t.contains('(')) else {
            continue;
        };
        let name: String = t[open..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // The comment block right above the declaration.
        let doc: Vec<&str> = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.trim_start().starts_with("//"))
            .copied()
            .collect();
        if !doc.iter().any(|d| d.contains("Ownership:")) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "no `Ownership:` line: {missing:?}");
}

#[test]
fn version_macros_match_the_package() {
    assert_eq!(
        format!("{PING32DLP_VERSION_MAJOR}.{PING32DLP_VERSION_MINOR}.{PING32DLP_VERSION_PATCH}"),
        env!("CARGO_PKG_VERSION")
    );
    let v = unsafe { CStr::from_ptr(ping32dlp_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

fn scanner() -> (*mut ping32dlp_engine, *mut ping32dlp_scanner) {
    let mut e = ptr::null_mut();
    assert_eq!(ping32dlp_engine_new_builtin(&mut e), PING32DLP_OK);
    let mut s = ptr::null_mut();
    assert_eq!(ping32dlp_scanner_new(e, &mut s), PING32DLP_OK);
    (e, s)
}

/// A panic deep inside a scan comes back as PING32DLP_ERR_PANIC with words in last_error,
/// leaves the report pointer unwritten, releases the scanner's busy flag, and the next scan
/// on the same scanner works.
#[test]
fn panic_inside_the_library_is_an_error_code() {
    let (e, s) = scanner();
    let text = "個人番号 1234 5678 9018";
    let mut report: *const ping32dlp_report = ptr::null();
    test_hook::arm();
    let r = ping32dlp_scanner_scan_text(s, text.as_ptr(), text.len(), ptr::null(), 0, &mut report);
    assert_eq!(r, PING32DLP_ERR_PANIC);
    assert!(report.is_null(), "outputs are written only on success");
    let msg = unsafe { CStr::from_ptr(ping32dlp_last_error()) };
    assert!(msg.to_str().unwrap().contains("injected panic"), "{msg:?}");
    let r = ping32dlp_scanner_scan_text(s, text.as_ptr(), text.len(), ptr::null(), 0, &mut report);
    assert_eq!(r, PING32DLP_OK);
    assert_eq!(ping32dlp_report_finding_count(report), 1);
    ping32dlp_scanner_free(s);
    ping32dlp_engine_free(e);
}

#[test]
fn null_arguments_are_errors_and_accessors_are_empty() {
    let mut report: *const ping32dlp_report = ptr::null();
    assert_eq!(
        ping32dlp_scanner_scan_text(ptr::null_mut(), ptr::null(), 0, ptr::null(), 0, &mut report),
        PING32DLP_ERR_NULL
    );
    let (e, s) = scanner();
    assert_eq!(
        ping32dlp_scanner_scan_text(s, ptr::null(), 5, ptr::null(), 0, &mut report),
        PING32DLP_ERR_NULL
    );
    assert_eq!(
        ping32dlp_scanner_scan_text(s, ptr::null(), 0, ptr::null(), 1, &mut report),
        PING32DLP_ERR_INVALID_ARGUMENT
    );
    assert_eq!(ping32dlp_report_finding_count(ptr::null()), 0);
    assert!(ping32dlp_report_finding(ptr::null(), 0).is_null());
    let empty = ping32dlp_finding_detector(ptr::null());
    assert!(!empty.data.is_null());
    assert_eq!(empty.len, 0);
    ping32dlp_scanner_free(ptr::null_mut());
    ping32dlp_engine_free(ptr::null_mut());
    ping32dlp_scanner_free(s);
    ping32dlp_engine_free(e);
}

#[test]
fn every_result_code_has_a_name() {
    for code in [
        0u32, 100, 101, 102, 200, 201, 300, 301, 302, 303, 304, 305, 900,
    ] {
        let s = unsafe { CStr::from_ptr(ping32dlp_result_str(code)) };
        assert!(s.to_str().unwrap().starts_with("PING32DLP_"), "{code}");
    }
    let s = unsafe { CStr::from_ptr(ping32dlp_result_str(7)) };
    assert_eq!(s.to_str().unwrap(), "unknown result code");
}
