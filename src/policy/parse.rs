//! Policy files (TOML) to [`Policy`], with errors that name the file, line and field.
//! The format is documented in `docs/policy.md`.

use std::collections::BTreeMap;
use std::ops::Range as Span;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{Action, Cond, Mode, Offline, Policy, Range, Rule, Scope};
use crate::rules::{Confidence, RuleError, Source};

/// The policy used when none is given: monitor mode everywhere, so that nothing is blocked until
/// an administrator has looked at what the rules would do (`policy replay`).
pub const DEFAULT_POLICY: &str = include_str!("default_policy.toml");

type V<'i> = Spanned<DeValue<'i>>;

/// A weekday name (`mon`, `Monday`, ...) as 0 = Monday .. 6 = Sunday.
fn weekday(d: &str) -> Option<u32> {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|w| d.to_lowercase().starts_with(w))
        .map(|i| i as u32)
}

struct P<'a> {
    src: Source<'a>,
    /// Where each rule names each detector (checked against an engine later).
    detectors: std::cell::RefCell<Vec<super::DetectorRef>>,
    /// The rule being read.
    rule: std::cell::Cell<usize>,
    /// The first `action = "link"`, as the error to give if `[links]` has no `url`.
    link_rule: std::cell::RefCell<Option<RuleError>>,
}

impl<'a> P<'a> {
    fn err(&self, span: Span<usize>, field: &str, msg: impl Into<String>) -> RuleError {
        RuleError {
            document: "policy",
            ..self.src.error(Some(span), field, msg)
        }
    }

