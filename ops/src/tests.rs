use super::*;
use ping32dlp::pipeline::Pipeline;
use ping32dlp::policy::{Context, Policy};
use ping32dlp::workflow::{Workflow, WorkflowConfig};

fn get(url: &str, method: &str) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = match method {
        "HEAD" => agent.head(url).call(),
        "POST" => agent.post(url).send(""),
        _ => agent.get(url).call(),
    };
    let mut r = r.expect("request");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = r.body_mut().read_to_string().unwrap_or_default();
    (r.status().as_u16(), ct, body)
}

fn pipeline(dir: &std::path::Path) -> Pipeline {
    let file = dir.join("policy.toml");
    std::fs::write(
        &file,
        r#"
[policy]
name = "ops-test"
internal_domains = ["example.co.jp"]

[[rule]]
id = "block-cards"
action = "block"
when = { detector = ["credit_card"] }
"#,
    )
    .unwrap();
    let policy = Policy::from_file(&file).expect("policy");
    let wf = Workflow::open(WorkflowConfig::new(dir)).expect("workflow");
    Pipeline::new(
        Arc::new(ping32dlp::Engine::builtin()),
        policy,
        Arc::new(wf),
        Default::default(),
    )
}

const CARD_MAIL: &str = "From: a@example.co.jp\r\nTo: b@partner.example\r\nSubject: card\r\n\r\n\
カード番号 4111 1111 1111 1111 有効期限 12/29\r\n";
const CLEAN_MAIL: &str = "From: a@example.co.jp\r\nTo: b@partner.example\r\nSubject: hi\r\n\r\n\
See you at ten.\r\n";

