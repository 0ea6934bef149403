//! The audit trail end to end through the command: durability under kill -9, two processes
//! writing, search and stats, approvals across invocations, replay over a generated history,
//! and no raw values in anything the commands print or store.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ping32dlp"))
}

fn mail(name: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus");
    let p = root.join("policy").join(name);
    let p = if p.exists() {
        p
    } else {
        root.join("extract/mail").join(name)
    };
    p.display().to_string()
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

fn run(args: &[&str]) -> String {
    ok(&bin().args(args).output().unwrap())
}

fn lines(s: &str) -> Vec<Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn search(state: &str, filters: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "audit", "search", "--state", state, "--format", "json", "--limit", "100000",
    ];
    args.extend_from_slice(filters);
    lines(&run(&args))
}

const HOLD_POLICY: &str = r#"
[policy]
internal_domains = ["example.co.jp"]

[[rule]]
id = "hold-ids"
action = "hold"
approvers = ["boss@example.co.jp"]
evidence_days = 7
when = { all = [{ recipients = "any_external" }, { detector = ["jp_my_number"] }] }

[approval]
notify_command = ""   # no notices from tests (the default would run /usr/sbin/sendmail)
"#;

/// kill -9 in the middle of 1,000 inspections: every acknowledged record is in the database.
#[test]
fn killed_mid_run_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut child = bin()
        .args(["process", "--repeat", "1000", "--jobs", "2", "--state"])
        .arg(&state)
        .arg(mail("quote.eml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut line = String::new();
    while acked.len() < 150 {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let v: Value = serde_json::from_str(&line).unwrap();
        acked.push(v["record"].as_i64().unwrap());
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Lines already in the pipe were acknowledged too.
    for l in out.lines() {
        let Ok(l) = l else { break };
        if let Ok(v) = serde_json::from_str::<Value>(&l) {
            acked.push(v["record"].as_i64().unwrap());
        }
    }
    assert!(acked.len() >= 150);
    assert!(acked.len() < 1000, "the run was killed before the end");
    let stored: std::collections::HashSet<i64> = search(state.to_str().unwrap(), &[])
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    let missing: Vec<_> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged but missing: {missing:?}");
    // The database is usable after the crash: more records go in.
    let acks = lines(&run(&[
        "process",
        "--state",
        state.to_str().unwrap(),
        &mail("quote.eml"),
    ]));
    assert!(!stored.contains(&acks[0]["record"].as_i64().unwrap()));
}

#[test]
fn two_processes_write_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let spawn = |m: &str| {
        bin()
            .args(["process", "--repeat", "60", "--jobs", "2", "--state"])
            .arg(&state)
            .arg(mail(m))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Create the database first so that both start on a migrated schema... or not: both at once.
    let a = spawn("quote.eml");
    let b = spawn("internal.eml");
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut ids: Vec<i64> = lines(&ok(&a))
        .into_iter()
        .chain(lines(&ok(&b)))
        .map(|v| v["record"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 120);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 120, "ids are unique");
    assert_eq!(search(state.to_str().unwrap(), &[]).len(), 120);
    assert_eq!(
        search(
            state.to_str().unwrap(),
            &[
                "--sender",
                "ichiro@example.co.jp",
                "--recipient",
                "hanako@example.co.jp"
            ]
        )
        .len(),
        60
    );
}

#[test]
fn search_filters_formats_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("state");
    let st = s.to_str().unwrap();
    run(&[
        "process",
        "--state",
        st,
        "--context",
        "user=ichiro",
        "--context",
        "time=2026-11-02T10:00:00+09:00",
        &mail("mixed.eml"),
    ]);
    run(&[
        "process",
        "--state",
        st,
        "--context",
        "user=ichiro",
        "--context",
        "time=2026-11-03T10:00:00+09:00",
        &mail("quote.eml"),
        &mail("quote.eml"),
    ]);
    run(&[
        "process",
        "--state",
        st,
        "--context",
        "user=hanako",
        "--context",
        "time=2026-11-04T10:00:00+09:00",
        &mail("internal.eml"),
        &mail("02-alternative.eml"),
    ]);
    let n = |f: &[&str]| search(st, f).len();
    assert_eq!(n(&[]), 5);
    assert_eq!(n(&["--user", "ichiro"]), 3);
    assert_eq!(n(&["--sender", "olivia@example.com"]), 1);
    assert_eq!(n(&["--recipient", "d@partner.example.com"]), 2);
    assert_eq!(n(&["--domain", "partner.example.com"]), 4);
    assert_eq!(n(&["--domain", "other.example.org"]), 1);
    assert_eq!(n(&["--detector", "credit_card"]), 4);
    assert_eq!(n(&["--verdict", "allow"]), 5);
    assert_eq!(n(&["--verdict", "block"]), 0);
    assert_eq!(n(&["--since", "2026-11-03", "--until", "2026-11-04"]), 2);
    assert_eq!(n(&["--since", "2026-11-03T10:00:01+09:00"]), 2);
    let quote = search(st, &["--recipient", "d@partner.example.com"]);
    let sha = quote[0]["attachments"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(n(&["--sha256", &sha]), 2);
    assert_eq!(n(&["--sha256", &sha.to_uppercase()]), 2);
    assert_eq!(
        n(&[
            "--user",
            "ichiro",
            "--detector",
            "jp_my_number",
            "--since",
            "2026-11-03"
        ]),
        2
    );
    // Newest first.
    let all = search(st, &[]);
    assert!(all[0]["time"].as_i64() >= all[4]["time"].as_i64());
    // CSV: a header and one row per record, fields quoted where needed.
    let csv = run(&[
        "audit", "search", "--state", st, "--format", "csv", "--user", "ichiro",
    ]);
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 4);
    assert!(rows[0].starts_with("id,time,channel,user,sender,recipients,subject"));
    assert!(rows[1].contains("見積書"), "{csv}");
    // For Japanese Excel: UTF-8 with a BOM and CRLF, or CP932.
    let raw = |enc: &str| {
        let o = bin()
            .args([
                "audit",
                "search",
                "--state",
                st,
                "--format",
                "csv",
                "--user",
                "ichiro",
                "--csv-encoding",
                enc,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let bom = raw("utf-8-bom");
    assert!(bom.starts_with(&[0xEF, 0xBB, 0xBF]) && bom.ends_with(b"\r\n"));
    assert_eq!(
        String::from_utf8_lossy(&bom[3..]).replace("\r\n", "\n"),
        csv
    );
    let sjis = raw("cp932");
    let (back, _, bad) = encoding_rs::SHIFT_JIS.decode(&sjis);
    assert!(!bad && back.replace("\r\n", "\n") == csv, "{back}");
    assert!(sjis.windows(2).any(|w| w == [0x8C, 0xA9]), "見 in CP932");
    let o = bin()
        .args([
            "audit",
            "search",
            "--state",
            st,
            "--format",
            "csv",
            "--csv-encoding",
            "latin1",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("--csv-encoding `latin1`"));
    // Table.
    let table = run(&[
        "audit",
        "search",
        "--state",
        st,
        "--detector",
        "jp_my_number",
    ]);
    assert!(table.contains("3 record(s)"), "{table}");
    assert!(table.contains("files: 見積書.pdf"), "{table}");
    // Bad filters are named.
    let o = bin()
        .args(["audit", "search", "--state", st, "--verdict", "blok"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--verdict `blok`"));
    // Stats.
    let v: Value = serde_json::from_str(&run(&[
        "audit",
        "stats",
        "--state",
        st,
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-05",
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["per_day"].as_array().unwrap().len(), 3);
    assert_eq!(v["per_day"][1], serde_json::json!(["2026-11-03", 2, 2]));
    assert_eq!(
        v["top_senders"][0],
        serde_json::json!(["ichiro@example.co.jp", 3])
    );
    assert_eq!(
        v["top_domains"][0],
        serde_json::json!(["partner.example.com", 4])
    );
    assert!(v["top_detectors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d[0] == "jp_my_number" && d[1] == 3));
    assert_eq!(v["repeated_files"][0][1], "見積書.pdf");
    assert_eq!(v["repeated_files"][0][2], 2);
    let text = run(&[
        "audit",
        "stats",
        "--state",
        st,
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-05",
    ]);
    assert!(text.contains("top external domains"), "{text}");
    // Reports: each sender's risk with its reasons; per department (none here).
    let rep: Value = serde_json::from_str(&run(&[
        "audit",
        "report",
        "--state",
        st,
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-06",
        "--format",
        "json",
    ]))
    .unwrap();
    let senders = rep["senders"].as_array().unwrap();
    assert!(!senders.is_empty());
    assert!(senders
        .windows(2)
        .all(|w| w[0]["risk"].as_u64() >= w[1]["risk"].as_u64()));
    assert!(
        senders[0]["why"].as_array().is_some_and(|w| !w.is_empty()),
        "{rep}"
    );
    assert_eq!(rep["departments"][0]["department"], "(none)");
    let csv = run(&[
        "audit",
        "report",
        "--state",
        st,
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-06",
        "--format",
        "csv",
        "--by",
        "department",
    ]);
    assert!(
        csv.starts_with("department,mails,external,held,blocked,senders,top_files\n(none),"),
        "{csv}"
    );
    let html = run(&[
        "audit",
        "report",
        "--state",
        st,
        "--since",
        "2026-11-01",
        "--format",
        "html",
    ]);
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("送信者別リスク"));
    let o = bin()
        .args(["audit", "report", "--state", st, "--by", "team"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--by `team`"));
    // Every search and export above is in the admin log, as user@host from the CLI.
    let log = lines(&run(&[
        "audit",
        "admin-log",
        "--state",
        st,
        "--json",
        "--limit",
        "1000",
    ]));
    assert!(log
        .iter()
        .all(|e| e["client"] == "cli" && e["actor"].as_str().unwrap().contains('@')));
    assert!(
        log.iter()
            .any(|e| e["action"] == "audit_export" && e["detail"] == "user=ichiro"),
        "{log:?}"
    );
    assert!(log.iter().any(|e| e["action"] == "audit_search"
        && e["detail"].as_str().unwrap().contains("since=2026-11-03")));
    let text = run(&["audit", "admin-log", "--state", st, "--limit", "1"]);
    assert_eq!(text.lines().count(), 1, "{text}");
    // No database: a clear message.
    let o = bin()
        .args(["audit", "search", "--state"])
        .arg(dir.path().join("none"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no audit database at"));
}

#[test]
fn approvals_across_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("hold.toml");
    std::fs::write(&policy, HOLD_POLICY).unwrap();
    let st = dir.path().join("state");
    let st = st.to_str().unwrap();
    let acks = lines(&run(&[
        "process",
        "--state",
        st,
        "--policy",
        policy.to_str().unwrap(),
        &mail("mixed.eml"),
        &mail("quote.eml"),
    ]));
    assert_eq!(acks[0]["action"], "hold");
    let id = acks[0]["approval"].as_str().unwrap().to_string();
    let id2 = acks[1]["approval"].as_str().unwrap().to_string();
    let pending = lines(&run(&["approvals", "list", "--state", st, "--json"]));
    assert_eq!(pending.len(), 2);
    assert_eq!(
        lines(&run(&[
            "approvals",
            "list",
            "--state",
            st,
            "--json",
            "--approver",
            "someone@example.co.jp"
        ]))
        .len(),
        0
    );
    // Looking at it (and at its attachment) is recorded.
    let out = dir.path().join("copy.xlsx");
    let shown = run(&[
        "approvals",
        "show",
        &id,
        "--state",
        st,
        "--as",
        "boss@example.co.jp",
        "--attachment",
        "顧客一覧.xlsx",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(shown.contains("顧客一覧.xlsx"), "{shown}");
    assert!(std::fs::read(&out).unwrap().starts_with(b"PK"));
    // The held message itself (kept by us for `process`).
    let held = dir.path().join("held.eml");
    run(&[
        "approvals",
        "show",
        &id,
        "--state",
        st,
        "--as",
        "auditor",
        "--message",
        "--out",
        held.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&held).unwrap(),
        std::fs::read(mail("mixed.eml")).unwrap()
    );
    // Decisions: not an approver; a bad token; the approver; a second decision.
    let o = bin()
        .args([
            "approvals",
            "approve",
            &id,
            "--state",
            st,
            "--as",
            "mallory@example.co.jp",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an approver"));
    let o = bin()
        .args([
            "approvals",
            "approve",
            &id,
            "--state",
            st,
            "--as",
            "boss@example.co.jp",
            "--token",
            "00",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("token"));
    let v: Value = serde_json::from_str(&run(&[
        "approvals",
        "show",
        &id,
        "--state",
        st,
        "--as",
        "boss@example.co.jp",
        "--json",
    ]))
    .unwrap();
    let token = v["token"].as_str().unwrap().to_string();
    run(&[
        "approvals",
        "approve",
        &id,
        "--state",
        st,
        "--as",
        "boss@example.co.jp",
        "--token",
        &token,
        "--comment",
        "確認済み",
    ]);
    let o = bin()
        .args([
            "approvals",
            "reject",
            &id,
            "--state",
            st,
            "--as",
            "boss@example.co.jp",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already decided"));
    run(&[
        "approvals",
        "reject",
        &id2,
        "--state",
        st,
        "--policy",
        policy.to_str().unwrap(),
        "--admin",
        "--as",
        "secadmin",
        "--comment",
        "no",
    ]);
    // The history, in order, with who and when.
    let v: Value = serde_json::from_str(&run(&[
        "approvals",
        "show",
        &id,
        "--state",
        st,
        "--as",
        "auditor",
        "--json",
    ]))
    .unwrap();
    let ev: Vec<String> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["actor"].as_str().unwrap(),
                e["kind"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        ev,
        [
            "system:created",
            "boss@example.co.jp:view",
            "boss@example.co.jp:view_attachment",
            "auditor:view",
            "auditor:view_message",
            "boss@example.co.jp:view",
            "boss@example.co.jp:approve",
            "auditor:view"
        ]
    );
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["time"].as_i64().unwrap() > 1_700_000_000));
    assert_eq!(v["approval"]["state"], "approved");
    assert_eq!(v["approval"]["comment"], "確認済み");
    assert_eq!(
        lines(&run(&[
            "approvals",
            "list",
            "--state",
            st,
            "--json",
            "--status",
            "discarded"
        ]))
        .len(),
        1
    );
    assert_eq!(
        lines(&run(&["approvals", "list", "--state", st, "--json"])).len(),
        0
    );
    // Evidence by SHA-256.
    let rec = search(st, &["--recipient", "d@partner.example.com"]);
    let sha = rec[0]["attachments"][0]["sha256"].as_str().unwrap();
    let copy = dir.path().join("quote.pdf");
    run(&[
        "evidence",
        "get",
        sha,
        "--state",
        st,
        "--out",
        copy.to_str().unwrap(),
    ]);
    assert!(std::fs::read(&copy).unwrap().starts_with(b"%PDF"));
}

/// Replay over a generated history: 60 mails over 30 days, re-evaluated with an enforcing policy.
#[test]
fn replay_shows_what_would_change() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("state");
    let st = st.to_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mails = ["mixed.eml", "quote.eml", "internal.eml", "renamed.eml"];
    // Oldest first, as they were sent.
    for i in (0..60).rev() {
        let t = format!("time={}", now - i * 12 * 3600 - 60);
        run(&[
            "process",
            "--state",
            st,
            "--context",
            &t,
            "--context",
            "user=ichiro",
            &mail(mails[(i % 4) as usize]),
        ]);
    }
    let policy = dir.path().join("enforce.toml");
    std::fs::write(
        &policy,
        r#"
[policy]
name = "enforce"
internal_domains = ["example.co.jp"]

[[rule]]
id = "block-confidential"
action = "block"
when = { all = [{ recipients = "any_external" }, { subject_contains = ["社外秘"] }] }

[[rule]]
id = "hold-renamed"
action = "hold"
when = { extension_mismatch = true }

[[rule]]
id = "watch-new-domains"
mode = "monitor"
action = "alert"
when = { new_external_domain = true }
"#,
    )
    .unwrap();
    // The last 20 days: i = 0..=39 (i * 12 h + 1 min < 20 d).
    let v: Value = serde_json::from_str(&run(&[
        "policy",
        "replay",
        "--policy",
        policy.to_str().unwrap(),
        "--since",
        "20d",
        "--state",
        st,
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["records"], 40);
    let change = |from: &str, to: &str| -> u64 {
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["from"] == from && c["to"] == to)
            .map_or(0, |c| c["records"].as_u64().unwrap())
    };
    assert_eq!(change("allow", "block"), 10, "{}", v["changes"]);
    assert_eq!(change("allow", "hold"), 10, "{}", v["changes"]);
    let blocks = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["to"] == "block")
        .unwrap();
    assert_eq!(blocks["examples"].as_array().unwrap().len(), 3);
    assert!(blocks["examples"][0]["reasons"]
        .to_string()
        .contains("社外秘"));
    let per: Vec<(String, u64, u64)> = v["per_action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["action"].as_str().unwrap().into(),
                x["was"].as_u64().unwrap(),
                x["now"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(per.contains(&("allow".into(), 40, 20)), "{per:?}");
    // Every domain was mailed before the window: the monitor rule would not fire on replay...
    assert!(!v["monitor_changes"]
        .to_string()
        .contains("watch-new-domains"));
    // ...but over the whole history, the first mail to each domain is new (as of its time).
    let v: Value = serde_json::from_str(&run(&[
        "policy",
        "replay",
        "--policy",
        policy.to_str().unwrap(),
        "--since",
        "40d",
        "--state",
        st,
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["records"], 60);
    let text = run(&[
        "policy",
        "replay",
        "--policy",
        policy.to_str().unwrap(),
        "--since",
        "40d",
        "--state",
        st,
    ]);
    assert!(text.contains("allow -> block: 15 record(s)"), "{text}");
    assert!(text.contains("allow -> hold: 15 record(s)"), "{text}");
    assert!(text.contains("watch-new-domains (monitor alert)"), "{text}");
    // Body conditions are flagged as not replayable.
    std::fs::write(
        &policy,
        "[[rule]]\nid = \"body\"\naction = \"block\"\nwhen = { body_contains = [\"極秘\"] }\n",
    )
    .unwrap();
    let text = run(&[
        "policy",
        "replay",
        "--policy",
        policy.to_str().unwrap(),
        "--state",
        st,
    ]);
    assert!(text.contains("rule(s) body test body text"), "{text}");
}

/// Nothing the commands print or store outside the evidence and held-mail folders carries a
/// planted raw value.
#[test]
fn no_raw_values_in_outputs_or_database() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    let jsonl = dir.path().join("alerts.jsonl");
    std::fs::write(
        &policy,
        format!("{HOLD_POLICY}\n[alerts]\njsonl = \"{}\"\n", jsonl.display()),
    )
    .unwrap();
    let st = dir.path().join("state");
    let s = st.to_str().unwrap();
    let mut printed = Vec::new();
    for args in [
        vec![
            "process",
            "--state",
            s,
            "--policy",
            policy.to_str().unwrap(),
            "--context",
            "user=ichiro",
        ],
        vec!["process", "--state", s, "--jobs", "2", "--repeat", "3"],
    ] {
        let mut a: Vec<String> = args.iter().map(|x| x.to_string()).collect();
        a.push(mail("mixed.eml"));
        a.push(mail("08-typical.eml"));
        let o = bin().args(&a).output().unwrap();
        ok(&o);
        printed.extend(o.stdout);
        printed.extend(o.stderr);
    }
    for args in [
        vec!["audit", "search", "--state", s],
        vec!["audit", "search", "--state", s, "--format", "json"],
        vec!["audit", "search", "--state", s, "--format", "csv"],
        vec!["audit", "stats", "--state", s, "--json"],
        vec!["audit", "show", "1", "--state", s],
        vec!["approvals", "list", "--state", s, "--status", "all"],
        vec![
            "policy",
            "test",
            policy.to_str().unwrap(),
            &mail("mixed.eml"),
        ],
    ] {
        let mut o = bin().args(&args).output().unwrap();
        ok(&o);
        printed.append(&mut o.stdout);
        printed.append(&mut o.stderr);
    }
    let mut files: Vec<PathBuf> = vec![jsonl];
    for f in std::fs::read_dir(&st).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            files.push(f);
        }
    }
    let raw = [
        "768426846565",
        "7684 2684 6565",
        "321223307923",
        "3212-2330-7923",
        "4742180967929089",
        "4742 1809 6792 9089",
        "5378778932879210",
        "440268599525",
    ];
    let check = |what: &str, b: &[u8]| {
        for v in raw {
            assert!(
                !b.windows(v.len()).any(|w| w == v.as_bytes()),
                "{what} contains {v}"
            );
        }
    };
    check("command output", &printed);
    assert!(
        String::from_utf8_lossy(&printed).contains("****"),
        "masked values are shown"
    );
    for f in &files {
        check(&f.display().to_string(), &std::fs::read(f).unwrap());
    }
}