    fn table<'v, 'i>(&self, v: &'v V<'i>, field: &str) -> Result<&'v DeTable<'i>, RuleError> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(t),
            _ => Err(self.err(v.span(), field, "expected a table")),
        }
    }

    fn str<'v>(&self, v: &'v V<'_>, field: &str) -> Result<&'v str, RuleError> {
        match v.get_ref() {
            DeValue::String(s) => Ok(s),
            _ => Err(self.err(v.span(), field, "expected a string")),
        }
    }

    fn int(&self, v: &V<'_>, field: &str) -> Result<i64, RuleError> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
                let d = digits
                    .trim_start_matches("0x")
                    .trim_start_matches("0o")
                    .trim_start_matches("0b");
                i64::from_str_radix(d, i.radix())
                    .map_err(|_| self.err(v.span(), field, "integer out of range"))
            }
            _ => Err(self.err(v.span(), field, "expected an integer")),
        }
    }

    fn uint(&self, v: &V<'_>, field: &str) -> Result<u64, RuleError> {
        let n = self.int(v, field)?;
        u64::try_from(n).map_err(|_| self.err(v.span(), field, "must not be negative"))
    }

    fn bool(&self, v: &V<'_>, field: &str) -> Result<bool, RuleError> {
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            _ => Err(self.err(v.span(), field, "expected true or false")),
        }
    }

    fn strings(&self, v: &V<'_>, field: &str) -> Result<Vec<String>, RuleError> {
        match v.get_ref() {
            DeValue::String(s) => Ok(vec![s.to_string()]),
            DeValue::Array(a) => a
                .iter()
                .map(|x| self.str(x, field).map(str::to_string))
                .collect(),
            _ => Err(self.err(v.span(), field, "expected a string or a list of strings")),
        }
    }

    fn duration(&self, v: &V<'_>, field: &str) -> Result<i64, RuleError> {
        match v.get_ref() {
            DeValue::Integer(_) => self.int(v, field),
            _ => {
                let s = self.str(v, field)?;
                crate::timeutil::parse_duration(s).ok_or_else(|| {
                    self.err(
                        v.span(),
                        field,
                        format!("`{s}` is not a duration: use 30s, 15m, 24h, 7d or 2w"),
                    )
                })
            }
        }
    }

    fn range(&self, v: &V<'_>, field: &str) -> Result<Range, RuleError> {
        if let DeValue::Integer(_) = v.get_ref() {
            let n = self.uint(v, field)?;
            return Ok(Range {
                min: Some(n),
                max: None,
            });
        }
        let t = self.table(v, field)?;
        let mut r = Range::default();
        for (k, x) in t.iter() {
            let f = format!("{field}.{}", k.get_ref());
            match k.get_ref().as_ref() {
                "min" => r.min = Some(self.uint(x, &f)?),
                "max" => r.max = Some(self.uint(x, &f)?),
                other => {
                    return Err(self.err(
                        k.span(),
                        &f,
                        format!("unknown key `{other}`: use min and max"),
                    ))
                }
            }
        }
        Ok(r)
    }

    /// A list of weekdays (`mon` .. `sun`, any case, longer forms too) as 0 = Monday.
    fn weekdays(&self, v: &V<'_>, field: &str) -> Result<Vec<u32>, RuleError> {
        self.strings(v, field)?
            .iter()
            .map(|d| {
                weekday(d).ok_or_else(|| {
                    self.err(
                        v.span(),
                        field,
                        format!("`{d}` is not a weekday (mon .. sun)"),
                    )
                })
            })
            .collect()
    }

    fn get<'v, 'i>(t: &'v DeTable<'i>, key: &str) -> Option<&'v V<'i>> {
        t.iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    /// A condition: `{ all = [...] }`, `{ any = [...] }`, `{ not = {...} }` or one leaf with its
    /// modifiers.
    fn cond(&self, v: &V<'_>, field: &str) -> Result<Cond, RuleError> {
        let t = self.table(v, field)?;
        let keys: Vec<&str> = t.iter().map(|(k, _)| k.get_ref().as_ref()).collect();
        let one = |name: &str| -> Result<&V<'_>, RuleError> {
            Self::get(t, name).ok_or_else(|| self.err(v.span(), field, format!("missing `{name}`")))
        };
        let list = |name: &str| -> Result<Vec<Cond>, RuleError> {
            let x = one(name)?;
            match x.get_ref() {
                DeValue::Array(a) => a
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.cond(c, &format!("{field}.{name}[{i}]")))
                    .collect(),
                _ => Err(self.err(
                    x.span(),
                    &format!("{field}.{name}"),
                    "expected a list of conditions",
                )),
            }
        };
        // Modifier keys allowed next to a main key.
        const MODIFIERS: &[&str] = &["min_confidence", "min_unique", "scope", "within", "min"];
        let main: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !MODIFIERS.contains(k))
            .collect();
        let [key] = main[..] else {
            return Err(self.err(
                v.span(),
                field,
                if main.is_empty() {
                    "a condition needs one kind (e.g. detector, recipients, all, any, not)"
                        .to_string()
                } else {
                    format!("one condition per table, found {}", main.join(", "))
                },
            ));
        };
        let f = format!("{field}.{key}");
        let x = one(key)?;
        let cond = match key {
            "all" => Cond::All(list("all")?),
            "any" => Cond::Any(list("any")?),
            "not" => Cond::Not(Box::new(self.cond(x, &f)?)),
            "recipient_domain_in" => Cond::RecipientDomainIn(self.strings(x, &f)?),
            "recipient_domain_not_in" => Cond::RecipientDomainNotIn(self.strings(x, &f)?),
            "recipients" => {
                let s = self.str(x, &f)?;
                if !matches!(s, "any_external" | "all_external" | "all_internal") {
                    return Err(self.err(
                        x.span(),
                        &f,
                        format!("`{s}`: use any_external, all_external or all_internal"),
                    ));
                }
                Cond::Recipients(s.to_string())
            }
            "recipient_count" => Cond::RecipientCount(self.range(x, &f)?),
            "external_recipient_count" => Cond::ExternalRecipientCount(self.range(x, &f)?),
            "mixed_external_domains" => self.flag(x, &f, Cond::MixedExternalDomains)?,
            "new_external_domain" => self.flag(x, &f, Cond::NewExternalDomain)?,
            "first_time_recipient" => self.flag(x, &f, Cond::FirstTimeRecipient)?,
            "to_external_count" => Cond::VisibleExternalCount(self.range(x, &f)?),
            "bcc_external_count" => Cond::BccExternalCount(self.range(x, &f)?),
            "from_differs_from_envelope" => self.flag(x, &f, Cond::FromDiffersFromEnvelope)?,
            "lookalike_domain" => self.flag(x, &f, Cond::LookalikeDomain)?,
            "sender_in" => Cond::SenderIn(self.strings(x, &f)?),
            "sender_domain_in" => Cond::SenderDomainIn(self.strings(x, &f)?),
            "sender_group" => Cond::SenderGroup(self.str(x, &f)?.to_string()),
            "sender_department" | "sender_department_in" => {
                Cond::SenderDepartment(self.strings(x, &f)?)
            }
            "recipient_group" => Cond::RecipientGroup(self.str(x, &f)?.to_string()),
            "channel_in" => Cond::ChannelIn(self.strings(x, &f)?),
            "attachment_count" => Cond::AttachmentCount(self.range(x, &f)?),
            "true_type_in" => Cond::TrueTypeIn(self.strings(x, &f)?),
            "extension_in" => Cond::ExtensionIn(self.strings(x, &f)?),
            "extension_mismatch" => self.flag(x, &f, Cond::ExtensionMismatch)?,
            "filename_spoofing" => self.flag(x, &f, Cond::FilenameSpoofing)?,
            "destination_host" | "destination_host_in" => {
                Cond::DestinationHostIn(self.strings(x, &f)?)
            }
            "message_size" => Cond::MessageSize(self.range(x, &f)?),
            "attachment_size" => Cond::AttachmentSize(self.range(x, &f)?),
            "detector" | "detector_in" => {
                let ids = self.strings(x, &f)?;
                let spans: Vec<Span<usize>> = match x.get_ref() {
                    DeValue::Array(a) => a.iter().map(|e| e.span()).collect(),
                    _ => vec![x.span(); ids.len()],
                };
                for (n, (id, span)) in ids.iter().zip(spans).enumerate() {
                    let at = self.src.error(Some(span), &format!("{f}[{n}]"), "");
                    self.detectors.borrow_mut().push(super::DetectorRef {
                        rule: self.rule.get(),
                        id: id.clone(),
                        line: at.line,
                        column: at.column,
                        field: at.field,
                    });
                }
                let min_confidence = match Self::get(t, "min_confidence") {
                    Some(c) => {
                        let s = self.str(c, &format!("{field}.min_confidence"))?;
                        Confidence::parse(s).ok_or_else(|| {
                            self.err(
                                c.span(),
                                &format!("{field}.min_confidence"),
                                format!("`{s}`: use low, medium or high"),
                            )
                        })?
                    }
                    None => Confidence::Medium,
                };
                let min_unique = match Self::get(t, "min_unique") {
                    Some(c) => self.uint(c, &format!("{field}.min_unique"))? as u32,
                    None => 1,
                };
                let scope = match Self::get(t, "scope") {
                    Some(c) => match self.str(c, &format!("{field}.scope"))? {
                        "message" => Scope::Message,
                        "attachment" | "location" => Scope::Attachment,
                        s => {
                            return Err(self.err(
                                c.span(),
                                &format!("{field}.scope"),
                                format!("`{s}`: use message or attachment"),
                            ))
                        }
                    },
                    None => Scope::Message,
                };
                Cond::Detector {
                    ids,
                    min_confidence,
                    min_unique,
                    scope,
                }
            }
            "subject_contains" => Cond::SubjectContains(self.strings(x, &f)?),
            "body_contains" => Cond::BodyContains(self.strings(x, &f)?),
            "text_contains" | "keyword" => Cond::TextContains(self.strings(x, &f)?),
            "unscannable" | "unscannable_in" => Cond::UnscannableIn(self.strings(x, &f)?),
            "ppap" => {
                let within = match Self::get(t, "within") {
                    Some(w) => self.duration(w, &format!("{field}.within"))?,
                    None => 30 * 60,
                };
                self.flag(x, &f, Cond::Ppap { within })?
            }
            "time_of_day" => {
                let tt = self.table(x, &f)?;
                let hm = |k: &str| -> Result<u32, RuleError> {
                    let v = Self::get(tt, k)
                        .ok_or_else(|| self.err(x.span(), &f, format!("missing `{k}`")))?;
                    let s = self.str(v, &format!("{f}.{k}"))?;
                    let (h, m) = s
                        .split_once(':')
                        .ok_or_else(|| self.err(v.span(), &format!("{f}.{k}"), "use HH:MM"))?;
                    match (h.parse::<u32>(), m.parse::<u32>()) {
                        (Ok(h), Ok(m)) if h <= 24 && m < 60 => Ok(h * 60 + m),
                        _ => Err(self.err(
                            v.span(),
                            &format!("{f}.{k}"),
                            format!("`{s}` is not HH:MM"),
                        )),
                    }
                };
                Cond::TimeOfDay {
                    from: hm("from")?,
                    to: hm("to")?,
                }
            }
            "outside_business_hours" => self.flag(x, &f, Cond::OutsideBusinessHours)?,
            "holiday" => self.flag(x, &f, Cond::Holiday)?,
            "weekday_in" => Cond::WeekdayIn(self.weekdays(x, &f)?),
            "same_attachment_sent_external" | "sender_external_mails" | "sender_external_bytes" => {
                let tt = self.table(x, &f)?;
                let min =
                    Self::get(tt, "min").ok_or_else(|| self.err(x.span(), &f, "missing `min`"))?;
                let min = self.uint(min, &format!("{f}.min"))?;
                let within = Self::get(tt, "within")
                    .ok_or_else(|| self.err(x.span(), &f, "missing `within`"))?;
                let within = self.duration(within, &format!("{f}.within"))?;
                match key {
                    "same_attachment_sent_external" => {
                        Cond::SameAttachmentSentExternal { min, within }
                    }
                    "sender_external_mails" => Cond::SenderExternalMails { min, within },
                    _ => Cond::SenderExternalBytes { min, within },
                }
            }
            "risk_score" => Cond::RiskScore(self.range(x, &f)?),
            other => {
                return Err(self.err(
                    v.span(),
                    field,
                    format!("unknown condition `{other}` (see docs/policy.md)"),
                ))
            }
        };
        // Modifiers only where they mean something.
        for (k, kv) in t.iter() {
            let name = k.get_ref().as_ref();
            let ok = match name {
                "min_confidence" | "min_unique" | "scope" => matches!(cond, Cond::Detector { .. }),
                "within" => matches!(cond, Cond::Ppap { .. }),
                "min" => false,
                _ => true,
            };
            if !ok {
                return Err(self.err(
                    kv.span(),
                    &format!("{field}.{name}"),
                    format!("`{name}` does not apply to `{key}`"),
                ));
            }
        }
        Ok(cond)
    }

    fn flag(&self, v: &V<'_>, field: &str, c: Cond) -> Result<Cond, RuleError> {
        if self.bool(v, field)? {
            Ok(c)
        } else {
            Ok(Cond::Not(Box::new(c)))
        }
    }
}

