#!/usr/bin/env bash
# The company directory end to end: a private OpenLDAP (slapd, Debian) with an Active-Directory-
# like tree (people with mail, departmentNumber and manager; groups with member; memberOf from
# the memberof overlay), a real Postfix with ping32dlp-milter reading it, and the console:
#
#   a mail from 営業部's taro to an outside recipient with a My Number is held for his manager
#   (from the directory), who approves it through the console's mailed one-time link, and
#   Postfix delivers it; the sender's department and a recipient's group are conditions; the
#   directory stopped: fail_mode "continue" judges without it (logged), "tempfail" answers 451.
#
# Run as root (installs slapd, ldap-utils and what the private Postfix needs; idempotent).
# Called by scripts/test.sh after the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BASE=${BASE:-/tmp/ping32dlp-directory-test}
SMTP_PORT=${SMTP_PORT:-2537}
SMTPS_PORT=${SMTPS_PORT:-2477}
MILTER_PORT=${MILTER_PORT:-8895}
CONSOLE_PORT=${CONSOLE_PORT:-8028}
DOWNLOAD_PORT=${DOWNLOAD_PORT:-8029}
LDAP_PORT=${LDAP_PORT:-3390}
CONF=$BASE/etc
VMAIL=$BASE/vmail
STATE=$BASE/state
LDAP=$BASE-ldap
MILTER=$ROOT/target/release/ping32dlp-milter
CONSOLE=$ROOT/target/release/ping32dlp-console
CLI=$ROOT/target/release/ping32dlp
CLIENT=$ROOT/scripts/milter/smtp_client.py
SUFFIX="dc=example,dc=co,dc=jp"
. "$ROOT/scripts/lib.sh"
need_root
need_built "$MILTER" "$CONSOLE" "$CLI"
if ! command -v slapd >/dev/null || ! command -v ldapadd >/dev/null; then
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  apt_install slapd ldap-utils
fi

