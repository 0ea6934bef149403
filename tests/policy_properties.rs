//! Policy evaluation properties over generated facts and generated policies: the final action is
//! the most severe enforced match, monitor mode never changes it, `not` flips a condition, stop
//! ends the evaluation, the risk score is the capped sum of its signals, and no input panics
//! (the parser included).

use ping32dlp::policy::lookalike::{looks_like, punycode_decode, Likeness};
use ping32dlp::policy::{
    parse_policy, Action, AttachmentFact, Facts, FindingSummary, Mode, NoHistory, Role,
};
use proptest::prelude::*;

/// Leaf conditions that read no history (their truth depends on the facts only).
const CONDS: &[&str] = &[
    r#"{ recipients = "any_external" }"#,
    r#"{ recipients = "all_external" }"#,
    r#"{ recipients = "all_internal" }"#,
    r#"{ recipient_domain_in = ["partner.example.com"] }"#,
    r#"{ recipient_domain_not_in = ["example.co.jp"] }"#,
    r#"{ recipient_count = { min = 2 } }"#,
    r#"{ external_recipient_count = { min = 1, max = 2 } }"#,
    r#"{ mixed_external_domains = true }"#,
    r#"{ to_external_count = { min = 2 } }"#,
    r#"{ bcc_external_count = { min = 1 } }"#,
    r#"{ from_differs_from_envelope = true }"#,
    r#"{ lookalike_domain = true }"#,
    r#"{ sender_in = ["a@example.co.jp"] }"#,
    r#"{ sender_domain_in = ["example.co.jp"] }"#,
    r#"{ sender_group = "sales" }"#,
    r#"{ channel_in = ["milter"] }"#,
    r#"{ attachment_count = { min = 1 } }"#,
    r#"{ true_type_in = ["xlsx", "zip"] }"#,
    r#"{ extension_in = ["txt"] }"#,
    r#"{ extension_mismatch = true }"#,
    r#"{ message_size = { min = 100000 } }"#,
    r#"{ attachment_size = { max = 5000 } }"#,
    r#"{ detector = ["jp_my_number"] }"#,
    r#"{ detector = ["credit_card"], min_confidence = "high", min_unique = 2 }"#,
    r#"{ detector = ["any"], scope = "attachment" }"#,
    r#"{ subject_contains = ["社外秘"] }"#,
    r#"{ body_contains = ["極秘", "secret"] }"#,
    r#"{ keyword = ["見積"] }"#,
    r#"{ unscannable = ["encrypted"] }"#,
    r#"{ time_of_day = { from = "22:00", to = "06:00" } }"#,
    r#"{ weekday_in = ["sat", "sun"] }"#,
    r#"{ outside_business_hours = true }"#,
    r#"{ holiday = true }"#,
    r#"{ risk_score = { min = 40 } }"#,
];

const ACTIONS: &[&str] = &["allow", "audit", "alert", "hold", "block"];

fn addr() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["a", "b", "taro", "x.y"]),
        prop::sample::select(vec![
            "example.co.jp",
            "sub.example.co.jp",
            "partner.example.com",
            "other.example.org",
            "gmail.com",
            "examp1e.co.jp",
        ]),
    )
        .prop_map(|(u, d)| format!("{u}@{d}"))
}

fn facts() -> impl Strategy<Value = Facts> {
    (
        addr(),
        prop::collection::vec(addr(), 0..5),
        prop::sample::select(vec!["milter", "proxy", "webmail", "api"]),
        prop::sample::select(vec!["", "【社外秘】見積", "hello", "secret plan"]),
        prop::option::of(prop::sample::select(vec![
            "極秘の資料",
            "plain text",
            "見積書です",
        ])),
        0u64..300_000,
        prop::collection::vec(
            (
                prop::sample::select(vec!["xlsx", "pdf", "zip", "txt"]),
                prop::sample::select(vec!["a.xlsx", "b.txt", "c.zip"]),
                0u64..20_000,
                any::<bool>(),
            ),
            0..4,
        ),
        prop::collection::vec(
            (
                prop::sample::select(vec!["jp_my_number", "credit_card", "email_address"]),
                1u32..5,
                0u32..3,
            ),
            0..3,
        ),
        prop::option::of(prop::sample::select(vec!["encrypted", "corrupt"])),
        1_700_000_000i64..1_900_000_000,
        (
            prop::collection::vec(
                prop::sample::select(vec![Role::To, Role::Cc, Role::Bcc]),
                0..5,
            ),
            prop::option::of(addr()),
        ),
    )
        .prop_map(
            |(
                sender,
                recipients,
                channel,
                subject,
                body,
                size,
                atts,
                finds,
                unscannable,
                time,
                (roles, header_from),
            )| {
                let mut f = Facts {
                    time,
                    channel: channel.into(),
                    sender,
                    recipients,
                    subject: subject.into(),
                    body: body.map(String::from),
                    size,
                    roles,
                    header_from,
                    ..Facts::default()
                };
                f.recipients.dedup();
                for (i, (kind, name, size, mismatch)) in atts.into_iter().enumerate() {
                    f.attachments.push(AttachmentFact {
                        location: format!("{i}-{name}"),
                        name: name.into(),
                        kind: kind.into(),
                        size,
                        sha256: format!("{i:064x}"),
                        extension_mismatch: mismatch,
                        depth: 0,
                        origin: None,
                    });
                }
                for (d, n, high) in finds {
                    let unique = [n, n.min(high.max(1)), high];
                    for loc in ["body", "*"] {
                        f.findings.push(FindingSummary {
                            detector: d.into(),
                            location: loc.into(),
                            count: n,
                            unique,
                            samples: vec!["****".into()],
                        });
                    }
                }
                if let Some(u) = unscannable {
                    f.unscannable.push(("x.zip".into(), u.into()));
                }
                f
            },
        )
}

