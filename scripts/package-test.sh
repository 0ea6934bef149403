#!/usr/bin/env bash
# The Debian packages (README, "Install on Debian"): built with cargo-deb from the release
# binaries, installed with dpkg -i on this machine, then checked: files, conffiles, the system
# user, modes, `systemd-analyze verify` on the units; each daemon is started from its installed
# path with its packaged configuration as the service user (without systemd) and answers on its
# port; a mail held by the installed milter in a private Postfix is released by the installed
# release helper after an approval with the installed command; then the packages are removed
# (configuration kept) and purged (configuration gone).
#
# Run as root after the release build (scripts/test.sh does both). cargo-deb is installed into
# target/tools (pinned version) when missing. Leaves no package, user or state behind.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=$ROOT/target/debian
TOOLS=$ROOT/target/tools
CARGO_DEB=$TOOLS/bin/cargo-deb
CARGO_DEB_VERSION=3.8.0
LOGS=$ROOT/target/package-test
CRATES=(ping32dlp-cli ping32dlp-milter ping32dlp-proxy ping32dlp-icap ping32dlp-console)
PKGS=(ping32dlp ping32dlp-milter ping32dlp-proxy ping32dlp-icap ping32dlp-console libping32dlp0 libping32dlp-dev)
DAEMONS=(milter proxy icap console)