. "$ROOT/scripts/milter/postfix-env.sh"
stop_slapd() {
  if [ -f "$LDAP/slapd.pid" ]; then
    local pid; pid=$(cat "$LDAP/slapd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$LDAP/slapd.pid"
  fi
}
stop_all() {
  if [ -f "$BASE/console.pid" ]; then kill "$(cat "$BASE/console.pid")" 2>/dev/null || true; fi
  rm -f "$BASE/console.pid"
  stop_slapd
  pfenv_stop
}
stop_slapd
pfenv_setup
port_free "$CONSOLE_PORT" || die "127.0.0.1:$CONSOLE_PORT is in use"
port_free "$DOWNLOAD_PORT" || die "127.0.0.1:$DOWNLOAD_PORT is in use"
port_free "$LDAP_PORT" || die "127.0.0.1:$LDAP_PORT is in use"
trap stop_all EXIT

# ---------------------------------------------------------------- the directory
rm -rf "$LDAP"; mkdir -p "$LDAP/db" "$LDAP/conf.d"
LDAP_PW="ldap-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
BUCHO_PW="bucho-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TARO_PW="taro-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cat > "$LDAP/slapd.ldif" <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $LDAP/slapd.pid

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: memberof

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $SUFFIX
olcDbDirectory: $LDAP/db
olcRootDN: cn=admin,$SUFFIX
olcRootPW: $(slappasswd -s "$LDAP_PW")
olcAccess: {0}to * by dn.exact="cn=admin,$SUFFIX" manage by users read by anonymous auth

dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE
LDIF
slapadd -n 0 -F "$LDAP/conf.d" -l "$LDAP/slapd.ldif" >/dev/null
start_slapd() {
  slapd -F "$LDAP/conf.d" -h "ldap://127.0.0.1:$LDAP_PORT/" -u root -g root
  for _ in $(seq 1 50); do
    ldapsearch -x -H "ldap://127.0.0.1:$LDAP_PORT" -b "" -s base >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "slapd did not start"
}
start_slapd
ldapadd -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "cn=admin,$SUFFIX" -w "$LDAP_PW" >/dev/null <<LDIF
dn: $SUFFIX
objectClass: dcObject
objectClass: organization
o: Example KK
dc: example

dn: ou=people,$SUFFIX
objectClass: organizationalUnit
ou: people

dn: ou=groups,$SUFFIX
objectClass: organizationalUnit
ou: groups

dn: uid=bucho,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: bucho
cn: 営業 部長
sn: 部長
mail: bucho@example.co.jp
departmentNumber: 営業部
userPassword: $BUCHO_PW

dn: uid=taro,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: taro
cn: 山田 太郎
sn: 山田
mail: taro@example.co.jp
departmentNumber: 営業部
userPassword: $TARO_PW
manager: uid=bucho,ou=people,$SUFFIX

dn: uid=keiri,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: keiri
cn: 経理 花子
sn: 経理
mail: hanako@example.co.jp
departmentNumber: 経理部

dn: cn=sales,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: sales
description: 営業部
member: uid=taro,ou=people,$SUFFIX
member: uid=bucho,ou=people,$SUFFIX

dn: cn=officers,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: officers
description: 役員
member: uid=bucho,ou=people,$SUFFIX
LDIF
printf '%s\n' "$LDAP_PW" > "$BASE/ldap.secret"
chmod 600 "$BASE/ldap.secret"

# ---------------------------------------------------------------- policy, milter, console
cat > "$BASE/policy.toml" <<POLICY
[policy]
name = "directory-test"
internal_domains = ["example.co.jp"]
approvers = ["security@example.co.jp"]

[[rule]]
id = "sales-ids-outside"
description = "営業部から社外へのマイナンバー: 上長承認"
action = "hold"
approvers = ["manager"]
expires = "1d"
when = { all = [{ sender_group = "sales" }, { recipients = "any_external" }, { detector = ["jp_my_number"] }] }

[[rule]]
id = "accounting-sender"
action = "alert"
when = { sender_department = ["経理部"] }

[[rule]]
id = "to-officers"
action = "audit"
when = { recipient_group = "officers" }

[[rule]]
id = "delay-outside"
description = "社外宛ては 3 秒遅らせて送信 (送信者が取り消せる)"
action = "delay"
delay = "3s"
when = { all = [{ recipients = "any_external" }, { subject_contains = ["[delay]"] }] }

[[rule]]
id = "confirm-outside"
description = "送信者本人の確認"
action = "hold"
approvers = ["sender"]
when = { all = [{ recipients = "any_external" }, { subject_contains = ["[confirm]"] }] }

[[rule]]
id = "visible-to-bcc"
description = "社外宛先が To/Cc に並んだら社外宛先を Bcc に移して送信"
action = "bcc"
when = { all = [{ to_external_count = { min = 2 } }, { subject_contains = ["[bcc]"] }] }

[[rule]]
id = "files-as-links"
description = "社外宛ての添付ファイルはダウンロードリンクに置き換える (PPAP の代わり)"
action = "link"
when = { all = [{ recipients = "any_external" }, { subject_contains = ["[link]"] }] }

[[rule]]
id = "short-links"
action = "link"
expires = "2s"
when = { all = [{ recipients = "any_external" }, { subject_contains = ["[link-short]"] }] }

[links]
url = "http://127.0.0.1:$DOWNLOAD_PORT"
max_downloads = 2
password = true

[approval]
release_command = "postsuper -c $CONF -H {queue_id} && postqueue -c $CONF -i {queue_id}"
discard_command = "postsuper -c $CONF -d {queue_id} hold"
notify_command = "cat >> $BASE/notices.log"
notify_from = "dlp-noreply@dlp.test"
console_url = "http://127.0.0.1:$CONSOLE_PORT"
POLICY
milter_conf() {  # fail mode
  cat > "$BASE/milter.toml" <<MILTER
listen = "inet:127.0.0.1:$MILTER_PORT"

[dlp]
state_dir = "$STATE"
policy = "policy.toml"

[directory]
url = "ldap://127.0.0.1:$LDAP_PORT"
bind_dn = "cn=admin,$SUFFIX"
password_file = "ldap.secret"
base = "$SUFFIX"
cache_seconds = 1
timeout_seconds = 2
fail_mode = "$1"
MILTER
}
milter_conf continue
cat > "$BASE/console.toml" <<CONSOLE
listen = "127.0.0.1:$CONSOLE_PORT"
language = "ja"
download_listen = "127.0.0.1:$DOWNLOAD_PORT"

[dlp]
state_dir = "$STATE"
policy = "policy.toml"

[directory]
url = "ldap://127.0.0.1:$LDAP_PORT"
bind_dn = "cn=admin,$SUFFIX"
password_file = "ldap.secret"
base = "$SUFFIX"
timeout_seconds = 2

[sign_in]
directory = true
admin_groups = ["officers"]
CONSOLE
"$MILTER" --check-config "$BASE/milter.toml" >/dev/null
pfenv_start_milter "$BASE/milter.toml"
pfenv_start_postfix
"$CONSOLE" --config "$BASE/console.toml" 2>>"$BASE/console.log" &
echo $! > "$BASE/console.pid"
wait_port "$CONSOLE_PORT" 20 || die "the console did not listen (see $BASE/console.log)"
wait_port "$DOWNLOAD_PORT" 20 || die "the download listener did not listen (see $BASE/console.log)"

send() {  # from to subject body [client options]: prints the client's output
  python3 "$CLIENT" send --port "$SMTP_PORT" --user ichiro --password secret --from "$1" --to "$2" \
    --subject "$3" --body "$4" "${@:5}" 2>&1 || true
}
qid_of() { sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' <<<"$1" | head -n1; }
approval_json() {  # queue id
  "$CLI" approvals list --state "$STATE" --json | python3 -c "
import json,sys
for l in sys.stdin:
    a=json.loads(l)
    if a.get('queue_id')=='$1': print(json.dumps(a))"
}
rules_of() {  # queue id: the matched rules of its record
  "$CLI" audit search --state "$STATE" --format json --limit 50 | python3 -c "
import json,sys
for l in sys.stdin:
    r=json.loads(l)
    if r.get('queue_id')=='$1': print(' '.join(m['rule'] for m in r['matched'])); break"
}

# 1. taro (営業部, manager bucho) sends a customer list with a My Number outside, as an
#    attachment: held for bucho.
SUBJECT="customer-list-$(date +%s)"
printf '氏名,個人番号,電話番号\r\n山田太郎,768426846565,03-1234-5678\r\n' > "$BASE/顧客リスト.csv"
out=$(send taro@example.co.jp bob@dlp.test "$SUBJECT" "顧客リストを送付します。" --attach "$BASE/顧客リスト.csv")
qid=$(qid_of "$out")
[ -n "$qid" ] || die "not queued: $out"
sleep 0.5
a=$(approval_json "$qid")
check "taro's mail is held for his manager from the directory ($a)" \
  'python3 -c "import json,sys; a=json.loads(sys.argv[1]); assert a[\"approvers\"]==[\"bucho@example.co.jp\"], a" "$a"'
aid=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['id'])" "$a")
check "it waits in Postfix's hold queue" 'postqueue -c "$CONF" -p | grep -q "^${qid}!"'
# 2. bucho approves in the console through the mailed one-time link.
link=$(grep -m1 -o "http://127.0.0.1:$CONSOLE_PORT/link/$aid?[^ ]*" "$BASE/notices.log" || true)
check "bucho was mailed a one-time sign-in link" '[ -n "$link" ] && grep -q "^To: bucho@example.co.jp" "$BASE/notices.log"'
decide_by_link() {  # link approval decision: prints the final status and URL
  python3 - "$1" "$2" "$3" <<'PY' 2>&1
import http.cookiejar, re, sys, urllib.parse, urllib.request
link, aid, decision = sys.argv[1], sys.argv[2], sys.argv[3]
o = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
page = o.open(link).read().decode()
form = dict(re.findall(r'name="(csrf|u|t)" value="([^"]*)"', page))
base = link.split("/link/")[0]
r = o.open(urllib.request.Request(f"{base}/link/{aid}", data=urllib.parse.urlencode(form).encode()))
page = r.read().decode()
csrf = re.search(r'name="csrf" value="([^"]*)"', page).group(1)
data = urllib.parse.urlencode({"csrf": csrf, "decision": decision, "comment": "確認しました"}).encode()
r = o.open(urllib.request.Request(f"{base}/requests/{aid}/decide", data=data))
print(r.status, r.geturl())
PY
}
out=$(decide_by_link "$link" "$aid" approve)
check "bucho approved it in the console ($out)" '[[ "$out" == 200* ]]'
for _ in $(seq 1 100); do
  grep -lqs "$SUBJECT" "$VMAIL"/bob/Maildir/new/* 2>/dev/null && break
  sleep 0.1
done
check "Postfix delivered it after the approval" 'grep -lqs "$SUBJECT" "$VMAIL"/bob/Maildir/new/* && ! postqueue -c "$CONF" -p | grep -q "^${qid}"'
check "the decision is recorded as bucho's" \
  '"$CLI" approvals list --state "$STATE" --status all --json | grep "\"$aid\"" | grep -q "\"decided_by\":\"bucho@example.co.jp\""'

# 3. The sender's department and a recipient's group.
out=$(send hanako@example.co.jp alice@dlp.test "expenses" "今月の精算です。")
q=$(qid_of "$out"); sleep 0.3
check "hanako (経理部) matches sender_department ($(rules_of "$q"))" '[[ " $(rules_of "$q") " == *" accounting-sender "* ]]'
out=$(send taro@example.co.jp bucho@example.co.jp "report" "本日の報告です。")
q=$(qid_of "$out"); sleep 0.3
check "a mail to bucho (officers) matches recipient_group ($(rules_of "$q"))" '[[ " $(rules_of "$q") " == *" to-officers "* ]]'
check "the record keeps the sender's department" \
  '"$CLI" audit search --state "$STATE" --sender hanako@example.co.jp --format json | grep -q "\"department\":\"経理部\""'

# 4. Delayed sending: the sender is told and may cancel; what is not cancelled goes out after
#    the delay, what is cancelled never does. Self-confirmation through the sender's link.
link_for() {  # approval id: the newest link in the notices
  grep -o "http://127.0.0.1:$CONSOLE_PORT/link/$1?[^ ]*" "$BASE/notices.log" | tail -n1
}
KEEP="delay-keep-$(date +%s)"; DROP="delay-cancel-$(date +%s)"; CONFIRM="confirm-$(date +%s)"
out=$(send taro@example.co.jp bob@dlp.test "[delay] $KEEP" "hello")
qk=$(qid_of "$out")
out=$(send taro@example.co.jp bob@dlp.test "[delay] $DROP" "hello")
qd=$(qid_of "$out")
out=$(send taro@example.co.jp bob@dlp.test "[confirm] $CONFIRM" "hello")
qc=$(qid_of "$out")
sleep 0.5
ak=$(approval_json "$qk" | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])" || true)
ad=$(approval_json "$qd" | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])" || true)
ac=$(approval_json "$qc" | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])" || true)
check "two delayed mails and one for self-confirmation wait in the hold queue" \
  '[ -n "$ak" ] && [ -n "$ad" ] && [ -n "$ac" ] && postqueue -c "$CONF" -p | grep -q "^${qk}!" && postqueue -c "$CONF" -p | grep -q "^${qd}!"'
check "the sender was mailed a link listing the external recipients" \
  'grep -q "に送信されます" "$BASE/notices.log" && grep -q "社外の宛先 / External recipients: bob@dlp.test" "$BASE/notices.log"'
out=$(decide_by_link "$(link_for "$ad")" "$ad" reject)
check "the sender cancelled one in the console ($out)" '[[ "$out" == 200* ]]'
out=$(decide_by_link "$(link_for "$ac")" "$ac" approve)
check "the sender confirmed the self-confirmation mail ($out)" '[[ "$out" == 200* ]]'
for _ in $(seq 1 400); do
  grep -lqs "$KEEP" "$VMAIL"/bob/Maildir/new/* 2>/dev/null && break
  sleep 0.1
done
check "the delayed mail nobody cancelled was delivered after its delay" 'grep -lqs "$KEEP" "$VMAIL"/bob/Maildir/new/*'
check "the self-confirmed mail was delivered" 'grep -lqs "$CONFIRM" "$VMAIL"/bob/Maildir/new/*'
check "the cancelled one was never delivered, and is gone from the queue" \
  '! grep -lqs "$DROP" "$VMAIL"/bob/Maildir/new/* && ! postqueue -c "$CONF" -p | grep -q "^${qd}"'

# 4b. Action bcc: two outside addresses in To and Cc are taken out of the headers by the
#     milter (CHGHEADER); both still receive the mail, and neither sees the other's address.
BCC="bcc-$(date +%s)"
printf 'From: Taro <taro@example.co.jp>\r\nTo: "Alice Partner" <alice@dlp.test>, =?UTF-8?B?5qyh6YOO?= <jiro@example.co.jp>\r\nCc: bob@dlp.test\r\nSubject: [bcc] %s\r\nMessage-ID: <%s@example.co.jp>\r\n\r\nhello both\r\n' \
  "$BCC" "$BCC" > "$BASE/bcc.eml"
out=$(python3 "$CLIENT" send --port "$SMTP_PORT" --user ichiro --password secret --from taro@example.co.jp \
  --to alice@dlp.test --to bob@dlp.test --eml "$BASE/bcc.eml" 2>&1 || true)
for _ in $(seq 1 100); do
  grep -lqs "$BCC" "$VMAIL"/bob/Maildir/new/* && grep -lqs "$BCC" "$VMAIL"/alice/Maildir/new/* && break
  sleep 0.1
done
fb=$(grep -ls "$BCC" "$VMAIL"/bob/Maildir/new/* | head -n1 || true)
fa=$(grep -ls "$BCC" "$VMAIL"/alice/Maildir/new/* | head -n1 || true)
hdr() { sed '/^\r\?$/q' "$1"; }  # the header block of a delivered file
check "bcc: both outside recipients received it ($out)" '[ -n "$fb" ] && [ -n "$fa" ]'
check "bcc: bob's copy names neither outside address; the internal one stays in To" \
  '! hdr "$fb" | grep -v "^Delivered-To:" | grep -qi "alice@dlp.test\|^Cc:" && hdr "$fb" | grep -q "^To: .*<jiro@example.co.jp>"'
check "bcc: alice's copy does not show bob" '! hdr "$fa" | grep -v "^Delivered-To:" | grep -qi "bob@dlp.test"'
check "bcc: the body is unchanged and the rule is in the audit record" \
  'grep -q "^hello both" "$fb" && [[ " $(rules_of "$(qid_of "$out")") " == *" visible-to-bcc "* ]]'

# 4d. Links instead of PPAP: a mail made by Python's email package with an .xlsx attached goes
#     out with the file replaced by a download link (milter REPLBODY); the recipient's copy has
#     no attachment and no password; the sender is mailed the password; the download listener
#     (its own port; the console's does not serve downloads) gives the identical file on POST
#     with the password, refuses a wrong one, stops after max_downloads, and refuses an expired
#     link; the sender's console page lists every try with the client address.
LINKS=$ROOT/scripts/directory/links.py
head -c 150000 /dev/urandom > "$BASE/quote.xlsx"
WANT=$(sha256sum "$BASE/quote.xlsx" | cut -d' ' -f1)
LNK="link-$(date +%s)"; SHORT="link-short-$(date +%s)"
python3 "$LINKS" make "$BASE/link.eml" taro@example.co.jp bob@dlp.test "[link] $LNK" "$BASE/quote.xlsx"
python3 "$LINKS" make "$BASE/short.eml" taro@example.co.jp bob@dlp.test "[link-short] $SHORT" "$BASE/quote.xlsx"
for f in link short; do
  python3 "$CLIENT" send --port "$SMTP_PORT" --user ichiro --password secret --from taro@example.co.jp \
    --to bob@dlp.test --eml "$BASE/$f.eml" >/dev/null 2>&1 || true
done
for _ in $(seq 1 100); do
  grep -lqs "$SHORT" "$VMAIL"/bob/Maildir/new/* && grep -lqs "$LNK" "$VMAIL"/bob/Maildir/new/* && break
  sleep 0.1
done
fl=$(grep -ls "$LNK" "$VMAIL"/bob/Maildir/new/* | head -n1 || true)
fs=$(grep -ls "$SHORT" "$VMAIL"/bob/Maildir/new/* | head -n1 || true)
check "links: both mails were delivered" '[ -n "$fl" ] && [ -n "$fs" ]'
got=$(python3 "$LINKS" read "$fl" 2>&1 || true)
url=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['links'][0])" "$got" 2>/dev/null || true)
pw=$(grep -A40 "^To: taro@example.co.jp" "$BASE/notices.log" | grep -o "Password: [A-Za-z0-9]*" | head -n1 | cut -d' ' -f2 || true)
check "links: the recipient's mail has the link and no attachment ($url)" \
  'python3 -c "import json,sys; g=json.loads(sys.argv[1]); assert g[\"attachments\"]==[] and len(g[\"links\"])==1 and \"見積書.xlsx\" in g[\"text\"], g" "$got"'
check "links: the sender was mailed the password; the recipient's copy does not have it" \
  '[ ${#pw} -eq 12 ] && ! grep -q "$pw" "$fl" && grep -q "/d/" "$BASE/notices.log"'
check "links: the landing page asks for the password and counts nothing ($(python3 "$LINKS" get "$url"))" \
  '[ "$(python3 "$LINKS" get "$url")" = "200 1 1" ]'
check "links: a wrong password is refused" '[[ "$(python3 "$LINKS" post "$url" wrong-password)" == 403* ]]'
check "links: the console's listener does not serve downloads" \
  '[[ "$(python3 "$LINKS" post "http://127.0.0.1:$CONSOLE_PORT/d/${url##*/}" "$pw")" != 200* ]]'