fn line_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn inspections_are_counted_by_channel_action_detector_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pipeline(dir.path());
    let m = Arc::new(Metrics::new("ping32dlp-test"));
    p.set_observer(m.clone());
    let ctx = Context {
        channel: "milter".into(),
        envelope_from: Some("a@example.co.jp".into()),
        envelope_to: vec!["b@partner.example".into()],
        ..Context::default()
    };
    for _ in 0..3 {
        let d = p
            .process_message(CARD_MAIL.as_bytes(), &ctx, &[], false)
            .unwrap();
        assert_eq!(d.verdict.action.as_str(), "block");
    }
    p.process_message(CLEAN_MAIL.as_bytes(), &ctx, &[], false)
        .unwrap();
    let text = m.encode();
    assert_eq!(
        line_value(
            &text,
            r#"ping32dlp_inspected_total{channel="milter",action="block"}"#
        ),
        Some(3.0),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l
            .starts_with(r#"ping32dlp_inspected_total{channel="milter",action="#)
            && !l.contains("block")),
        "{text}"
    );
    assert_eq!(
        line_value(&text, r#"ping32dlp_findings_total{detector="credit_card"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        line_value(
            &text,
            r#"ping32dlp_inspection_duration_seconds_count{channel="milter"}"#
        ),
        Some(4.0),
        "{text}"
    );
    let bytes = (3 * CARD_MAIL.len() + CLEAN_MAIL.len()) as f64;
    assert_eq!(
        line_value(
            &text,
            r#"ping32dlp_inspected_bytes_total{channel="milter"}"#
        ),
        Some(bytes),
        "{text}"
    );
    assert!(text.contains(r#"ping32dlp_build_info{program="ping32dlp-test",version=""#));
    assert!(text.ends_with("# EOF\n"));
    assert!(!text.contains("4111"), "a value leaked into the metrics");
    // An unreadable part is counted by reason.
    let mut zip = Vec::new();
    zip.extend_from_slice(b"PK\x03\x04\x14\x00\x01\x00"); // encrypted flag, then garbage
    zip.extend_from_slice(&[0u8; 40]);
    let f = p.process_file("secret.zip", &zip, &ctx).unwrap();
    let reasons: Vec<&str> = f
        .report
        .unscannable
        .iter()
        .map(|u| u.reason.as_str())
        .collect();
    let text = m.encode();
    for r in &reasons {
        assert!(
            text.contains(&format!(r#"ping32dlp_unscannable_total{{reason="{r}"}}"#)),
            "{r}: {text}"
        );
    }
    assert!(!reasons.is_empty(), "a broken zip is reported unscannable");
}

#[test]
fn listener_serves_metrics_health_and_readiness_and_nothing_else() {
    let m = Arc::new(Metrics::new("ping32dlp-test").with_channel("milter"));
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let r2 = ready.clone();
    let probe: Arc<Probe> = Arc::new(move |m: &Metrics| {
        m.set_holds_waiting(2);
        if r2.load(std::sync::atomic::Ordering::SeqCst) {
            Ok("policy p (1 rules), store sqlite".into())
        } else {
            Err("store: database: connection refused".into())
        }
    });
    let l = serve("127.0.0.1:0".parse().unwrap(), m.clone(), probe).unwrap();
    let base = format!("http://{}", l.addr);
    m.connection_opened();
    m.connection_refused("max_connections");
    m.fail_mode_answer("milter", "tempfail");

    let (st, ct, body) = get(&format!("{base}/metrics"), "GET");
    assert_eq!(st, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert_eq!(line_value(&body, "ping32dlp_holds_waiting "), Some(2.0));
    assert_eq!(line_value(&body, "ping32dlp_connections_open "), Some(1.0));
    assert_eq!(
        line_value(
            &body,
            r#"ping32dlp_connections_refused_total{reason="max_connections"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        line_value(
            &body,
            r#"ping32dlp_fail_mode_answers_total{channel="milter",mode="tempfail"}"#
        ),
        Some(1.0)
    );
    // The channel's series exist at zero before the first mail.
    assert!(
        body.contains("# TYPE ping32dlp_inspection_duration_seconds histogram"),
        "{body}"
    );
    assert_eq!(
        line_value(
            &body,
            r#"ping32dlp_inspected_total{channel="milter",action="hold"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        line_value(&body, r#"ping32dlp_reloads_total{outcome="failed"}"#),
        Some(0.0)
    );

    assert_eq!(get(&format!("{base}/healthz"), "GET").0, 200);
    let (st, _, body) = get(&format!("{base}/readyz"), "GET");
    assert_eq!(
        (st, body.as_str()),
        (200, "ready: policy p (1 rules), store sqlite\n")
    );
    ready.store(false, std::sync::atomic::Ordering::SeqCst);
    let (st, _, body) = get(&format!("{base}/readyz"), "GET");
    assert_eq!(st, 503);
    assert!(body.starts_with("not ready: store:"), "{body}");
    // Alive even when not ready.
    assert_eq!(get(&format!("{base}/healthz"), "GET").0, 200);
    let (st, _, body) = get(&format!("{base}/metrics"), "HEAD");
    assert_eq!((st, body.as_str()), (200, ""));
    assert_eq!(get(&format!("{base}/metrics"), "POST").0, 405);
    assert_eq!(get(&format!("{base}/"), "GET").0, 404);
    assert_eq!(get(&format!("{base}/metrics/../admin"), "GET").0, 404);
    assert_eq!(get(&format!("{base}/healthz?x=1"), "GET").0, 200);
}

#[test]
fn a_silent_connection_is_closed_and_does_not_block_others() {
    use std::io::{Read, Write};
    let m = Arc::new(Metrics::new("ping32dlp-test"));
    let probe: Arc<Probe> = Arc::new(|_: &Metrics| Ok("ok".into()));
    let l = serve("127.0.0.1:0".parse().unwrap(), m, probe).unwrap();
    // More idle connections than the listener holds: the extra ones are closed at once, and
    // once the idle ones time out a real request is answered again.
    let idle: Vec<_> = (0..MAX_CONNECTIONS + 4)
        .map(|_| std::net::TcpStream::connect(l.addr).unwrap())
        .collect();
    let mut s = std::net::TcpStream::connect(l.addr).unwrap();
    s.set_read_timeout(Some(HEAD_TIMEOUT * 3)).unwrap();
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    // Either refused at once (closed, nothing read) or answered after the idle ones expired.
    let text = String::from_utf8_lossy(&got);
    assert!(got.is_empty() || text.starts_with("HTTP/1.1 200"), "{text}");
    // An idle connection that never sends a head is closed by the server.
    let mut first = idle.into_iter().next().unwrap();
    first.set_read_timeout(Some(HEAD_TIMEOUT * 3)).unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 64];
    assert!(matches!(first.read(&mut buf), Ok(0) | Err(_)));
    assert!(t.elapsed() < HEAD_TIMEOUT * 2, "{:?}", t.elapsed());
    std::thread::sleep(Duration::from_millis(200));
    let (st, _, _) = get(&format!("http://{}/healthz", l.addr), "GET");
    assert_eq!(st, 200);
}

#[test]
fn settings_refuse_other_than_loopback_unless_allowed() {
    let s = |l: &str, remote| Settings {
        listen: Some(l.into()),
        allow_remote: remote,
    };
    assert_eq!(Settings::default().address(), Ok(None));
    assert_eq!(s("  ", false).address(), Ok(None));
    assert_eq!(
        s("127.0.0.1:9187", false).address(),
        Ok(Some("127.0.0.1:9187".parse().unwrap()))
    );
    assert!(s("[::1]:9187", false).address().unwrap().is_some());
    let e = s("0.0.0.0:9187", false).address().unwrap_err();
    assert!(
        e.starts_with("metrics_listen:") && e.contains("metrics_allow_remote"),
        "{e}"
    );
    assert!(s("0.0.0.0:9187", true).address().unwrap().is_some());
    let e = s("localhost", false).address().unwrap_err();
    assert!(e.contains("not an address and port"), "{e}");
}
