//! Japanese and English. Texts are written in English in the code; [`t`] gives the Japanese
//! of a text for Japanese pages (a test checks that every text the pages use has one).

/// Page language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 日本語.
    Ja,
    /// English.
    En,
}

impl Lang {
    /// `ja` / `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    /// `ja` or `en` (else `None`).
    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The browser's choice from `Accept-Language` (RFC 9110 12.5.4: highest weight first,
    /// the first listed among equals), else `default`.
    pub fn pick(header: Option<&str>, default: Lang) -> Lang {
        let Some(h) = header else {
            return default;
        };
        let mut best: Option<(f32, Lang)> = None;
        for item in h.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|v| v.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let lang = match primary {
                "ja" => Lang::Ja,
                "en" => Lang::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(default, |(_, l)| l)
    }
}

/// The text in the page's language.
pub fn t(l: Lang, en: &str) -> &str {
    if l == Lang::En {
        return en;
    }
    JA.iter().find(|(k, _)| *k == en).map_or(en, |(_, ja)| ja)
}

/// English -> Japanese.
const JA: &[(&str, &str)] = &[
    // frame and sign-in
    ("DLP console", "情報漏洩対策コンソール"),
    ("Download links", "ダウンロードリンク"),
    ("Who downloaded", "ダウンロードの記録"),
    ("Record", "記録"),
    ("Downloads", "ダウンロード回数"),
    ("Outcome", "結果"),
    ("downloaded", "ダウンロード済み"),
    ("limit_reached", "回数上限"),
    ("wrong_password", "パスワード誤り"),
    ("locked", "ロック"),
    ("not_kept", "保管なし"),
    ("Requests", "承認依頼"),
    ("Audit log", "監査ログ"),
    ("Admin log", "管理操作ログ"),
    ("Reports", "レポート"),
    ("Period", "期間"),
    ("days", "日間"),
    ("Show", "表示"),
    ("Senders (CSV for Excel)", "送信者別 (Excel 用 CSV)"),
    ("Departments (CSV for Excel)", "部署別 (Excel 用 CSV)"),
    ("By department", "部署別"),
    ("Department", "部署"),
    ("Mails", "メール数"),
    ("External", "社外宛て"),
    ("Held", "保留"),
    ("Blocked", "ブロック"),
    ("Senders", "送信者数"),
    ("Files sent outside most", "社外に多く送られたファイル"),
    ("Risk by sender", "送信者別リスク"),
    ("The highest risk of one of the sender's mails, plus 10 per blocked mail (up to 3), 5 per held mail (up to 4) and 2 per alert (up to 5); at most 100.", "送信者のメールのうち最も高いリスク値に、ブロック 1 通につき 10 (3 通まで)、保留 1 通につき 5 (4 通まで)、警告 1 通につき 2 (5 通まで) を加えた値です (最大 100)。"),
    ("Why", "内訳"),
    ("report_view", "レポートの閲覧"),
    ("report_export", "レポートの出力"),
    ("The company directory cannot be reached; try again later.", "社内ディレクトリに接続できません。しばらくしてからやり直してください。"),
    ("Your directory account may not use this console.", "このディレクトリのアカウントはコンソールを利用できません。"),
    ("Your account is limited to some departments; this page covers the whole company.", "このアカウントは一部の部署に限定されています。このページは全社が対象のため表示できません。"),
    ("Administrator", "管理者"),
    ("Action", "操作内容"),
    ("Target", "対象"),
    ("From", "接続元"),
    ("Nothing yet.", "まだありません。"),
    ("The admin log cannot be written just now, so this was not done. Try again later.", "管理操作ログに書き込めないため、この操作は行われませんでした。しばらくしてからやり直してください。"),
    ("audit_search", "監査ログ検索"),
    ("record_view", "監査記録の閲覧"),
    ("request_view", "承認依頼の閲覧"),
    ("message_view", "メール本体のダウンロード"),
    ("attachment_view", "添付ファイルの閲覧"),
    ("attachment_download", "添付ファイルのダウンロード"),
    ("policy_upload", "ポリシーの配布"),
    ("enrol_token", "登録トークンの発行"),
    ("agent_revoke", "エージェントの失効"),
    ("admin_log_view", "管理操作ログの閲覧"),
    ("Dashboard", "ダッシュボード"),
    ("Sign in", "サインイン"),
    ("Sign out", "サインアウト"),
    ("Sign in first.", "先にサインインしてください。"),
    ("Account", "アカウント"),
    ("Password", "パスワード"),
    ("admin", "管理者"),
    ("approver", "承認者"),
    ("The account or the password is wrong.", "アカウントまたはパスワードが違います。"),
    ("Approvers can also use the one-time link in their approval mail.", "承認者は承認依頼メールの一回限りのリンクからも開けます。"),
    ("Open the approval request", "承認依頼を開く"),
    ("This one-time link signs you in to this request only.", "この一回限りのリンクでは、この承認依頼だけを開けます。"),
    ("Open the request", "承認依頼を開く"),
    ("Request", "申請番号"),
    ("A sign-in link opens only its own request. Sign in with your account to see more.", "リンクからのサインインでは、その承認依頼だけを開けます。ほかを見るにはアカウントでサインインしてください。"),
    // errors
    ("Not allowed", "権限がありません"),
    ("Not found", "見つかりません"),
    ("Already decided", "判断済みです"),
    ("Too many attempts", "試行回数が多すぎます"),
    ("Error", "エラー"),
    ("Back to the start page", "トップへ戻る"),
    ("This page is for administrators.", "このページは管理者専用です。"),
    ("Gateway", "ゲートウェイ"),
    ("This request is not assigned to you.", "この承認依頼はあなたの担当ではありません。"),
    ("You sent this mail: another approver must approve it.", "ご自身が送信したメールです。ほかの承認者が承認する必要があります。"),
    ("This request was already decided or has expired.", "この承認依頼は判断済みか、期限切れです。"),
    ("There is no such page.", "このページはありません。"),
    ("There is no such request.", "この承認依頼はありません。"),
    ("There is no such record.", "この記録はありません。"),
    ("There is no such attachment.", "この添付ファイルはありません。"),
    ("This address does not take that method.", "このアドレスはその操作を受け付けません。"),
    ("The form was sent from another site.", "フォームが別のサイトから送信されました。"),
    ("The form has expired or did not come from this console. Reload the page and try again.", "フォームの有効期限が切れたか、このコンソールから送信されたものではありません。ページを再読み込みしてやり直してください。"),
    ("Something went wrong; the log says what.", "エラーが発生しました。詳細はログを参照してください。"),
    ("Choose approve or reject.", "承認か却下を選んでください。"),
    ("No copy of this file is kept (only the message's own attachments are).", "このファイルの控えは保存されていません (保存されるのはメールに直接添付されたファイルだけです)。"),
    ("The kept copy is gone (its retention ended).", "控えは保存期間が終わり削除されました。"),
    ("The held message is not kept here (the mail server holds it).", "保留中のメールはメールサーバが保管しています。"),
    ("The sign-in link was used already; ask for a new one or sign in.", "このリンクは使用済みです。新しいリンクを依頼するか、サインインしてください。"),
    ("The sign-in link has expired with its request.", "承認依頼の期限が過ぎたため、このリンクは使えません。"),
    ("The sign-in link is not valid.", "このリンクは無効です。"),
    ("Too many failed attempts. Try again later.", "失敗が続いたため、しばらくしてからお試しください。"),
    // requests
    ("Approval requests", "承認依頼"),
    ("waiting", "件が承認待ち"),
    ("Waiting", "承認待ち"),
    ("Decided / expired", "判断済み・期限切れ"),
    ("All", "すべて"),
    ("Nothing here. New requests appear as mail is held.", "該当する承認依頼はありません。メールが保留されるとここに表示されます。"),
    ("State", "状態"),
    ("Held at", "保留日時"),
    ("Sender", "送信者"),
    ("Recipients", "宛先"),
    ("Subject", "件名"),
    ("Why held", "保留の理由"),
    ("Attachments", "添付ファイル"),
    ("external", "社外"),
    ("(no subject)", "(件名なし)"),
    ("(any approver)", "(承認者の指定なし)"),
    ("Message", "メール"),
    ("Channel", "経路"),
    ("Size", "サイズ"),
    ("Approvers", "承認者"),
    ("until", "期限"),
    ("Approved. The mail is released to its recipients.", "承認しました。メールは宛先へ送信されます。"),
    ("Rejected. The mail is not sent and the sender is told why.", "却下しました。メールは送信されず、送信者に理由が通知されます。"),
    ("The audit record of this request is missing.", "この承認依頼の監査記録が見つかりません。"),
    ("Download the whole held message (.eml)", "保留中のメール全体をダウンロード (.eml)"),
    ("History", "履歴"),
    ("Time", "日時"),
    ("Who", "誰が"),
    ("What", "操作"),
    ("Detail", "詳細"),
    ("Decision", "判断"),
    ("By", "判断者"),
    ("At", "日時"),
    ("Comment", "コメント"),
    ("Comment (sent to the sender when rejected)", "コメント (却下の場合は送信者に通知されます)"),
    ("e.g. checked with the customer's contract", "例: 顧客との契約を確認済み"),
    ("Approve and send", "承認して送信"),
    ("Send now", "今すぐ送信"),
    ("Cancel sending", "送信を取り消す"),
    ("Reject", "却下"),
    ("Your views and your decision are recorded with your name and the time.", "閲覧と判断は、あなたの名前と日時とともに記録されます。"),
    // record details
    ("Why it was stopped", "止められた理由"),
    ("No rule matched.", "一致したルールはありません。"),
    ("Password-like lines in the body", "本文中のパスワードらしき行"),
    ("What was found (masked)", "検出された情報 (マスク済み)"),
    ("Nothing sensitive was found.", "機密情報は検出されませんでした。"),
    ("Detector", "検出項目"),
    ("Where", "場所"),
    ("Count", "件数"),
    ("distinct", "種類"),
    ("Examples", "例"),
    ("whole message", "メール全体"),
    ("No attachments.", "添付ファイルはありません。"),
    ("File", "ファイル"),
    ("Type", "種類"),
    ("Notes", "備考"),
    ("View", "表示"),
    ("Download", "ダウンロード"),
    ("unscannable", "検査不能"),
    ("unscannable:", "検査不能:"),
    ("extension does not match the content", "拡張子と中身が一致しません"),
    // attachment view
    ("Back to the request", "承認依頼へ戻る"),
    ("Text extracted from the file; detected sensitive values are masked.", "ファイルから抽出したテキストです。検出した機密情報はマスクしています。"),
    ("Could not be read", "読み取れませんでした"),
    ("No text could be extracted from this file.", "このファイルからテキストを抽出できませんでした。"),
    ("masked", "件マスク"),
    ("The text is cut here; download the file to see all of it.", "テキストはここまでです。全体はファイルをダウンロードして確認してください。"),
    // audit
    ("User", "ユーザー"),
    ("Recipient", "宛先"),
    ("Domain", "ドメイン"),
    ("Attachment SHA-256", "添付ファイルの SHA-256"),
    ("Since", "開始"),
    ("Until", "終了"),
    ("Rows", "件数"),
    ("Verdict", "判定"),
    ("Recipient role", "宛先の種類"),
    ("From header", "ヘッダーの差出人"),
    ("(any)", "(すべて)"),
    ("Search", "検索"),
    ("records", "件"),
    ("Found", "検出"),
    ("Risk", "リスク"),
    ("would", "適用時"),
    ("Would", "適用時の判定"),
    ("Client", "クライアント"),
    ("Queue ID", "キュー ID"),
    ("Approval", "承認依頼"),
    ("use a duration (30d, 12h) or a date (2026-11-01)", "期間 (30d, 12h) か日付 (2026-11-01) で指定してください"),
    // dashboard
    ("mails", "通のメール"),
    ("to outside", "通が社外宛て"),
    ("held", "保留"),
    ("blocked", "ブロック"),
    ("waiting for approval", "件が承認待ち"),
    ("Outbound mail per day", "日別の送信メール数"),
    ("all mail", "すべて"),
    ("Verdicts", "判定の内訳"),
    ("Top senders to outside", "社外への送信が多い送信者"),
    ("Top external domains", "送信先の多い社外ドメイン"),
    ("Top detectors", "検出の多い項目"),
    ("Files sent outside repeatedly", "社外へ繰り返し送られたファイル"),
    ("Times", "回数"),
    ("None in this period.", "この期間にはありません。"),
    ("No mail in this period.", "この期間のメールはありません。"),
    // states, actions, events
    ("pending", "承認待ち"),
    ("approved", "承認済み"),
    ("rejected", "却下"),
    ("expired", "期限切れ"),
    ("released", "送信済み"),
    ("discarded", "破棄"),
    ("allow", "許可"),
    ("audit", "記録"),
    ("tag", "タグ付け"),
    ("bcc", "Bcc変換"),
    ("alert", "警告"),
    ("hold", "保留"),
    ("delay", "送信遅延"),
    ("block", "ブロック"),
    ("enforce", "適用"),
    ("monitor", "監視のみ"),
    ("info", "情報"),
    ("low", "低"),
    ("medium", "中"),
    ("high", "高"),
    ("critical", "重大"),
    ("viewed the request", "承認依頼を閲覧"),
    ("viewed an attachment", "添付ファイルを閲覧"),
    ("downloaded an attachment", "添付ファイルをダウンロード"),
    ("downloaded the message", "メールをダウンロード"),
    ("told the sender", "送信者に通知"),
    ("mailed the approver", "承認者にリンクを送信"),
    ("signed in with the link", "リンクでサインイン"),
    ("other", "その他"),
    ("encrypted", "暗号化"),
    ("unsupported_format", "未対応の形式"),
    ("corrupt", "破損"),
    ("limit_exceeded", "上限超過"),
    ("not_inspected", "検査対象外"),
    // the endpoint fleet
    ("Agents", "エージェント"),
    ("Agent", "エージェント名"),
    ("A token enrols one agent, once, before it expires. It is shown once; the console keeps only its SHA-256.", "トークン1つで、有効期限までに1台のエージェントを1回だけ登録できます。表示は一度きりで、コンソールにはSHA-256だけが残ります。"),
    ("Copy it now: it is not shown again. It enrols one agent.", "今すぐコピーしてください。再表示はできません。1台のエージェントを登録できます。"),
    ("Enrolment token", "登録トークン"),
    ("Expires", "有効期限"),
    ("For (PC, user)", "用途（PC・利用者）"),
    ("Last seen", "最終接続"),
    ("Made", "作成"),
    ("Make a token", "トークンを作成"),
    ("New enrolment token", "新しい登録トークン"),
    ("No agent is enrolled yet.", "登録済みのエージェントはまだありません。"),
    ("Not yet uploaded", "未送信"),
    ("On the PC, as the agent's user:", "PC上で、エージェントの実行ユーザーとして:"),
    ("Policy version", "ポリシー版"),
    ("Records", "記録数"),
    ("Revoke", "失効させる"),
    ("Say whom the token is for.", "トークンの用途を入力してください。"),
    ("The agent API is off: set agent_api = true in the console's file to let agents enrol.", "エージェントAPIは無効です。エージェントを登録するには、コンソールの設定ファイルで agent_api = true にしてください。"),
    ("There is no such agent, or it is already revoked.", "そのエージェントは存在しないか、すでに失効しています。"),
    ("Used by", "使用したエージェント"),
    ("Valid days", "有効日数"),
    ("Version", "バージョン"),
    ("active", "有効"),
    ("not used yet", "未使用"),
    ("revoked", "失効"),
    ("Policy for agents", "エージェントのポリシー"),
    ("The policy was not stored: it has an error.", "ポリシーに誤りがあるため保存しませんでした。"),
    ("Paste the policy file's text.", "ポリシーファイルの内容を貼り付けてください。"),
    ("uploaded by", "登録者"),
    ("Agents running it", "適用済みのエージェント"),
    ("No policy uploaded: agents use their own policy file.", "ポリシーは未登録です。各エージェントは自身のポリシーファイルを使います。"),
    ("A policy file (TOML), checked against this console's rules before it is stored; agents apply it without restarting.", "ポリシーファイル（TOML）。保存前にこのコンソールのルールで検査し、各エージェントは再起動せずに適用します。"),
    ("Upload for all agents", "全エージェントに配布"),
    ("all gateways and agents", "すべてのゲートウェイとエージェント"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_by_weight() {
        assert_eq!(Lang::pick(None, Lang::Ja), Lang::Ja);
        assert_eq!(Lang::pick(Some("en-US,en;q=0.9"), Lang::Ja), Lang::En);
        assert_eq!(
            Lang::pick(Some("ja,en-US;q=0.9,en;q=0.8"), Lang::En),
            Lang::Ja
        );
        assert_eq!(
            Lang::pick(Some("fr, en;q=0.5, ja;q=0.7"), Lang::En),
            Lang::Ja
        );
        assert_eq!(Lang::pick(Some("fr, de"), Lang::En), Lang::En);
        assert_eq!(Lang::pick(Some("ja;q=0, en"), Lang::Ja), Lang::En);
        assert_eq!(t(Lang::Ja, "Sign in"), "サインイン");
        assert_eq!(t(Lang::En, "Sign in"), "Sign in");
    }

    /// Every literal text the pages pass to `t` (and every error text) has a Japanese entry,
    /// and no entry is listed twice.
    #[test]
    fn every_page_text_has_japanese() {
        // Whitespace runs as one space, so that calls rustfmt split over lines are found too.
        let src = [
            include_str!("app.rs"),
            include_str!("app/agents.rs"),
            include_str!("app/adminlog.rs"),
            include_str!("app/reports.rs"),
            include_str!("html.rs"),
        ]
        .concat()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
        let mut missing = Vec::new();
        let mut found = 0;
        for marker in [
            "t(l,",
            "t( l,",
            "t(cx.l,",
            "t( cx.l,",
            "self.error(cx,",
            "self.error( cx,",
        ] {
            let mut rest = src.as_str();
            while let Some(i) = rest.find(marker) {
                rest = &rest[i + marker.len()..];
                // The first string literal after the marker, if it comes before a `)`.
                let Some(q) = rest.find('"') else { break };
                if rest[..q].contains(')') || rest[..q].contains(';') {
                    continue;
                }
                let lit = &rest[q + 1..];
                let end = lit.find('"').unwrap_or(0);
                let text = &lit[..end];
                if text.is_empty() || text.starts_with('{') {
                    continue;
                }
                found += 1;
                if !JA.iter().any(|(k, _)| *k == text) {
                    missing.push(text.to_string());
                }
            }
        }
        assert!(found > 120, "the scan found only {found} texts");
        missing.sort();
        missing.dedup();
        assert!(missing.is_empty(), "no Japanese for: {missing:#?}");
        let mut keys: Vec<&str> = JA.iter().map(|(k, _)| *k).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(n, keys.len(), "an English text is listed twice");
    }
}