check "links: the download is the identical file" '[ "$(python3 "$LINKS" post "$url" "$pw")" = "200 $WANT" ]'
check "links: a second download works, a third is refused (max_downloads = 2)" \
  '[ "$(python3 "$LINKS" post "$url" "$pw")" = "200 $WANT" ] && [[ "$(python3 "$LINKS" post "$url" "$pw")" == 410* ]]'
short=$(python3 "$LINKS" read "$fs" | python3 -c "import json,sys; print(json.load(sys.stdin)['links'][0])" 2>/dev/null || true)
spw=$(grep -A40 "^To: taro@example.co.jp" "$BASE/notices.log" | grep -o "Password: [A-Za-z0-9]*" | tail -n1 | cut -d' ' -f2 || true)
sleep 2.1
check "links: the expired link refuses (expires = \"2s\")" '[[ "$(python3 "$LINKS" post "$short" "$spw")" == 410* ]]'
page=$(grep -o "http://127.0.0.1:$CONSOLE_PORT/links/[0-9]*?t=[0-9a-f]*" "$BASE/notices.log" | head -n1 || true)
check "links: the sender's console page lists who downloaded ($page)" \
  '[ -n "$page" ] && python3 "$LINKS" page "$page" | grep -q "127.0.0.1" && [ "$(python3 "$LINKS" page "$page" | grep -o "ダウンロード済み" | wc -l)" -eq 2 ] && python3 "$LINKS" page "$page" | grep -q "パスワード誤り"'
