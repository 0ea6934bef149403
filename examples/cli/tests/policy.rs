//! Every policy condition and action through `ping32dlp policy test` on real messages
//! (corpus/policy, made with Python's email package; corpus/extract/mail), with and without an
//! audit trail as history.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ping32dlp"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mail(name: &str) -> String {
    let p = root().join("corpus/policy").join(name);
    let p = if p.exists() {
        p
    } else {
        root().join("corpus/extract/mail").join(name)
    };
    assert!(p.exists(), "{}", p.display());
    p.display().to_string()
}

const HEAD: &str = r#"
[policy]
name = "test"
internal_domains = ["example.co.jp"]
timezone = "+09:00"

[groups]
sales = ["ichiro@example.co.jp"]
"#;

fn write_policy(dir: &Path, rules: &str) -> PathBuf {
    let p = dir.join("policy.toml");
    std::fs::write(&p, format!("{HEAD}\n{rules}")).unwrap();
    p
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `policy test --json` of one policy on one message, at a fixed business-hours time unless
/// the test gives one (the default is now, which would make time-dependent risk vary).
fn verdict(policy: &Path, msg: &str, extra: &[&str]) -> Value {
    let mut cmd = bin();
    cmd.args(["policy", "test", "--json"])
        .arg(policy)
        .arg(msg)
        .args(extra);
    if !extra
        .iter()
        .any(|a| a.starts_with("time=") || *a == "--time")
    {
        cmd.args(["--time", "2026-11-02T10:00:00+09:00"]);
    }
    let o = cmd.output().unwrap();
    serde_json::from_str(ok(&o).trim()).unwrap()
}

fn matched(v: &Value) -> Vec<String> {
    v["matched"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["rule"].as_str().unwrap().to_string())
        .collect()
}

/// Records messages in a state directory (as the integrations do).
fn process(state: &Path, msgs: &[&str], extra: &[&str]) -> Vec<Value> {
    let o = bin()
        .args(["process", "--state"])
        .arg(state)
        .args(msgs)
        .args(extra)
        .output()
        .unwrap();
    ok(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (condition, message, extra args, expected match)
type Case<'a> = (&'a str, &'a str, &'a [&'a str], bool);

fn check_cases(cases: &[Case<'_>]) {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, (cond, msg, extra, expect)) in cases.iter().enumerate() {
        let p = write_policy(
            dir.path(),
            &format!("[[rule]]\nid = \"r{i}\"\naction = \"block\"\nwhen = {cond}\n"),
        );
        let v = verdict(&p, &mail(msg), extra);
        let hit = matched(&v).contains(&format!("r{i}"));
        if hit != *expect {
            failures.push(format!(
                "{cond} on {msg} {extra:?}: expected {expect}, got {hit}: {}",
                v["matched"]
            ));
        }
        if hit {
            assert_eq!(v["action"], "block", "{cond}");
            let reasons = &v["matched"][0]["reasons"];
            assert!(
                reasons.as_array().is_some_and(|r| !r.is_empty()),
                "{cond}: a match explains itself: {reasons}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn message_conditions() {
    check_cases(&[
        (
            r#"{ recipient_domain_in = ["partner.example.com"] }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ recipient_domain_in = ["partner.example.com"] }"#,
            "internal.eml",
            &[],
            false,
        ),
        (
            r#"{ recipient_domain_not_in = ["example.co.jp"] }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ recipient_domain_not_in = ["example.co.jp"] }"#,
            "internal.eml",
            &[],
            false,
        ),
        (r#"{ recipients = "any_external" }"#, "mixed.eml", &[], true),
        (
            r#"{ recipients = "any_external" }"#,
            "internal.eml",
            &[],
            false,
        ),
        (
            r#"{ recipients = "all_external" }"#,
            "renamed.eml",
            &[],
            true,
        ),
        (
            r#"{ recipients = "all_external" }"#,
            "mixed.eml",
            &[],
            false,
        ),
        (
            r#"{ recipients = "all_internal" }"#,
            "internal.eml",
            &[],
            true,
        ),
        (
            r#"{ recipient_count = { min = 3 } }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ recipient_count = { min = 3 } }"#,
            "renamed.eml",
            &[],
            false,
        ),
        (
            r#"{ recipient_count = { min = 3 } }"#,
            "renamed.eml",
            &["--context", "to=x@example.co.jp,y@a.example,z@b.example"],
            true,
        ),
        (
            r#"{ external_recipient_count = { min = 2 } }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ external_recipient_count = { min = 2 } }"#,
            "renamed.eml",
            &[],
            false,
        ),
        (
            r#"{ mixed_external_domains = true }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ mixed_external_domains = true }"#,
            "renamed.eml",
            &[],
            false,
        ),
        (
            r#"{ sender_in = ["ichiro@example.co.jp"] }"#,
            "internal.eml",
            &[],
            true,
        ),
        (
            r#"{ sender_in = ["someone@example.co.jp"] }"#,
            "internal.eml",
            &[],
            false,
        ),
        (
            r#"{ sender_in = ["someone@example.co.jp"] }"#,
            "internal.eml",
            &["--context", "from=someone@example.co.jp"],
            true,
        ),
        (
            r#"{ sender_domain_in = ["example.co.jp"] }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ sender_domain_in = ["example.com"] }"#,
            "mixed.eml",
            &[],
            false,
        ),
        (r#"{ sender_group = "sales" }"#, "mixed.eml", &[], true),
        (r#"{ sender_group = "board" }"#, "mixed.eml", &[], false),
        (
            r#"{ sender_group = "board" }"#,
            "mixed.eml",
            &["--context", "group=board"],
            true,
        ),
        (
            r#"{ channel_in = ["milter", "proxy"] }"#,
            "mixed.eml",
            &["--context", "channel=milter"],
            true,
        ),
        (
            r#"{ channel_in = ["milter", "proxy"] }"#,
            "mixed.eml",
            &["--context", "channel=webmail"],
            false,
        ),
        (
            r#"{ subject_contains = ["社外秘"] }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ subject_contains = ["社外秘"] }"#,
            "internal.eml",
            &[],
            false,
        ),
        (r#"{ body_contains = ["極秘"] }"#, "mixed.eml", &[], true),
        (
            r#"{ body_contains = ["極秘"] }"#,
            "internal.eml",
            &[],
            false,
        ),
        (r#"{ keyword = ["会議室"] }"#, "internal.eml", &[], true),
        (r#"{ keyword = ["会議室"] }"#, "mixed.eml", &[], false),
        (
            r#"{ message_size = { min = 5000 } }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ message_size = { min = 5000 } }"#,
            "internal.eml",
            &[],
            false,
        ),
        (
            r#"{ message_size = { max = 1000 } }"#,
            "internal.eml",
            &[],
            true,
        ),
        (
            r#"{ time_of_day = { from = "22:00", to = "06:00" } }"#,
            "mixed.eml",
            &["--time", "2026-11-02T23:30:00+09:00"],
            true,
        ),
        (
            r#"{ time_of_day = { from = "22:00", to = "06:00" } }"#,
            "quote.eml",
            &[],
            false,
        ),
        (
            r#"{ time_of_day = { from = "22:00", to = "06:00" } }"#,
            "quote.eml",
            &["--context", "time=2026-11-03T02:00:00+09:00"],
            true,
        ),
        (
            r#"{ weekday_in = ["sat", "sun"] }"#,
            "renamed.eml",
            &["--time", "2026-11-07T09:00:00+09:00"],
            true,
        ),
        (
            r#"{ weekday_in = ["sat", "sun"] }"#,
            "quote.eml",
            &[],
            false,
        ),
        (r#"{ risk_score = { min = 50 } }"#, "mixed.eml", &[], true),
        (
            r#"{ risk_score = { min = 50 } }"#,
            "internal.eml",
            &[],
            false,
        ),
    ]);
}

#[test]
fn attachment_and_content_conditions() {
    check_cases(&[
        (
            r#"{ attachment_count = { min = 1 } }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ attachment_count = { min = 1 } }"#,
            "internal.eml",
            &[],
            false,
        ),
        (
            r#"{ attachment_count = { min = 4 } }"#,
            "08-typical.eml",
            &[],
            true,
        ),
        (r#"{ true_type_in = ["xlsx"] }"#, "renamed.eml", &[], true),
        (r#"{ true_type_in = ["xlsx"] }"#, "quote.eml", &[], false),
        (r#"{ true_type_in = ["pdf"] }"#, "quote.eml", &[], true),
        (r#"{ extension_in = ["txt"] }"#, "renamed.eml", &[], true),
        (r#"{ extension_in = [".xlsx"] }"#, "mixed.eml", &[], true),
        (r#"{ extension_in = ["txt"] }"#, "mixed.eml", &[], false),
        (r#"{ extension_mismatch = true }"#, "renamed.eml", &[], true),
        (r#"{ extension_mismatch = true }"#, "mixed.eml", &[], false),
        (
            r#"{ attachment_size = { min = 5000 } }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ attachment_size = { min = 5000 } }"#,
            "internal.eml",
            &[],
            false,
        ),
        (r#"{ detector = ["jp_my_number"] }"#, "mixed.eml", &[], true),
        (
            r#"{ detector = ["jp_my_number"] }"#,
            "internal.eml",
            &[],
            false,
        ),
        (
            r#"{ detector = ["jp_my_number"], min_confidence = "high", min_unique = 2 }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ detector = ["jp_my_number"], min_unique = 50 }"#,
            "mixed.eml",
            &[],
            false,
        ),
        (
            r#"{ detector = ["credit_card"], scope = "attachment", min_unique = 2 }"#,
            "08-typical.eml",
            &[],
            true,
        ),
        (
            r#"{ detector = ["credit_card"], scope = "attachment", min_unique = 3 }"#,
            "mixed.eml",
            &[],
            false,
        ),
        (
            r#"{ detector = ["credit_card"], scope = "message", min_unique = 3 }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ detector = ["any"], min_confidence = "low" }"#,
            "quote.eml",
            &[],
            true,
        ),
        (
            r#"{ unscannable = ["encrypted"] }"#,
            "04a-ppap-zip.eml",
            &[],
            true,
        ),
        (
            r#"{ unscannable = ["encrypted"] }"#,
            "mixed.eml",
            &[],
            false,
        ),
        (
            r#"{ unscannable = ["any"] }"#,
            "04a-ppap-zip.eml",
            &[],
            true,
        ),
        (
            r#"{ all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }"#,
            "mixed.eml",
            &[],
            true,
        ),
        (
            r#"{ all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }"#,
            "internal.eml",
            &[],
            false,
        ),
        (
            r#"{ any = [{ extension_mismatch = true }, { subject_contains = ["社外秘"] }] }"#,
            "renamed.eml",
            &[],
            true,
        ),
        (
            r#"{ any = [{ extension_mismatch = true }, { subject_contains = ["社外秘"] }] }"#,
            "quote.eml",
            &[],
            false,
        ),
        (
            r#"{ not = { recipients = "any_external" } }"#,
            "internal.eml",
            &[],
            true,
        ),
        (
            r#"{ not = { recipients = "any_external" } }"#,
            "mixed.eml",
            &[],
            false,
        ),
    ]);
}

#[test]
fn origin_comes_from_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_policy(
        dir.path(),
        "[[rule]]\nid = \"r\"\naction = \"audit\"\nwhen = { attachment_count = { min = 1 } }\n",
    );
    let v = verdict(
        &p,
        &mail("mixed.eml"),
        &[
            "--context",
            r"origin=顧客一覧.xlsx=C:\Users\ichiro\Desktop\顧客一覧.xlsx",
        ],
    );
    assert_eq!(
        v["facts"]["attachments"][0]["origin"],
        r"C:\Users\ichiro\Desktop\顧客一覧.xlsx"
    );
}

/// Conditions that read the audit trail: new domains, PPAP pairs, rates.
#[test]
fn history_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state_s = state.display().to_string();
    let with_state: &[&str] = &["--state", &state_s];
    // New external domain: before anything was sent, and after.
    let p = write_policy(
        dir.path(),
        "[[rule]]\nid = \"new\"\naction = \"alert\"\nwhen = { new_external_domain = true }\n",
    );
    assert_eq!(matched(&verdict(&p, &mail("renamed.eml"), &[])), ["new"]);
    process(
        &state,
        &[&mail("quote.eml")],
        &["--context", "time=2026-11-01T09:00:00+09:00"],
    );
    // Before that mail, the domain was new.
    let v = verdict(
        &p,
        &mail("renamed.eml"),
        &[
            "--state",
            &state_s,
            "--context",
            "time=2026-10-31T09:00:00+09:00",
        ],
    );
    assert_eq!(matched(&v), ["new"]);
    // partner.example.com was mailed (quote.eml went to d@partner.example.com).
    assert!(matched(&verdict(&p, &mail("renamed.eml"), with_state)).is_empty());
    // other.example.org was not: mixed.eml still matches.
    let v = verdict(&p, &mail("mixed.eml"), with_state);
    assert_eq!(matched(&v), ["new"]);
    assert!(v["matched"][0]["reasons"][0]
        .as_str()
        .unwrap()
        .contains("other.example.org"));

    // PPAP: the encrypted zip, then the password mail to the same recipient.
    let p = write_policy(
        dir.path(),
        "[[rule]]\nid = \"ppap\"\naction = \"hold\"\nwhen = { ppap = true, within = \"30m\" }\n",
    );
    assert!(matched(&verdict(&p, &mail("04b-ppap-password.eml"), with_state)).is_empty());
    process(
        &state,
        &[&mail("04a-ppap-zip.eml")],
        &["--context", "time=2026-11-02T10:00:00+09:00"],
    );
    let v = verdict(
        &p,
        &mail("04b-ppap-password.eml"),
        &[
            "--state",
            &state_s,
            "--context",
            "time=2026-11-02T10:05:00+09:00",
        ],
    );
    assert_eq!(matched(&v), ["ppap"]);
    assert_eq!(v["action"], "hold");
    // Outside the window: no pair.
    let v = verdict(
        &p,
        &mail("04b-ppap-password.eml"),
        &[
            "--state",
            &state_s,
            "--context",
            "time=2026-11-02T11:00:00+09:00",
        ],
    );
    assert!(matched(&v).is_empty());

    // Rates: the same file sent outside 3 times within a day; mails and bytes per sender.
    let at = "time=2026-11-03T11:00:00+09:00";
    let p = write_policy(
        dir.path(),
        r#"
[[rule]]
id = "same-file"
action = "alert"
when = { same_attachment_sent_external = { min = 3, within = "1d" } }

[[rule]]
id = "mails"
action = "alert"
when = { sender_external_mails = { min = 4, within = "1h" } }

[[rule]]
id = "bytes"
action = "alert"
when = { sender_external_bytes = { min = 100000, within = "1h" } }
"#,
    );
    let ctx: &[&str] = &["--state", &state_s, "--context", at];
    let v = verdict(&p, &mail("quote.eml"), ctx);
    assert!(matched(&v).is_empty(), "{}", v["matched"]);
    // quote.eml at that time (the first one was two days earlier, outside the windows).
    process(&state, &[&mail("quote.eml")], &["--context", at]);
    assert!(matched(&verdict(&p, &mail("quote.eml"), ctx)).is_empty());
    process(&state, &[&mail("quote.eml")], &["--context", at]);
    let v = verdict(&p, &mail("quote.eml"), ctx);
    assert_eq!(matched(&v), ["same-file"], "{}", v["matched"]);
    process(&state, &[&mail("quote.eml")], &["--context", at]);
    let v = verdict(&p, &mail("quote.eml"), ctx);
    assert_eq!(
        matched(&v),
        ["same-file", "mails", "bytes"],
        "{}",
        v["matched"]
    );
}

#[test]
fn actions_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_policy(
        dir.path(),
        r#"
[[rule]]
id = "tag-external"
action = "tag"
add_header = "X-DLP-External: yes"
subject_prefix = "[社外]"
when = { recipients = "any_external" }

[[rule]]
id = "audit-all"
action = "audit"
when = { attachment_count = { min = 0 } }

[[rule]]
id = "alert-cards"
action = "alert"
severity = "high"
when = { detector = ["credit_card"] }

[[rule]]
id = "hold-ids"
action = "hold"
approvers = ["boss@example.co.jp"]
approver_group = "managers"
expires = "2d"
evidence_days = 30
message_ja = "マイナンバーを含むため承認待ちです"
message_en = "Held for approval: My Numbers"
when = { all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }

[[rule]]
id = "block-monitor"
mode = "monitor"
action = "block"
when = { detector = ["jp_my_number"], min_unique = 2 }

[[rule]]
id = "allow-internal"
action = "allow"
stop = true
when = { recipients = "all_internal" }

[[rule]]
id = "never-reached-for-internal"
action = "block"
when = { attachment_count = { min = 0 } }
unless = { recipients = "any_external" }
"#,
    );
    // External with My Numbers and a card: hold (the monitor-mode block does not count).
    let v = verdict(&p, &mail("mixed.eml"), &[]);
    assert_eq!(v["action"], "hold");
    assert_eq!(v["would_action"], "block");
    assert_eq!(
        matched(&v),
        [
            "tag-external",
            "audit-all",
            "alert-cards",
            "hold-ids",
            "block-monitor"
        ]
    );
    assert_eq!(v["matched"][4]["mode"], "monitor");
    assert_eq!(v["matched"][2]["severity"], "high");
    assert_eq!(v["approvers"][0], "boss@example.co.jp");
    assert_eq!(v["approver_group"], "managers");
    assert_eq!(v["expires_seconds"], 172800);
    assert_eq!(v["evidence_days"], 30);
    assert_eq!(v["message_ja"], "マイナンバーを含むため承認待ちです");
    assert_eq!(v["message_en"], "Held for approval: My Numbers");
    assert_eq!(v["add_headers"][0]["name"], "X-DLP-External");
    assert_eq!(v["subject_prefix"], "[社外]");
    // Risk explained by weighted signals that add up.
    let sum: u64 = v["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["points"].as_u64().unwrap())
        .sum();
    assert_eq!(v["risk"].as_u64().unwrap(), sum.min(100));
    // Internal: the most severe enforced action (audit), and stop ends the evaluation before
    // the block rule.
    let v = verdict(&p, &mail("internal.eml"), &[]);
    assert_eq!(v["action"], "audit");
    assert_eq!(matched(&v), ["audit-all", "allow-internal"]);
    // The exception: an external mail skips the block rule; nothing else blocks.
    let v = verdict(&p, &mail("quote.eml"), &[]);
    assert!(!matched(&v).contains(&"never-reached-for-internal".to_string()));

    // A block rule: the reply text in both languages, and the explanation in words.
    let p = write_policy(
        dir.path(),
        r#"
[[rule]]
id = "block-cards"
action = "block"
message_ja = "カード番号は社外に送れません"
message_en = "Card numbers cannot be sent outside"
when = { all = [{ recipients = "any_external" }, { detector = ["credit_card"] }] }
"#,
    );
    let o = bin()
        .args(["policy", "test"])
        .arg(&p)
        .arg(mail("mixed.eml"))
        .output()
        .unwrap();
    let text = ok(&o);
    assert!(text.starts_with("verdict: BLOCK"), "{text}");
    assert!(text.contains("rule block-cards -> block"), "{text}");
    assert!(text.contains("because credit_card:"), "{text}");
    assert!(text.contains("カード番号は社外に送れません"), "{text}");
    assert!(
        text.contains("Card numbers cannot be sent outside"),
        "{text}"
    );
    // Masked in the explanation.
    assert!(
        !text.contains("4742 1809 6792 9089") && !text.contains("4742180967929089"),
        "{text}"
    );
}

#[test]
fn tags_are_applied_to_processed_mail() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_policy(
        dir.path(),
        "[[rule]]\nid = \"t\"\naction = \"tag\"\nadd_header = \"X-DLP: external\"\nsubject_prefix = \"[社外]\"\nwhen = { recipients = \"any_external\" }\n",
    );
    let out = dir.path().join("out");
    let acks = process(
        &dir.path().join("state"),
        &[&mail("mixed.eml")],
        &[
            "--policy",
            p.to_str().unwrap(),
            "--tagged-out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(acks[0]["action"], "tag");
    let tagged = std::fs::read(out.join("mixed-0.eml")).unwrap();
    let s = String::from_utf8_lossy(&tagged);
    assert!(s.starts_with("X-DLP: external"), "{s}");
    // The prefixed subject decodes to "[社外] 【社外秘】月次報告" (scan reads it back).
    let o = bin()
        .args(["scan", "--json"])
        .arg(out.join("mixed-0.eml"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["message"]["subject"], "[社外] 【社外秘】月次報告");
}

#[test]
fn policy_check_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_policy(
        dir.path(),
        "[[rule]]\nid = \"r\"\naction = \"block\"\nwhen = { detector = [\"jp_my_number\"], min_confidence = \"hi\" }\n",
    );
    let o = bin().args(["policy", "check"]).arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("policy.toml:13"), "{e}");
    assert!(e.contains("rule[0].when.min_confidence"), "{e}");
    let p = write_policy(dir.path(), "[alerts]\nsyslog = \"localhost:514\"\n");
    let o = bin().args(["policy", "check"]).arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("alerts") && e.contains("udp://"), "{e}");
    // A detector that does not exist would never match: refused, with the rule named and the
    // place where the id is written (file, line, column, field), once.
    let p = write_policy(
        dir.path(),
        "[[rule]]\nid = \"typo\"\naction = \"block\"\n\
         when = { all = [{ recipients = \"any_external\" }, { detector = [\"credit_card\", \"jp_mynumber\"] }] }\n",
    );
    let o = bin().args(["policy", "check"]).arg(&p).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    let text = std::fs::read_to_string(&p).unwrap();
    let line = text[..text.find("jp_mynumber").unwrap()].lines().count();
    assert!(
        e.contains(&format!("policy.toml:{line}:"))
            && e.contains("rule[0].when.all[1].detector[1]: "),
        "{e}"
    );
    assert!(
        e.contains("rule `typo`: unknown detector `jp_mynumber`"),
        "{e}"
    );
    assert_eq!(e.matches("policy.toml").count(), 1, "{e}");
    // The default policy checks, and `policy default` prints it.
    let o = bin().args(["policy", "default"]).output().unwrap();
    let d = dir.path().join("default.toml");
    std::fs::write(&d, &o.stdout).unwrap();
    let o = bin().args(["policy", "check"]).arg(&d).output().unwrap();
    assert!(ok(&o).contains("monitor"));
}

/// `policy test` judges like live processing: at the time given (or now), never at the
/// sender-written Date header, so the same mail gets the same risk in the CLI and in C.
#[test]
fn the_date_header_does_not_set_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_policy(dir.path(), "");
    let signals = |v: &Value| -> Vec<String> {
        v["signals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["signal"].as_str().unwrap().to_string())
            .collect()
    };
    // Dated 23:30 by its sender, judged at 10:00 on a Monday: business hours.
    let v = verdict(
        &p,
        &mail("mixed.eml"),
        &["--time", "2026-11-02T10:00:00+09:00"],
    );
    assert!(
        !signals(&v).iter().any(|s| s.contains("business hours")),
        "{v}"
    );
    // Dated 10:00 by its sender, sent at 03:00: outside business hours all the same.
    let raw = std::fs::read_to_string(mail("mixed.eml")).unwrap().replace(
        "Date: Mon, 02 Nov 2026 23:30:00 +0900",
        "Date: Mon, 02 Nov 2026 10:00:00 +0900",
    );
    let m = dir.path().join("dated-in-hours.eml");
    std::fs::write(&m, raw).unwrap();
    let v = verdict(
        &p,
        m.to_str().unwrap(),
        &["--time", "2026-11-03T03:00:00+09:00"],
    );
    assert!(
        signals(&v).iter().any(|s| s.contains("business hours")),
        "{v}"
    );
    // A --time that is not a time is a clear error.
    let o = bin()
        .args(["policy", "test", "--time", "yesterday"])
        .arg(&p)
        .arg(mail("mixed.eml"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--time `yesterday`"));
}