fn policy_text(rules: &[(usize, usize, bool, bool)], stop_at: Option<usize>) -> String {
    let mut s = String::from("[policy]\ninternal_domains = [\"example.co.jp\"]\n[groups]\nsales = [\"taro@example.co.jp\"]\n");
    for (i, (c, a, monitor, negate)) in rules.iter().enumerate() {
        let cond = if *negate {
            format!("{{ not = {} }}", CONDS[*c])
        } else {
            CONDS[*c].to_string()
        };
        s.push_str(&format!(
            "[[rule]]\nid = \"r{i}\"\naction = \"{}\"\nmode = \"{}\"\nstop = {}\nwhen = {cond}\n",
            ACTIONS[*a],
            if *monitor { "monitor" } else { "enforce" },
            stop_at == Some(i)
        ));
    }
    s
}

fn rules() -> impl Strategy<Value = Vec<(usize, usize, bool, bool)>> {
    prop::collection::vec(
        (
            0..CONDS.len(),
            0..ACTIONS.len(),
            any::<bool>(),
            any::<bool>(),
        ),
        1..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn final_action_is_the_most_severe_enforced_match(f in facts(), rs in rules()) {
        let p = parse_policy(&policy_text(&rs, None), None).unwrap();
        let v = p.evaluate(&f, &NoHistory).unwrap();
        let expect = v.matched.iter().filter(|m| m.mode == Mode::Enforce).map(|m| m.action).max().unwrap_or(Action::Allow);
        prop_assert_eq!(v.action, expect);
        for m in &v.matched {
            prop_assert!(!m.reasons.is_empty(), "{} matched without a reason", m.rule);
        }
        // Risk: the capped sum of the listed signals.
        prop_assert!(v.risk <= 100);
        prop_assert_eq!(v.risk, v.signals.iter().map(|s| s.weight).sum::<u32>().min(100));
    }

    #[test]
    fn monitor_mode_matches_the_same_and_changes_nothing(f in facts(), rs in rules()) {
        let enforced: Vec<_> = rs.iter().map(|&(c, a, _, n)| (c, a, false, n)).collect();
        let monitored: Vec<_> = rs.iter().map(|&(c, a, _, n)| (c, a, true, n)).collect();
        let ve = parse_policy(&policy_text(&enforced, None), None).unwrap().evaluate(&f, &NoHistory).unwrap();
        let vm = parse_policy(&policy_text(&monitored, None), None).unwrap().evaluate(&f, &NoHistory).unwrap();
        prop_assert_eq!(vm.action, Action::Allow);
        let ids = |v: &ping32dlp::policy::Verdict| v.matched.iter().map(|m| m.rule.clone()).collect::<Vec<_>>();
        prop_assert_eq!(ids(&ve), ids(&vm));
        prop_assert_eq!(ve.risk, vm.risk);
    }

    #[test]
    fn not_flips_a_condition(f in facts(), c in 0..CONDS.len()) {
        let a = parse_policy(&policy_text(&[(c, 4, false, false)], None), None).unwrap().evaluate(&f, &NoHistory).unwrap();
        let b = parse_policy(&policy_text(&[(c, 4, false, true)], None), None).unwrap().evaluate(&f, &NoHistory).unwrap();
        prop_assert_ne!(a.matched.is_empty(), b.matched.is_empty(), "{}", CONDS[c]);
    }

    #[test]
    fn stop_ends_the_evaluation(f in facts(), rs in rules(), at in 0usize..8) {
        let at = at % rs.len();
        let v = parse_policy(&policy_text(&rs, Some(at)), None).unwrap().evaluate(&f, &NoHistory).unwrap();
        if v.matched.iter().any(|m| m.rule == format!("r{at}")) {
            prop_assert_eq!(v.matched.last().unwrap().rule.clone(), format!("r{at}"));
        }
    }

    #[test]
    fn odd_addresses_and_text_never_panic(
        sender in ".{0,40}",
        recipients in prop::collection::vec(".{0,40}", 0..4),
        subject in ".{0,60}",
        rs in rules(),
    ) {
        let f = Facts { sender, recipients, subject, body: Some("本文".into()), ..Facts::default() };
        let v = parse_policy(&policy_text(&rs, None), None).unwrap().evaluate(&f, &NoHistory).unwrap();
        prop_assert!(v.risk <= 100);
    }

    #[test]
    fn the_parser_never_panics(text in "[\\[\\]a-z_=\"{}, .0-9\n]{0,300}") {
        let _ = parse_policy(&text, None);
    }

    #[test]
    fn parser_errors_point_into_the_file(
        c in 0..CONDS.len(),
        junk in prop::sample::select(vec!["min_unique = -1", "bogus = 1", "min = 2", "scope = \"everywhere\""]),
    ) {
        let cond = CONDS[c].trim_end_matches('}').to_string() + ", " + junk + " }";
        let text = format!("[policy]\nname = \"p\"\n\n[[rule]]\nid = \"r\"\naction = \"block\"\nwhen = {cond}\n");
        if let Err(e) = parse_policy(&text, None) {
            prop_assert!(e.line >= 1 && e.line <= 7, "line {} for {}", e.line, cond);
            // A field, or none for a TOML syntax error (a duplicate key).
            prop_assert!(e.field.starts_with("rule[0]") || e.field.is_empty(), "field {}", e.field);
        }
    }
}

/// History whose answers come from partial records (an endpoint agent whose fleet server did
/// not answer): every question says "never seen" and marks the evaluation offline.
struct OfflineHistory(std::cell::Cell<bool>);

impl ping32dlp::policy::History for OfflineHistory {
    fn domain_seen(&self, _: &str, _: i64) -> ping32dlp::policy::HistoryResult<bool> {
        self.0.set(true);
        Ok(false)
    }
    fn sent_to_before(&self, _: &str, _: &str, _: i64) -> ping32dlp::policy::HistoryResult<bool> {
        self.0.set(true);
        Ok(false)
    }
    fn external_sends_of(&self, _: &str, _: i64, _: i64) -> ping32dlp::policy::HistoryResult<u64> {
        self.0.set(true);
        Ok(0)
    }
    fn sender_external(
        &self,
        _: &str,
        _: i64,
        _: i64,
    ) -> ping32dlp::policy::HistoryResult<(u64, u64)> {
        self.0.set(true);
        Ok((0, 0))
    }
    fn ppap_partner(
        &self,
        _: &str,
        _: &[String],
        _: i64,
        _: i64,
        _: bool,
    ) -> ping32dlp::policy::HistoryResult<bool> {
        self.0.set(true);
        Ok(false)
    }
    fn offline(&self) -> bool {
        self.0.get()
    }
    fn clear_offline(&self) {
        self.0.set(false);
    }
}

#[test]
fn rules_say_what_they_do_when_history_is_offline() {
    let text = |offline: &str| {
        format!(
            r#"[policy]
internal_domains = ["example.co.jp"]

[[rule]]
id = "same-file"
action = "alert"
{offline}
approvers = ["boss@example.co.jp"]
when = {{ same_attachment_sent_external = {{ min = 2, within = "1h" }} }}

[[rule]]
id = "no-history"
action = "audit"
when = {{ recipients = "any_external" }}
"#
        )
    };
    let f = Facts {
        sender: "a@example.co.jp".into(),
        recipients: vec!["x@partner.example.com".into()],
        attachments: vec![AttachmentFact {
            location: "a.xlsx".into(),
            name: "a.xlsx".into(),
            kind: "xlsx".into(),
            size: 100,
            sha256: "ab".repeat(32),
            extension_mismatch: false,
            depth: 0,
            origin: None,
        }],
        ..Facts::default()
    };
    let eval = |offline: &str| {
        parse_policy(&text(offline), None)
            .unwrap()
            .evaluate(&f, &OfflineHistory(std::cell::Cell::new(false)))
            .unwrap()
    };
    // Default (allow): judged on the partial history; the rule does not match.
    let v = eval("");
    assert_eq!(v.action, Action::Audit);
    assert!(v.matched.iter().all(|m| m.rule != "same-file"));
    // hold / block: the rule matches with that action and says why.
    for (word, action) in [("hold", Action::Hold), ("block", Action::Block)] {
        let v = eval(&format!("offline = \"{word}\""));
        assert_eq!(v.action, action, "{word}");
        let m = v.matched.iter().find(|m| m.rule == "same-file").unwrap();
        assert_eq!(m.action, action);
        assert!(
            m.reasons
                .iter()
                .any(|r| r.contains("fleet server did not answer")),
            "{:?}",
            m.reasons
        );
        // A rule without history questions is not touched.
        let other = v.matched.iter().find(|m| m.rule == "no-history").unwrap();
        assert!(other.reasons.iter().all(|r| !r.contains("fleet server")));
    }
    // Online history (NoHistory never goes offline): no match, no note.
    let v = parse_policy(&text("offline = \"hold\""), None)
        .unwrap()
        .evaluate(&f, &NoHistory)
        .unwrap();
    assert_eq!(v.action, Action::Audit);
    // A wrong word is an error with its place.
    let e = parse_policy(&text("offline = \"maybe\""), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("offline") && e.contains("use allow, hold or block"),
        "{e}"
    );
}

fn count_of(p: &ping32dlp::policy::Policy, f: &Facts, cond: &str) -> u64 {
    // The count a range condition saw, read back from its evidence ("N external ...").
    let text = format!("[policy]\ninternal_domains = [\"example.co.jp\"]\n[[rule]]\nid = \"c\"\naction = \"alert\"\nwhen = {{ {cond} = {{ min = 0 }} }}\n");
    let q = parse_policy(&text, None).unwrap();
    let _ = p;
    let v = q.evaluate(f, &NoHistory).unwrap();
    v.matched[0].reasons[0]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

proptest! {
    /// Visible (To/Cc) and hidden (Bcc) external recipients add up to all external recipients,
    /// whatever the roles (a missing role is To).
    #[test]
    fn roles_split_the_external_recipients(f in facts()) {
        let p = parse_policy("[policy]\ninternal_domains = [\"example.co.jp\"]\n", None).unwrap();
        let all = count_of(&p, &f, "external_recipient_count");
        let to = count_of(&p, &f, "to_external_count");
        let bcc = count_of(&p, &f, "bcc_external_count");
        prop_assert_eq!(to + bcc, all);
    }

    /// A domain is never a look-alike of itself or of a domain it is under; one changed letter,
    /// a Cyrillic twin or a digit for a letter makes one; full-width forms are the name itself;
    /// nothing panics on any input.
    #[test]
    fn lookalikes(
        label in "[a-z]{5,12}",
        tld in prop::sample::select(vec!["co.jp", "com", "ne.jp", "example"]),
        at in any::<prop::sample::Index>(),
        letter in "[a-z]",
        junk in ".{0,80}",
        junk2 in ".{0,80}",
    ) {
        let d = format!("{label}.{tld}");
        prop_assert_eq!(looks_like(&d, &d), None);
        prop_assert_eq!(looks_like(&format!("mail.{d}"), &d), None);
        prop_assert_eq!(looks_like(&d.to_uppercase(), &d), None);
        let wide: String = d.chars().map(|c| if c.is_ascii_alphanumeric() { char::from_u32(c as u32 + 0xFEE0).unwrap() } else { c }).collect();
        prop_assert_eq!(looks_like(&wide, &d), None);
        let i = at.index(label.len());
        let mut changed: Vec<char> = d.chars().collect();
        let new = letter.chars().next().unwrap();
        if changed[i] != new {
            changed[i] = new;
            let c: String = changed.iter().collect();
            prop_assert!(looks_like(&c, &d).is_some(), "{} vs {}", c, d);
        }
        if label.contains('o') {
            let twin = d.replacen('o', "о", 1); // Cyrillic
            prop_assert_eq!(looks_like(&twin, &d), Some(Likeness::Homoglyph));
            let digit = d.replacen('o', "0", 1);
            prop_assert_eq!(looks_like(&digit, &d), Some(Likeness::Homoglyph));
        }
        let _ = looks_like(&junk, &junk2);
        let _ = looks_like(&junk, &d);
        let _ = punycode_decode(&junk);
    }
}