check "links: the page shows nothing for a wrong token" '! python3 "$LINKS" page "${page%t=*}t=00" | grep -q "ダウンロード"'

# 4c. Console sign-in with the directory password: bucho (officers) is an admin, taro an
#     approver; a wrong or empty password, or a person without one, is refused.
sign_in() {  # user password path: prints "<sign-in status> <status of path>"
  python3 "$ROOT/scripts/directory/sign_in.py" "http://127.0.0.1:$CONSOLE_PORT" "$1" "$2" "$3" 2>&1
}
check "directory sign-in: bucho (officers) is an admin ($(sign_in bucho@example.co.jp "$BUCHO_PW" /dashboard))" \
  '[ "$(sign_in bucho@example.co.jp "$BUCHO_PW" /dashboard)" = "303 200" ]'
check "directory sign-in: taro is an approver, no admin pages ($(sign_in taro@example.co.jp "$TARO_PW" /dashboard))" \
  '[ "$(sign_in taro@example.co.jp "$TARO_PW" /dashboard)" = "303 403" ] && [ "$(sign_in taro@example.co.jp "$TARO_PW" /requests)" = "303 200" ]'
check "directory sign-in: wrong password, empty password, no password in the directory: refused" \
  '[ "$(sign_in taro@example.co.jp wrong-password /requests)" = "403 303" ] && [ "$(sign_in taro@example.co.jp "" /requests)" = "403 303" ] && [ "$(sign_in hanako@example.co.jp x /requests)" = "403 303" ]'