/// Releases a mail held in Postfix's hold queue (milter channel).
pub const DEFAULT_RELEASE_COMMAND: &str = "postsuper -H {queue_id} && postqueue -i {queue_id}";
/// Deletes a mail held in Postfix's hold queue (milter channel).
pub const DEFAULT_DISCARD_COMMAND: &str = "postsuper -d {queue_id} hold";
/// Sends the sender's notice of a rejected or expired request (the notice on standard input).
pub const DEFAULT_NOTIFY_COMMAND: &str = "/usr/sbin/sendmail -t -i";

/// An empty command turns the default off.
fn non_empty(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_string())
}

/// Parses a policy. `file` names it in errors.
pub fn parse_policy(text: &str, file: Option<&Path>) -> Result<Policy, RuleError> {
    let p = P {
        src: Source { file, text },
        detectors: Default::default(),
        rule: Default::default(),
        link_rule: Default::default(),
    };
    let doc = DeTable::parse(text).map_err(|e| {
        let span = e.span();
        RuleError {
            document: "policy",
            ..p.src.error(span, "", e.message().trim().to_string())
        }
    })?;
    let mut policy = Policy {
        name: "policy".into(),
        internal_domains: Vec::new(),
        partner_domains: Vec::new(),
        internal_hosts: Vec::new(),
        utc_offset_min: 9 * 60,
        calendar: super::calendar::Calendar::default(),
        reports: super::ReportSchedule::default(),
        links: super::LinkSettings::default(),
        groups: BTreeMap::new(),
        approvers: Vec::new(),
        rules: Vec::new(),
        alerts: super::AlertConfig::default(),
        release_command: Some(DEFAULT_RELEASE_COMMAND.into()),
        discard_command: Some(DEFAULT_DISCARD_COMMAND.into()),
        notify_command: Some(DEFAULT_NOTIFY_COMMAND.into()),
        notify_from: None,
        console_url: None,
        allow_self_approval: false,
        file: file.map(Path::to_path_buf),
        detector_refs: Vec::new(),
    };
    let mut default_mode = Mode::Enforce;
    for (k, v) in doc.get_ref().iter() {
        let key = k.get_ref().as_ref();
        match key {
            "policy" => {
                for (k2, v2) in p.table(v, "policy")?.iter() {
                    let f = format!("policy.{}", k2.get_ref());
                    match k2.get_ref().as_ref() {
                        "name" => policy.name = p.str(v2, &f)?.to_string(),
                        "internal_domains" => policy.internal_domains = p.strings(v2, &f)?.into_iter().map(|d| d.to_lowercase()).collect(),
                        "partner_domains" => policy.partner_domains = p.strings(v2, &f)?.into_iter().map(|d| d.to_lowercase()).collect(),
                        "internal_hosts" => policy.internal_hosts = p.strings(v2, &f)?.into_iter().map(|d| d.to_lowercase()).collect(),
                        "timezone" => {
                            let s = p.str(v2, &f)?;
                            policy.utc_offset_min = crate::timeutil::parse_offset(s).ok_or_else(|| p.err(v2.span(), &f, format!("`{s}`: use an offset like +09:00")))?;
                        }
                        "approvers" => policy.approvers = p.strings(v2, &f)?,
                        "mode" => {
                            default_mode = match p.str(v2, &f)? {
                                "enforce" => Mode::Enforce,
                                "monitor" => Mode::Monitor,
                                s => return Err(p.err(v2.span(), &f, format!("`{s}`: use enforce or monitor"))),
                            }
                        }
                        other => return Err(p.err(k2.span(), &f, format!("unknown key `{other}`"))),
                    }
                }
            }
            "calendar" => {
                let c = &mut policy.calendar;
                for (k2, v2) in p.table(v, "calendar")?.iter() {
                    let f = format!("calendar.{}", k2.get_ref());
                    match k2.get_ref().as_ref() {
                        "holidays" => {
                            c.holidays = match p.str(v2, &f)? {
                                "jp" | "japan" => super::calendar::Holidays::Japan,
                                "none" => super::calendar::Holidays::None,
                                s => return Err(p.err(v2.span(), &f, format!("`{s}`: use jp or none"))),
                            }
                        }
                        "business_hours" => {
                            let t = p.table(v2, &f)?;
                            let hm = |k: &str| -> Result<u32, RuleError> {
                                let x = P::get(t, k).ok_or_else(|| p.err(v2.span(), &f, format!("missing `{k}` (HH:MM)")))?;
                                let s = p.str(x, &format!("{f}.{k}"))?;
                                hhmm(s).ok_or_else(|| p.err(x.span(), &format!("{f}.{k}"), format!("`{s}` is not HH:MM")))
                            };
                            c.hours = (hm("from")?, hm("to")?);
                            if let Some((k3, _)) = t.iter().find(|(k3, _)| !matches!(k3.get_ref().as_ref(), "from" | "to")) {
                                return Err(p.err(k3.span(), &format!("{f}.{}", k3.get_ref()), "unknown key: use from and to".to_string()));
                            }
                        }
                        "weekend" => c.weekend = p.weekdays(v2, &f)?,
                        "days_off" => {
                            for d in p.strings(v2, &f)? {
                                let parts: Vec<&str> = d.split('-').collect();
                                let num = |x: &str| x.parse::<u32>().ok();
                                let ok = match parts[..] {
                                    [y, m, dd] if y.len() == 4 => match (y.parse::<i64>().ok(), num(m), num(dd)) {
                                        (Some(y), Some(m), Some(dd)) if valid_day(m, dd) => {
                                            c.days_off.insert((y, m, dd));
                                            true
                                        }
                                        _ => false,
                                    },
                                    [m, dd] => match (num(m), num(dd)) {
                                        (Some(m), Some(dd)) if valid_day(m, dd) => {
                                            c.annual_days_off.insert((m, dd));
                                            true
                                        }
                                        _ => false,
                                    },
                                    _ => false,
                                };
                                if !ok {
                                    return Err(p.err(v2.span(), &f, format!("`{d}`: use YYYY-MM-DD, or MM-DD for every year")));
                                }
                            }
                        }
                        other => return Err(p.err(k2.span(), &f, format!("unknown key `{other}` (holidays, business_hours, weekend, days_off)"))),
                    }
                }
            }
            "reports" => {
                let r = &mut policy.reports;
                for (k2, v2) in p.table(v, "reports")?.iter() {
                    let f = format!("reports.{}", k2.get_ref());
                    match k2.get_ref().as_ref() {
                        "weekly_to" => {
                            r.to = p.strings(v2, &f)?;
                            if let Some(bad) = r.to.iter().find(|a| !a.contains('@') || a.chars().any(|c| c.is_control() || c == ',')) {
                                return Err(p.err(v2.span(), &f, format!("`{bad}` is not a mail address")));
                            }
                        }
                        "weekday" => {
                            let d = p.str(v2, &f)?;
                            r.weekday = weekday(d).ok_or_else(|| p.err(v2.span(), &f, format!("`{d}` is not a weekday (mon .. sun)")))?;
                        }
                        "hour" => {
                            let h = p.uint(v2, &f)?;
                            if h > 23 {
                                return Err(p.err(v2.span(), &f, format!("{h}: use 0 to 23")));
                            }
                            r.hour = h as u32;
                        }
                        "csv_encoding" => {
                            let e = p.str(v2, &f)?;
                            if !["utf-8", "utf-8-bom", "cp932"].contains(&e) {
                                return Err(p.err(v2.span(), &f, format!("`{e}`: use utf-8-bom, utf-8 or cp932")));
                            }
                            r.csv_encoding = e.to_string();
                        }
                        "top_senders" => r.top_senders = p.uint(v2, &f)?.clamp(1, 1000) as usize,
                        other => return Err(p.err(k2.span(), &f, format!("unknown key `{other}`: use weekly_to, weekday, hour, csv_encoding, top_senders"))),
                    }
                }
            }
            "links" => {
                let l = &mut policy.links;
                for (k2, v2) in p.table(v, "links")?.iter() {
                    let f = format!("links.{}", k2.get_ref());
                    match k2.get_ref().as_ref() {
                        "url" => {
                            let u = p.str(v2, &f)?.trim_end_matches('/');
                            let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
                            if rest.is_none_or(|r| r.is_empty() || r.contains(['?', '#']) || r.chars().any(|c| c.is_whitespace() || c.is_control())) {
                                return Err(p.err(v2.span(), &f, format!("`{u}`: use the download listener's address, `https://host[:port][/path]`")));
                            }
                            l.url = Some(u.to_string());
                        }
                        "expires" => {
                            l.expires = p.duration(v2, &f)?;
                            if !(60..=366 * 86_400).contains(&l.expires) {
                                return Err(p.err(v2.span(), &f, "use 1m to 366d"));
                            }
                        }
                        "max_downloads" => l.max_downloads = p.uint(v2, &f)?.min(1_000_000) as u32,
                        "password" => l.password = p.bool(v2, &f)?,
                        other => return Err(p.err(k2.span(), &f, format!("unknown key `{other}`: use url, expires, max_downloads, password"))),
                    }
                }
            }
            "alerts" => {
                let a = &mut policy.alerts;
                for (k2, v2) in p.table(v, "alerts")?.iter() {
                    let f = format!("alerts.{}", k2.get_ref());
                    match k2.get_ref().as_ref() {
                        "jsonl" => {
                            let s = p.str(v2, &f)?;
                            let path = Path::new(s);
                            // Relative to the policy file.
                            a.jsonl = Some(match file.and_then(Path::parent) {
                                Some(d) if path.is_relative() => d.join(path),
                                _ => path.to_path_buf(),
                            });
                        }
                        "syslog" => a.syslog = Some(p.str(v2, &f)?.to_string()),
                        "facility" => {
                            let n = p.uint(v2, &f)?;
                            if n > 23 {
                                return Err(p.err(v2.span(), &f, format!("{n}: use 0 to 23 (16 = local0)")));
                            }
                            a.facility = n as u8;
                        }
                        "webhook" => a.webhook = Some(p.str(v2, &f)?.to_string()),
                        "webhook_authorization" => a.webhook_authorization = Some(p.str(v2, &f)?.to_string()),
                        "min_action" => {
                            let s = p.str(v2, &f)?;
                            a.min_action = Action::parse(s).ok_or_else(|| p.err(v2.span(), &f, format!("`{s}`: use audit, alert, hold or block")))?;
                        }
                        "max_attempts" => a.max_attempts = p.uint(v2, &f)?.clamp(1, 100) as u32,
                        other => return Err(p.err(k2.span(), &f, format!("unknown key `{other}`: use jsonl, syslog, facility, webhook, webhook_authorization, min_action, max_attempts"))),
                    }
                }
                let check = a.clone();
                if let Err(m) = check.validate() {
                    return Err(p.err(v.span(), "alerts", m));
                }
            }
            "approval" => {
                for (k2, v2) in p.table(v, "approval")?.iter() {
                    let f = format!("approval.{}", k2.get_ref());
                    match k2.get_ref().as_ref() {
                        "release_command" => policy.release_command = non_empty(p.str(v2, &f)?),
                        "discard_command" => policy.discard_command = non_empty(p.str(v2, &f)?),
                        "notify_command" => policy.notify_command = non_empty(p.str(v2, &f)?),
                        "notify_from" => policy.notify_from = non_empty(p.str(v2, &f)?),
                        "console_url" => {
                            let u = p.str(v2, &f)?;
                            if !(u.is_empty() || u.starts_with("https://") || u.starts_with("http://")) {
                                return Err(p.err(v2.span(), &f, "the console's address starts with https:// (or http://)"));
                            }
                            policy.console_url = non_empty(u.trim_end_matches('/'));
                        }
                        "allow_self_approval" => policy.allow_self_approval = p.bool(v2, &f)?,
                        other => return Err(p.err(k2.span(), &f, format!("unknown key `{other}`: use release_command, discard_command, notify_command, notify_from, console_url, allow_self_approval"))),
                    }
                }
            }
            "groups" => {
                for (g, members) in p.table(v, "groups")?.iter() {
                    policy.groups.insert(g.get_ref().to_string(), p.strings(members, &format!("groups.{}", g.get_ref()))?);
                }
            }
            "rule" => {
                let DeValue::Array(rules) = v.get_ref() else {
                    return Err(p.err(v.span(), "rule", "use [[rule]] tables"));
                };
                for (i, r) in rules.iter().enumerate() {
                    p.rule.set(i);
                    policy.rules.push(rule(&p, r, i, default_mode)?);
                }
            }
            other => return Err(p.err(k.span(), other, format!("unknown table `{other}`: use [policy], [groups], [calendar], [alerts], [approval], [reports], [links] and [[rule]]"))),
        }
    }
    // Ids are unique; groups used by rules exist.
    let mut seen = BTreeMap::new();
    for (i, r) in policy.rules.iter().enumerate() {
        if let Some(j) = seen.insert(r.id.clone(), i) {
            return Err(RuleError {
                document: "policy",
                file: file.map(Path::to_path_buf),
                line: 0,
                column: 0,
                field: format!("rule[{i}].id"),
                message: format!("rule id `{}` is used by rule[{j}] too", r.id),
            });
        }
    }
    if policy.links.url.is_none() {
        if let Some(e) = p.link_rule.take() {
            return Err(e);
        }
    }
    policy.detector_refs = p.detectors.into_inner();
    Ok(policy)
}

