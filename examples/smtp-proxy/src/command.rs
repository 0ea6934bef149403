//! SMTP command lines from the client: checked (a command ends in CRLF and holds no other CR,
//! no LF and no NUL), parsed by `smtp-proto` into typed requests, and acted on as typed values
//! only. What goes upstream is written again from the typed value ([`mail_line`],
//! [`rcpt_line`]), never the client's raw line, so the address the policy judged is the address
//! the upstream server receives: `RCPT TO:<"x@corp.example>"@evil.example>` is judged and sent
//! as a mailbox of `evil.example`, quoted the same way.
//!
//! Only the parameters the proxy offers pass (`SIZE`, `BODY=7BIT|8BITMIME`, `SMTPUTF8`;
//! `AUTH=` is accepted and dropped); any other parameter is refused with `555`, because a
//! parameter the proxy does not understand could change what the upstream does with the mail.

use smtp_proto::{MailFrom, RcptTo, Request};

/// A client command, as the proxy acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO name`.
    Ehlo(String),
    /// `HELO name`.
    Helo(String),
    /// `STARTTLS`.
    StartTls,
    /// `AUTH mechanism [initial-response]`.
    Auth {
        /// The mechanism.
        mechanism: Mechanism,
        /// The initial response, if given.
        initial: Option<String>,
    },
    /// `MAIL FROM:<...>` with its accepted parameters.
    Mail(MailFrom<String>),
    /// `RCPT TO:<...>`.
    Rcpt(RcptTo<String>),
    /// `DATA`.
    Data,
    /// `BDAT` (not offered).
    Bdat,
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY`, `EXPN`, `HELP`, `ETRN` and the like: answered locally, never relayed.
    Other(&'static str),
}

/// SASL mechanisms the proxy relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `PLAIN`.
    Plain,
    /// `LOGIN`.
    Login,
    /// Anything else (refused with 504).
    Other,
}

/// A refused command: the reply, and whether the connection must end (a client that sends bare
/// line feeds may be trying to make the proxy and its upstream disagree on where a command or a
/// message ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Reply code.
    pub code: u16,
    /// Reply text (with its enhanced status code).
    pub text: String,
    /// Close the connection after the reply.
    pub close: bool,
}

fn refuse(code: u16, text: impl Into<String>) -> Refusal {
    Refusal {
        code,
        text: text.into(),
        close: false,
    }
}

/// Parses one command line, given without its line end; `crlf` says whether it ended in CRLF.
pub fn parse(line: &[u8], crlf: bool) -> Result<Command, Refusal> {
    if !crlf {
        return Err(Refusal {
            code: 500,
            text: "5.5.2 Error: bare <LF> received".into(),
            close: true,
        });
    }
    if line.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(refuse(500, "5.5.2 Error: bare <CR> or NUL in the command"));
    }
    if std::str::from_utf8(line).is_err() {
        return Err(refuse(500, "5.5.2 Error: the command is not UTF-8"));
    }
    let mut with_lf = Vec::with_capacity(line.len() + 2);
    with_lf.extend_from_slice(line);
    with_lf.extend_from_slice(b"\r\n");
    use smtp_proto::Error as E;
    let req = match Request::parse(&mut with_lf.iter()) {
        Ok(r) => r.into_owned(),
        Err(E::UnknownCommand) => return Err(refuse(500, "5.5.2 Command not recognized")),
        Err(E::SyntaxError { syntax }) => {
            return Err(refuse(501, format!("5.5.4 Syntax: {syntax}")))
        }
        Err(E::InvalidSenderAddress) => return Err(refuse(501, "5.1.7 Bad sender address syntax")),
        Err(E::InvalidRecipientAddress) => {
            return Err(refuse(501, "5.1.3 Bad recipient address syntax"))
        }
        Err(E::InvalidParameter { param }) => {
            return Err(refuse(501, format!("5.5.4 Invalid parameter {param}")))
        }
        Err(E::UnsupportedParameter { param }) => {
            return Err(refuse(
                555,
                format!("5.5.4 Unsupported parameter {}", printable(&param)),
            ))
        }
        Err(_) => return Err(refuse(500, "5.5.2 Syntax error")),
    };
    Ok(match req {
        Request::Ehlo { host } => Command::Ehlo(host),
        Request::Helo { host } => Command::Helo(host),
        Request::Lhlo { .. } => Command::Other("LHLO"),
        Request::StartTls => Command::StartTls,
        Request::Auth {
            mechanism,
            initial_response,
        } => Command::Auth {
            mechanism: match mechanism {
                smtp_proto::AUTH_PLAIN => Mechanism::Plain,
                smtp_proto::AUTH_LOGIN => Mechanism::Login,
                _ => Mechanism::Other,
            },
            initial: (!initial_response.is_empty()).then_some(initial_response),
        },
        Request::Mail { from } if !from.address.is_empty() && !valid_mailbox(&from.address) => {
            return Err(refuse(501, "5.1.7 Bad sender address syntax"))
        }
        Request::Rcpt { to } if !valid_mailbox(&to.address) => {
            return Err(refuse(501, "5.1.3 Bad recipient address syntax"))
        }
        Request::Mail { from } => Command::Mail(check_mail(from)?),
        Request::Rcpt { to } => Command::Rcpt(check_rcpt(to)?),
        Request::Data => Command::Data,
        Request::Bdat { .. } => Command::Bdat,
        Request::Rset => Command::Rset,
        Request::Noop { .. } => Command::Noop,
        Request::Quit => Command::Quit,
        Request::Vrfy { .. } => Command::Other("VRFY"),
        Request::Expn { .. } => Command::Other("EXPN"),
        Request::Help { .. } => Command::Other("HELP"),
        Request::Etrn { .. } => Command::Other("ETRN"),
        Request::Atrn { .. } => Command::Other("ATRN"),
        Request::Burl { .. } => Command::Other("BURL"),
    })
}

fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(40)
        .collect()
}

/// The MAIL parameters the proxy offers: SIZE, BODY=7BIT/8BITMIME, SMTPUTF8 (and AUTH=,
/// dropped).
fn check_mail(m: MailFrom<String>) -> Result<MailFrom<String>, Refusal> {
    let allowed =
        smtp_proto::MAIL_BODY_7BIT | smtp_proto::MAIL_BODY_8BITMIME | smtp_proto::MAIL_SMTPUTF8;
    let other = m.flags & !allowed != 0
        || m.trans_id.is_some()
        || m.by != 0
        || m.env_id.is_some()
        || m.solicit.is_some()
        || m.mtrk.is_some()
        || m.hold_for != 0
        || m.hold_until != 0
        || m.mt_priority != 0;
    if other {
        return Err(refuse(
            555,
            "5.5.4 MAIL parameters other than SIZE, BODY and SMTPUTF8 are not supported",
        ));
    }
    Ok(m)
}

/// RCPT takes no parameters here (DSN is not offered).
fn check_rcpt(r: RcptTo<String>) -> Result<RcptTo<String>, Refusal> {
    if r.flags != 0 || r.orcpt.is_some() || r.rrvs != 0 {
        return Err(refuse(555, "5.5.4 RCPT parameters are not supported"));
    }
    Ok(r)
}

/// A mailbox whose canonical path means the same mailbox: a local part without control
/// characters, `@`, and a domain of labels (letters, digits, hyphens; non-ASCII for
/// internationalised names) or an address literal. smtp-proto also accepts quoted strings
/// inside the domain; such an address cannot be written back unambiguously and is refused.
pub fn valid_mailbox(addr: &str) -> bool {
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.chars().any(char::is_control) || domain.is_empty() {
        return false;
    }
    // Address literals (`[192.0.2.1]`) are refused: smtp-proto does not parse them, so the only
    // way to one is a quoted domain (`"[X]"`), which would be written upstream as a path that
    // does not parse back to the same mailbox (found by the fuzzer). Mail to an IP address is
    // not something an employee's client sends.
    if domain.starts_with('[') {
        return false;
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| {
                c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && !c.is_control())
            })
    })
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// A mailbox as an SMTP path: `<local@domain>`, the local part quoted (with `"` and `\`
/// escaped) unless it is a dot-atom; `<>` for the null path. The domain is what follows the
/// last `@`, which cannot occur in a domain.
pub fn path(addr: &str) -> String {
    if addr.is_empty() {
        return "<>".into();
    }
    let (local, domain) = match addr.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (addr, None),
    };
    let dot_atom = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c == '.' || is_atext(c));
    let local = if dot_atom {
        local.to_string()
    } else {
        let mut q = String::with_capacity(local.len() + 2);
        q.push('"');
        for c in local.chars() {
            if c == '"' || c == '\\' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    };
    match domain {
        Some(d) => format!("<{local}@{d}>"),
        None => format!("<{local}>"),
    }
}