check "the console logged the directory sign-ins" 'grep -q "bucho@example.co.jp signed in from .* (company directory)" "$BASE/console.log"'

# 5. The directory stopped. fail_mode = "continue": judged without it (not held for a manager
#    nobody knows), and logged.
stop_slapd
sleep 1.2   # past cache_seconds
out=$(send taro@example.co.jp bob@dlp.test "directory-down" "マイナンバー: 7684 2684 6565")
q=$(qid_of "$out"); sleep 0.3
check "directory down, continue: the mail is judged without it (not held: $(rules_of "$q"))" \
  '[ -n "$q" ] && [ -z "$(approval_json "$q")" ]'
check "the milter logged the directory error" 'grep -q "event=directory_error" "$BASE/milter.log"'
check "directory down: console sign-in with it says so (503), a local account is not needed for that" \
  '[ "$(sign_in taro@example.co.jp "$TARO_PW" /requests)" = "503 303" ]'
# fail_mode = "tempfail": 451, the MTA tells the client to try again.
pid=$(cat "$BASE/milter.pid"); kill "$pid"
for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
milter_conf tempfail
pfenv_start_milter "$BASE/milter.toml"
out=$(send taro@example.co.jp bob@dlp.test "directory-down-2" "hello")
check "directory down, tempfail: 451 ($(grep -o "451[^\"']*" <<<"$out" | head -n1))" 'grep -q "451" <<<"$out" && [ -z "$(qid_of "$out")" ]'
start_slapd
out=$(send taro@example.co.jp bob@dlp.test "directory-back" "hello")
check "directory back: accepted again" '[ -n "$(qid_of "$out")" ]'
check "no bind password in the milter's log" '! grep -q "$LDAP_PW" "$BASE/milter.log"'

echo "directory-test: $PASS passed, $FAILS failed"
[ "$FAILS" = 0 ]