PASS=0; FAILS=0
ok() { PASS=$((PASS + 1)); echo "PASS: $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
die() { echo "FATAL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (dpkg -i)"
for c in ping32dlp ping32dlp-milter ping32dlp-proxy ping32dlp-icap ping32dlp-console; do
  [ -x "target/release/$c" ] || die "build first: cargo build --release -p ping32dlp-cli -p ping32dlp-milter -p ping32dlp-proxy -p ping32dlp-icap -p ping32dlp-console"
done
for port in 8899 10587 10465 1344 8025; do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "port $port is taken: the packaged defaults need it"
done

# What the packages depend on and what the checks use (a fresh Debian may lack systemd).
need=()
for c in adduser:adduser systemd-analyze:systemd objdump:binutils pkg-config:pkg-config runuser:util-linux; do
  command -v "${c%%:*}" >/dev/null || need+=("${c#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need[@]}" >/dev/null \
    || die "cannot install ${need[*]}"
fi

if ! "$CARGO_DEB" --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION" --root "$TOOLS"
fi

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  dpkg -P "${PKGS[@]}" >/dev/null 2>&1 || true
  [ -n "${CONF:-}" ] && pfenv_stop 2>/dev/null || true
  rm -rf /var/lib/ping32dlp /etc/ping32dlp/policy.toml
  rmdir /etc/ping32dlp 2>/dev/null || true
  getent passwd ping32dlp >/dev/null && deluser --system --quiet ping32dlp >/dev/null 2>&1 || true
  getent group ping32dlp >/dev/null && delgroup --system --quiet ping32dlp >/dev/null 2>&1 || true
}
cleanup   # what an interrupted earlier run left
trap cleanup EXIT
# A state directory that root made before the packages (a CLI run as root): the package must
# hand it to the service user.
mkdir -p /var/lib/ping32dlp/leftover && chmod 0755 /var/lib/ping32dlp

# ------------------------------------------------------------------ build
rm -rf "$OUT" "$LOGS"; mkdir -p "$OUT" "$LOGS"
for c in "${CRATES[@]}"; do
  "$CARGO_DEB" -p "$c" --no-build --fast --strip --quiet -o "$OUT/" >/dev/null
done
# The C library as `make install` makes it (stripped, symbols confined), staged for cargo-deb.
STAGE=$ROOT/target/deb-stage
MA=$(gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH)
rm -rf "$STAGE"
make -s install DESTDIR="$STAGE" PREFIX=/usr LIBDIR="/usr/lib/$MA" >/dev/null
cp -a "$STAGE/usr/lib/$MA" "$STAGE/lib"
for v in "" "--variant dev"; do
  # shellcheck disable=SC2086
  "$CARGO_DEB" -p ping32dlp-ffi --no-build --multiarch same --fast --quiet $v -o "$OUT/" >/dev/null 2>&1
done
n=$(ls "$OUT"/*.deb | wc -l)
[ "$n" = 7 ] && ok "cargo-deb built $n packages: $(cd "$OUT" && ls *.deb | tr '\n' ' ')" || bad "built $n packages"
libver=$(dpkg-deb -f "$OUT"/libping32dlp0_*.deb Version)
devdep=$(dpkg-deb -f "$OUT"/libping32dlp-dev_*.deb Depends)
[ "$devdep" = "libping32dlp0 (= $libver)" ] && ok "libping32dlp-dev depends on libping32dlp0 (= $libver)" \
  || bad "libping32dlp-dev Depends '$devdep', library version $libver (update ffi/Cargo.toml)"

# ------------------------------------------------------------------ install
DEBIAN_FRONTEND=noninteractive dpkg -i "$OUT"/*.deb > "$LOGS/dpkg-install.log" 2>&1 \
  || { cat "$LOGS/dpkg-install.log"; die "dpkg -i failed"; }
status=$(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" | grep -c "install ok installed" || true)
[ "$status" = 7 ] && ok "dpkg -i: all 7 installed" || bad "installed: $status of 7"

missing=""
[ -x /usr/bin/ping32dlp ] || missing+=" /usr/bin/ping32dlp"
for d in "${DAEMONS[@]}"; do
  for f in "/usr/sbin/ping32dlp-$d" "/etc/ping32dlp/$d.toml" "/lib/systemd/system/ping32dlp-$d.service" \
           "/lib/systemd/system/ping32dlp-milter-release.service" \
           "/usr/share/doc/ping32dlp-$d/copyright" "/usr/share/doc/ping32dlp-$d/THIRD_PARTY_NOTICES.md"; do
    [ -e "$f" ] || missing+=" $f"
  done
  dpkg-query -W -f='${Conffiles}\n' "ping32dlp-$d" | grep -q "/etc/ping32dlp/$d.toml" || missing+=" conffile:$d"
done
[ -z "$missing" ] && ok "files in place: binaries, units, docs; /etc/ping32dlp/*.toml are conffiles" || bad "missing:$missing"

IFS=: read -r _ _ uid _ _ home shell < <(getent passwd ping32dlp) || true
if [ -n "${uid:-}" ] && [ "$uid" -lt 1000 ] && [ "$home" = /var/lib/ping32dlp ] && [ "$shell" = /usr/sbin/nologin ]; then
  ok "system user ping32dlp (uid $uid, home $home, shell $shell)"
else bad "user ping32dlp: uid ${uid:-none} home ${home:-} shell ${shell:-}"; fi

modes="$(stat -c '%n %a %U:%G' /var/lib/ping32dlp /etc/ping32dlp /etc/ping32dlp/milter.toml /var/lib/ping32dlp/leftover)"
want="/var/lib/ping32dlp 700 ping32dlp:ping32dlp
/etc/ping32dlp 750 root:ping32dlp
/etc/ping32dlp/milter.toml 640 root:ping32dlp
/var/lib/ping32dlp/leftover 755 ping32dlp:ping32dlp"
[ "$modes" = "$want" ] && ok "modes: state 0700 ping32dlp, config 0750/0640 root:ping32dlp, root's leftovers handed over" \
  || bad "modes: $(tr '\n' ';' <<<"$modes")"

if systemd-analyze verify /lib/systemd/system/ping32dlp-{milter,milter-release,proxy,icap,console}.service > "$LOGS/verify.log" 2>&1; then
  ok "systemd-analyze verify: the 5 units are valid"
else bad "systemd-analyze verify: $(head -n 5 "$LOGS/verify.log")"; fi
sandbox=$(grep -c -E '^(User=ping32dlp|NoNewPrivileges=yes|ProtectSystem=strict|ReadWritePaths=/var/lib/ping32dlp|PrivateTmp=yes|Restart=on-failure)$' \
  /lib/systemd/system/ping32dlp-{milter,proxy,icap,console}.service | awk -F: '{s+=$2} END {print s}')
[ "$sandbox" = 24 ] && ok "units: service user, NoNewPrivileges, ProtectSystem=strict, ReadWritePaths state only, PrivateTmp, Restart=on-failure (each of 4)" \
  || bad "units: $sandbox of 24 sandbox settings"

# The C library: SONAME in the linker cache, pkg-config from the system path, README's agent
# built against the installed header and library and run.
soname=$(objdump -p "/usr/lib/$MA/libping32dlp.so.0" 2>/dev/null | awk '/SONAME/ {print $2}')
cached=$(ldconfig -p | grep -c "libping32dlp.so.0 " || true)
cflags=$(pkg-config --cflags --libs ping32dlp 2>&1 | xargs || true)
verdict=$(cc -std=c11 -Wall -Werror examples/c/verdict.c -o "$LOGS/verdict" $cflags 2>&1 \
  && "$LOGS/verdict" corpus/extract/mail/01-iso2022jp-attachments.eml 2>&1 || true)
if [ "$soname" = libping32dlp.so.0 ] && [ "$cached" -ge 1 ] && [ "$cflags" = "-lping32dlp" ] \
   && grep -Eq '^[0-9]+ findings: allow now, hold when enforced' <<<"$verdict" \
   && [ -f /usr/include/ping32dlp.h ] && [ -f "/usr/lib/$MA/libping32dlp.a" ]; then
  ok "libping32dlp0 / -dev: SONAME $soname in ldconfig's cache, pkg-config '$cflags', examples/c/verdict.c builds and runs: $verdict"
else bad "C library: soname '$soname', cached $cached, pkg-config '$cflags', verdict '$verdict'"; fi

# ------------------------------------------------------------------ run as the service user
for d in "${DAEMONS[@]}"; do
  runuser -u ping32dlp -- "/usr/sbin/ping32dlp-$d" --config "/etc/ping32dlp/$d.toml" 2> "$LOGS/$d.log" &
  PIDS+=($!)
done
wait_up() { local end=$(( $(date +%s) + 30 )); until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
  [ "$(date +%s)" -gt "$end" ] && return 1; sleep 0.2; done; }
up=""
for port in 8899 10587 10465 1344 8025; do wait_up "$port" && up+=" $port"; done
answers=$(python3 - <<'EOF'
import socket, ssl, struct, urllib.request
out = []
s = socket.create_connection(("127.0.0.1", 8899), timeout=10)          # milter: option negotiation
s.sendall(struct.pack(">I", 13) + b"O" + struct.pack(">III", 6, 0x1FF, 0))
n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
out.append("milter " + s.recv(n, socket.MSG_WAITALL)[:1].decode())
s = socket.create_connection(("127.0.0.1", 10587), timeout=10)          # proxy: SMTP greeting
out.append("proxy " + s.recv(200).decode().split()[0])
s = socket.create_connection(("127.0.0.1", 1344), timeout=10)           # ICAP OPTIONS
s.sendall(b"OPTIONS icap://127.0.0.1:1344/reqmod ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n")
out.append("icap " + s.recv(200).decode().split("\r\n")[0].split(" ", 1)[1])
out.append("console " + urllib.request.urlopen("http://127.0.0.1:8025/healthz", timeout=10).read().decode().strip())
print(", ".join(out))
EOF
) || answers="error"
if [ "$up" = " 8899 10587 10465 1344 8025" ] && [ "$answers" = "milter O, proxy 220, icap 200 OK, console ok" ]; then
  ok "the 4 daemons run from /usr/sbin as ping32dlp with the packaged configs: $answers"
else bad "daemons: ports up:$up; answers: $answers"; tail -n 3 "$LOGS"/*.log; fi
owner=$(find /var/lib/ping32dlp ! -user ping32dlp | head -n 3)
open=$(find /var/lib/ping32dlp -perm /o=rwx | head -n 3)
pw=$(stat -c '%a %U' /var/lib/ping32dlp/console-admin.password 2>/dev/null || echo none)
if [ -z "$owner" ] && [ -z "$open" ] && [ "$pw" = "600 ping32dlp" ] && [ -s /var/lib/ping32dlp/audit.db ]; then
  ok "state: everything owned by ping32dlp, nothing open to others; the console's first admin password 0600"
else bad "state: not ping32dlp's: $owner; open to others: $open; password file: $pw"; ls -la /var/lib/ping32dlp; fi
if grep -q "event=listening" "$LOGS/milter.log" && ! grep -qv '^time=' "$LOGS/milter.log"; then
  ok "logs: key=value lines on standard error ($(grep -o 'event=listening.*' "$LOGS/milter.log" | head -c 100))"
else bad "milter log: $(head -n 3 "$LOGS/milter.log")"; fi
/usr/bin/ping32dlp scan corpus/samples/01-customer-list.txt > "$LOGS/cli.txt" 2>&1 || true   # exit 1: findings
if grep -q "jp_my_number" "$LOGS/cli.txt"; then
  ok "/usr/bin/ping32dlp scans ($(grep -c . "$LOGS/cli.txt") lines of report)"
else bad "CLI: $(head -n 3 "$LOGS/cli.txt")"; fi
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
PIDS=()

# ------------------------------------------------------------------ hold, approve, release (installed)
# A private Postfix (scripts/milter/postfix-env.sh) with the installed milter running as
# ping32dlp and the installed release helper running as root, both from the packaged
# configuration edited as an admin would: a mail with a My Number is held; approving it with
# the installed command releases it from the hold queue, and it is delivered.
BASE=/tmp/ping32dlp-package-test; CONF=$BASE/etc; VMAIL=$BASE/vmail
SMTP_PORT=${SMTP_PORT:-2545}; SMTPS_PORT=${SMTPS_PORT:-2485}; MILTER_PORT=8899
export DEBIAN_FRONTEND=noninteractive
. "$ROOT/scripts/milter/postfix-env.sh"
pfenv_setup
# The admin's policy: My Numbers wait for the boss; the approval commands address the private
# Postfix (-c), as the packaged defaults address the system one.
printf '%s\n' '[policy]' 'name = "package-test"' '[[rule]]' 'id = "my-numbers-wait"' \
  'action = "hold"' 'approvers = ["boss@example.co.jp"]' 'when = { detector = ["jp_my_number"] }' \
  '[approval]' "release_command = \"postsuper -c $CONF -H {queue_id} && postqueue -c $CONF -i {queue_id}\"" \
  "discard_command = \"postsuper -c $CONF -d {queue_id} hold\"" "notify_command = \"sendmail -C $CONF -t -i\"" \
  > /etc/ping32dlp/policy.toml
chgrp ping32dlp /etc/ping32dlp/policy.toml; chmod 0640 /etc/ping32dlp/policy.toml
sed -i 's|^# policy = "/etc/ping32dlp/policy.toml".*|policy = "/etc/ping32dlp/policy.toml"|' /etc/ping32dlp/milter.toml
runuser -u ping32dlp -- /usr/sbin/ping32dlp-milter --config /etc/ping32dlp/milter.toml 2> "$LOGS/milter-postfix.log" &
PIDS+=($!)
/usr/sbin/ping32dlp-milter --release-helper --config /etc/ping32dlp/milter.toml 2> "$LOGS/release-helper.log" &
PIDS+=($!)
wait_up 8899 || die "the installed milter did not listen ($LOGS/milter-postfix.log)"
pfenv_start_postfix
CLIENT=(python3 "$ROOT/scripts/milter/smtp_client.py")
out=$("${CLIENT[@]}" send --port "$SMTP_PORT" --user ichiro --password secret --subject "package hold" \
  --body "個人番号 1234 5678 9018 を送ります。" || true)
qid=$(sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' <<<"$out" | head -n1)
held=$(postqueue -c "$CONF" -p 2>/dev/null | grep -c "^${qid:-none}!" || true)
DLP=(runuser -u ping32dlp -- /usr/bin/ping32dlp)
aid=$("${DLP[@]}" approvals list --state /var/lib/ping32dlp --json 2>/dev/null \
  | head -n1 | python3 -c "import json,sys; print(json.loads(sys.stdin.read())['id'])" 2>/dev/null || true)
if grep -q "^RESULT 250" <<<"$out" && [ "$held" = 1 ] && [ -n "$aid" ]; then
  ok "installed milter (as ping32dlp): a My Number mail is held ($qid in the hold queue, request $aid)"
else bad "hold through the installed milter: $out; held $held; request '$aid'"; tail -n 3 "$LOGS/milter-postfix.log"; fi
"${DLP[@]}" approvals approve "$aid" --state /var/lib/ping32dlp --as boss@example.co.jp --comment "ok" >/dev/null 2>&1 || true
delivered=""
for _ in $(seq 1 60); do
  delivered=$(grep -rl "package hold" "$VMAIL/bob/Maildir/new" 2>/dev/null | head -n1 || true)
  [ -n "$delivered" ] && break; sleep 0.25
done
if [ -n "$delivered" ] && grep -q "request $aid released here" "$LOGS/release-helper.log" \
   && ! grep -q "released here" "$LOGS/milter-postfix.log"; then
  ok "approved with /usr/bin/ping32dlp -> the root release helper ran postsuper, the mail was delivered"
else bad "release: delivered '${delivered}'; helper log: $(tail -n 2 "$LOGS/release-helper.log")"; fi
out=$("${CLIENT[@]}" send --port "$SMTP_PORT" --user ichiro --password secret --subject "after release" --body "hello" || true)
notmine=$(find /var/lib/ping32dlp ! -user ping32dlp | head -n 3)
if grep -q "^RESULT 250" <<<"$out" && [ -z "$notmine" ]; then
  ok "after the root helper wrote the store the milter still records mail; every state file is ping32dlp's"
else bad "after release: $out; not ping32dlp's: $notmine"; fi
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
PIDS=()
pfenv_stop

# ------------------------------------------------------------------ remove, purge
echo "# edited by the admin" >> /etc/ping32dlp/milter.toml
dpkg -r "${PKGS[@]}" > "$LOGS/dpkg-remove.log" 2>&1 || { cat "$LOGS/dpkg-remove.log"; die "dpkg -r failed"; }
if [ ! -e /usr/sbin/ping32dlp-milter ] && [ ! -e /usr/bin/ping32dlp ] && [ ! -e /lib/systemd/system/ping32dlp-milter.service ] \
   && [ ! -e "/usr/lib/$MA/libping32dlp.so.0" ] && ! ldconfig -p | grep -q libping32dlp \
   && grep -q "edited by the admin" /etc/ping32dlp/milter.toml && [ -d /var/lib/ping32dlp ]; then
  ok "dpkg -r: programs and units gone; the edited configuration and the state directory stay"
else bad "after dpkg -r: $(ls /usr/sbin/ping32dlp-* /etc/ping32dlp 2>&1 | head -n 5)"; fi
dpkg -P "${PKGS[@]}" > "$LOGS/dpkg-purge.log" 2>&1 || { cat "$LOGS/dpkg-purge.log"; die "dpkg -P failed"; }
left=$(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" 2>/dev/null | grep -v "not-installed" || true)
etc_left=$(ls /etc/ping32dlp 2>/dev/null | tr '\n' ' ')
if [ "$etc_left" = "policy.toml " ] && [ -z "$left" ] && [ -s /var/lib/ping32dlp/audit.db ]; then
  ok "dpkg -P: the packaged configuration files are gone (the admin's own policy.toml stays), packages purged; the audit trail in /var/lib/ping32dlp is kept"
else bad "after purge: /etc/ping32dlp holds '$etc_left'; packages: $left"; fi
rm -rf /etc/ping32dlp

echo "$PASS passed, $FAILS failed"
[ "$FAILS" = 0 ]