/// `MAIL FROM:` written from the parsed value.
pub fn mail_line(m: &MailFrom<String>) -> String {
    let mut s = format!("MAIL FROM:{}", path(&m.address));
    if m.size > 0 {
        s.push_str(&format!(" SIZE={}", m.size));
    }
    if m.flags & smtp_proto::MAIL_BODY_8BITMIME != 0 {
        s.push_str(" BODY=8BITMIME");
    } else if m.flags & smtp_proto::MAIL_BODY_7BIT != 0 {
        s.push_str(" BODY=7BIT");
    }
    if m.flags & smtp_proto::MAIL_SMTPUTF8 != 0 {
        s.push_str(" SMTPUTF8");
    }
    s
}

/// `RCPT TO:` written from the parsed value.
pub fn rcpt_line(r: &RcptTo<String>) -> String {
    format!("RCPT TO:{}", path(&r.address))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Command {
        parse(s.as_bytes(), true).unwrap()
    }

    #[test]
    fn the_judged_recipient_is_the_forwarded_one() {
        let Command::Rcpt(r) = ok(r#"RCPT TO:<"x@corp.example>"@evil.example>"#) else {
            panic!()
        };
        assert_eq!(ping32dlp::policy::domain_of(&r.address), "evil.example");
        assert_eq!(rcpt_line(&r), r#"RCPT TO:<"x@corp.example>"@evil.example>"#);
        // The line forwarded upstream parses back to the same address.
        let Command::Rcpt(again) = ok(&rcpt_line(&r)) else {
            panic!()
        };
        assert_eq!(again.address, r.address);
        // A '>' outside quotes ends the path: what follows is not a parameter we know.
        assert!(parse(b"RCPT TO:<x@corp.example>@evil.example>", true).is_err());
        // Quoted strings in the domain (smtp-proto takes them) cannot be written back.
        assert_eq!(
            parse(br#"RCPT TO:<"xO:<"x@co"c:e*co"cle>"#, true)
                .unwrap_err()
                .code,
            501
        );
        // A quoted domain that unquotes to a bracketed address (found by the fuzzer), and
        // address literals themselves, are refused.
        for line in [
            r#"RCPT TO:<?@"[X]">"#,
            r#"RCPT TO:<a@"[192.0.2.1]">"#,
            "RCPT TO:<a@[192.0.2.1]>",
        ] {
            assert_eq!(
                parse(line.as_bytes(), true).unwrap_err().code,
                501,
                "{line}"
            );
        }
        let Command::Rcpt(r) = ok("rcpt to:<@relay.example:bob@partner.example>") else {
            panic!()
        };
        assert_eq!(rcpt_line(&r), "RCPT TO:<bob@partner.example>");
    }

    #[test]
    fn control_characters_and_bare_line_ends_are_refused() {
        assert!(parse(b"RCPT TO:<a@corp.example>", false).unwrap_err().close);
        assert_eq!(
            parse(b"RCPT TO:<a@corp.example>\rRCPT TO:<b@evil.example>", true)
                .unwrap_err()
                .code,
            500
        );
        assert_eq!(
            parse(b"MAIL FROM:<a\0@x.example>", true).unwrap_err().code,
            500
        );
        assert_eq!(
            parse(b"MA\rIL FROM:<a@x.example>", true).unwrap_err().code,
            500
        );
    }

    #[test]
    fn only_offered_parameters_pass_and_are_written_canonically() {
        let Command::Mail(m) =
            ok("mail from:<Ichiro@Example.co.jp>  size=1234 body=8bitmime SMTPUTF8 AUTH=<>")
        else {
            panic!()
        };
        assert_eq!(
            mail_line(&m),
            "MAIL FROM:<Ichiro@Example.co.jp> SIZE=1234 BODY=8BITMIME SMTPUTF8"
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@x.example> RET=FULL", true)
                .unwrap_err()
                .code,
            555
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@x.example> XFOO=1", true)
                .unwrap_err()
                .code,
            555
        );
        assert_eq!(
            parse(b"RCPT TO:<a@x.example> NOTIFY=NEVER", true)
                .unwrap_err()
                .code,
            555
        );
        let Command::Mail(m) = ok("MAIL FROM:<>") else {
            panic!()
        };
        assert_eq!(mail_line(&m), "MAIL FROM:<>");
        assert!(matches!(
            ok("AUTH PLAIN AGljaGlybwBzZWNyZXQ="),
            Command::Auth {
                mechanism: Mechanism::Plain,
                initial: Some(_)
            }
        ));
        assert_eq!(ok("VRFY root"), Command::Other("VRFY"));
    }

    #[test]
    fn paths_quote_what_is_not_a_dot_atom() {
        assert_eq!(path("a.b@x.example"), "<a.b@x.example>");
        assert_eq!(path("a b@x.example"), "<\"a b\"@x.example>");
        assert_eq!(path("a\"b\\c@x.example"), "<\"a\\\"b\\\\c\"@x.example>");
        assert_eq!(path(".a@x"), "<\".a\"@x>");
        assert_eq!(path("山田@例え.jp"), "<山田@例え.jp>");
        assert_eq!(path(""), "<>");
    }
}