fn rule(p: &P<'_>, v: &V<'_>, i: usize, default_mode: Mode) -> Result<Rule, RuleError> {
    let field = format!("rule[{i}]");
    let t = p.table(v, &field)?;
    let mut r = Rule {
        id: String::new(),
        description: String::new(),
        mode: default_mode,
        severity: "medium".into(),
        action: Action::Audit,
        when: Cond::All(Vec::new()),
        unless: None,
        stop: false,
        message_ja: None,
        message_en: None,
        approvers: Vec::new(),
        approver_group: None,
        expires: 3 * 86_400,
        link_expires: None,
        delay: 600,
        add_header: None,
        subject_prefix: None,
        evidence_days: None,
        offline: Offline::Allow,
    };
    let mut has_when = false;
    let mut expires_given = false;
    for (k, x) in t.iter() {
        let key = k.get_ref().as_ref();
        let f = format!("{field}.{key}");
        match key {
            "id" => r.id = p.str(x, &f)?.to_string(),
            "description" => r.description = p.str(x, &f)?.to_string(),
            "mode" => {
                r.mode = match p.str(x, &f)? {
                    "enforce" => Mode::Enforce,
                    "monitor" => Mode::Monitor,
                    s => return Err(p.err(x.span(), &f, format!("`{s}`: use enforce or monitor"))),
                }
            }
            "severity" => {
                let s = p.str(x, &f)?;
                if !matches!(s, "info" | "low" | "medium" | "high" | "critical") {
                    return Err(p.err(
                        x.span(),
                        &f,
                        format!("`{s}`: use info, low, medium, high or critical"),
                    ));
                }
                r.severity = s.to_string();
            }
            "action" => {
                let s = p.str(x, &f)?;
                r.action = Action::parse(s).ok_or_else(|| {
                    p.err(
                        x.span(),
                        &f,
                        format!(
                            "`{s}`: use allow, audit, tag, bcc, link, alert, delay, hold or block"
                        ),
                    )
                })?;
                if r.action == Action::Link && p.link_rule.borrow().is_none() {
                    *p.link_rule.borrow_mut() = Some(p.err(
                        x.span(),
                        &f,
                        "`link` needs `[links] url`: the download listener's public address (`https://dl.example.co.jp`)",
                    ));
                }
            }
            "when" => {
                r.when = p.cond(x, &f)?;
                has_when = true;
            }
            "unless" => r.unless = Some(p.cond(x, &f)?),
            "stop" => r.stop = p.bool(x, &f)?,
            "offline" => {
                r.offline = match p.str(x, &f)? {
                    "allow" => Offline::Allow,
                    "hold" => Offline::Hold,
                    "block" => Offline::Block,
                    s => {
                        return Err(p.err(x.span(), &f, format!("`{s}`: use allow, hold or block")))
                    }
                }
            }
            "message_ja" => r.message_ja = Some(p.str(x, &f)?.to_string()),
            "message_en" => r.message_en = Some(p.str(x, &f)?.to_string()),
            "approvers" => r.approvers = p.strings(x, &f)?,
            "approver_group" => r.approver_group = Some(p.str(x, &f)?.to_string()),
            "expires" => {
                r.expires = p.duration(x, &f)?;
                expires_given = true;
                if !(1..=366 * 86_400).contains(&r.expires) {
                    return Err(p.err(x.span(), &f, "use 1s to 366d"));
                }
            }
            "delay" => {
                r.delay = p.duration(x, &f)?;
                if !(1..=7 * 86_400).contains(&r.delay) {
                    return Err(p.err(x.span(), &f, "use 1s to 7d"));
                }
            }
            "add_header" => {
                let s = p.str(x, &f)?;
                let (n, val) = s
                    .split_once(':')
                    .ok_or_else(|| p.err(x.span(), &f, "use `Name: value`"))?;
                let n = n.trim();
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(p.err(x.span(), &f, format!("`{n}` is not a header name")));
                }
                r.add_header = Some((n.to_string(), val.trim().to_string()));
            }
            "subject_prefix" => r.subject_prefix = Some(p.str(x, &f)?.to_string()),
            "evidence_days" => r.evidence_days = Some(p.uint(x, &f)?.min(36_500) as u32),
            other => return Err(p.err(k.span(), &f, format!("unknown key `{other}`"))),
        }
    }
    if r.id.is_empty() {
        return Err(p.err(v.span(), &format!("{field}.id"), "a rule needs an id"));
    }
    if r.action == Action::Link && expires_given {
        r.link_expires = Some(r.expires);
    }
    if !has_when {
        return Err(p.err(
            v.span(),
            &format!("{field}.when"),
            "a rule needs a `when` condition",
        ));
    }
    if r.action == Action::Tag && r.add_header.is_none() && r.subject_prefix.is_none() {
        return Err(p.err(
            v.span(),
            &format!("{field}.action"),
            "a tag rule needs add_header or subject_prefix",
        ));
    }
    Ok(r)
}

/// `HH:MM` (00:00 to 24:00) as minutes of the day.
fn hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
}

fn valid_day(m: u32, d: u32) -> bool {
    (1..=12).contains(&m)
        && (1..=[31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1]).contains(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_parses() {
        let p = parse_policy(DEFAULT_POLICY, None).unwrap();
        assert!(p.rules.len() >= 5);
        assert!(p.rules.iter().all(|r| r.mode == Mode::Monitor));
    }

    #[test]
    fn errors_name_line_and_field() {
        let text = "[policy]\ninternal_domains = [\"example.co.jp\"]\n\n[[rule]]\nid = \"r1\"\naction = \"block\"\nwhen = { detector = \"jp_my_number\", min_confidence = \"hi\" }\n";
        let e = parse_policy(text, Some(Path::new("p.toml"))).unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert_eq!(e.field, "rule[0].when.min_confidence", "{e}");
        let e = parse_policy("[[rule]]\nid = \"x\"\naction = \"explode\"\nwhen = { recipients = \"any_external\" }\n", None).unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "rule[0].action"), "{e}");
        let e = parse_policy(
            "[[rule]]\nid = \"x\"\nwhen = { recipients = \"any_external\", detector = \"x\" }\n",
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("one condition per table"), "{e}");
    }

    #[test]
    fn the_typical_company_policy_in_the_docs_is_valid() {
        let doc = include_str!("../../docs/policy.md");
        let at = doc.find("## A typical Japanese company").unwrap();
        let block = &doc[at..];
        let start = block.find("```toml\n").unwrap() + 8;
        let text = &block[start..start + block[start..].find("```").unwrap()];
        let p = parse_policy(text, None).unwrap();
        assert_eq!(p.rules.len(), 10);
        assert_eq!(p.reports.to, ["security@example.co.jp"]);
        for a in [
            Action::Hold,
            Action::Delay,
            Action::Bcc,
            Action::Link,
            Action::Block,
        ] {
            assert!(p.rules.iter().any(|r| r.action == a), "{a:?}");
        }
        p.check_detectors(&crate::Engine::builtin()).unwrap();
    }

    #[test]
    fn the_business_calendar_is_read_checked_and_used() {
        use crate::policy::{Facts, NoHistory};
        let text = "[policy]\ninternal_domains = [\"example.co.jp\"]\n\n\
             [calendar]\nholidays = \"jp\"\nbusiness_hours = { from = \"09:00\", to = \"18:00\" }\n\
             weekend = [\"sat\", \"sun\"]\ndays_off = [\"12-29\", \"2026-12-07\"]\n\n\
             [[rule]]\nid = \"after-hours\"\naction = \"hold\"\nwhen = { outside_business_hours = true }\n\n\
             [[rule]]\nid = \"holiday\"\naction = \"alert\"\nwhen = { holiday = true }\n";
        let p = parse_policy(text, None).unwrap();
        let at =
            |y, m, d, h: i64| crate::timeutil::days_from_civil(y, m, d) * 86_400 + (h - 9) * 3600;
        let judge = |t: i64| {
            let f = Facts {
                time: t,
                sender: "a@example.co.jp".into(),
                ..Facts::default()
            };
            let v = p.evaluate(&f, &NoHistory).unwrap();
            (
                v.matched.iter().map(|m| m.rule.clone()).collect::<Vec<_>>(),
                v.matched
                    .iter()
                    .flat_map(|m| m.reasons.clone())
                    .collect::<Vec<_>>()
                    .join(" | "),
                v.signals
                    .iter()
                    .any(|s| s.name.starts_with("outside business hours")),
            )
        };
        assert_eq!(judge(at(2026, 12, 4, 10)).0, Vec::<String>::new()); // Friday 10:00
        let (rules, why, signal) = judge(at(2026, 11, 23, 10)); // 勤労感謝の日
        assert_eq!(rules, ["after-hours", "holiday"]);
        assert!(
            why.contains("public holiday (勤労感謝の日)") && signal,
            "{why}"
        );
        assert!(judge(at(2026, 12, 29, 11)).1.contains("company day off"));
        assert_eq!(judge(at(2026, 12, 4, 19)).0, ["after-hours"]);
        // Errors name the field.
        for (bad, field) in [
            ("[calendar]\nholidays = \"us\"\n", "calendar.holidays"),
            (
                "[calendar]\nbusiness_hours = { from = \"9\", to = \"18:00\" }\n",
                "calendar.business_hours.from",
            ),
            (
                "[calendar]\nweekend = [\"friday-ish\", \"zzz\"]\n",
                "calendar.weekend",
            ),
            (
                "[calendar]\ndays_off = [\"2026-02-30\"]\n",
                "calendar.days_off",
            ),
            ("[calendar]\nhoilday = \"jp\"\n", "calendar.hoilday"),
        ] {
            let e = parse_policy(bad, None).unwrap_err();
            assert_eq!(e.field, field, "{bad}: {e}");
        }
    }

    #[test]
    fn spoofed_names_and_upload_hosts() {
        use crate::policy::{AttachmentFact, Facts, NoHistory};
        let p = parse_policy(
            "[policy]\ninternal_domains = [\"example.co.jp\"]\ninternal_hosts = [\"*.intra.example\"]\n\n\
             [[rule]]\nid = \"spoof\"\naction = \"block\"\nwhen = { filename_spoofing = true }\n\n\
             [[rule]]\nid = \"out\"\naction = \"alert\"\nwhen = { recipients = \"any_external\" }\n\n\
             [[rule]]\nid = \"box\"\naction = \"audit\"\nwhen = { destination_host = [\"*.box.com\"] }\n",
            None,
        )
        .unwrap();
        let mut f = Facts {
            sender: "a@example.co.jp".into(),
            ..Facts::default()
        };
        f.attachments.push(AttachmentFact {
            location: "x".into(),
            name: "invoice\u{202E}xcod.exe".into(),
            kind: "exe".into(),
            size: 1,
            sha256: String::new(),
            extension_mismatch: false,
            depth: 0,
            origin: None,
        });
        let v = p.evaluate(&f, &NoHistory).unwrap();
        assert_eq!(v.action, crate::policy::Action::Block);
        assert!(
            v.matched[0].reasons[0].contains("\\u{202e}"),
            "{:?}",
            v.matched
        );
        assert!(v.signals.iter().any(|s| s.name.contains("bidi")));
        f.attachments.clear();
        f.destination_host = Some("app.box.com".into());
        let rules: Vec<String> = p
            .evaluate(&f, &NoHistory)
            .unwrap()
            .matched
            .into_iter()
            .map(|m| m.rule)
            .collect();
        assert_eq!(rules, ["out", "box"]);
        for internal in ["wiki.intra.example", "mail.example.co.jp"] {
            f.destination_host = Some(internal.into());
            assert!(
                p.evaluate(&f, &NoHistory).unwrap().matched.is_empty(),
                "{internal}"
            );
        }
        assert!(crate::policy::host_matches("Box.COM.", "*.box.com"));
        assert!(!crate::policy::host_matches("evilbox.com", "*.box.com"));
        assert_eq!(crate::policy::normalize_host("[::1]:8443"), "::1");
    }
}
