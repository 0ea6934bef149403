#!/usr/bin/env bash
# The Debian packages (README, "Install on Debian"): built with cargo-deb from the release
# binaries, installed with dpkg -i on this machine, then checked: files, conffiles, the system
# user, modes, `systemd-analyze verify` on the units; each daemon is started from its installed
# path with its packaged configuration as the service user (without systemd) and answers on its
# port; then the packages are removed (configuration kept) and purged (configuration gone).
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
PKGS=(ping32dlp ping32dlp-milter ping32dlp-proxy ping32dlp-icap ping32dlp-console)
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

if ! "$CARGO_DEB" --version 2>/dev/null | grep -qx "cargo-deb $CARGO_DEB_VERSION"; then
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION" --root "$TOOLS"
fi

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  dpkg -P "${PKGS[@]}" >/dev/null 2>&1 || true
  rm -rf /var/lib/ping32dlp
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
n=$(ls "$OUT"/*.deb | wc -l)
[ "$n" = 5 ] && ok "cargo-deb built $n packages: $(cd "$OUT" && ls *.deb | tr '\n' ' ')" || bad "built $n packages"

# ------------------------------------------------------------------ install
DEBIAN_FRONTEND=noninteractive dpkg -i "$OUT"/*.deb > "$LOGS/dpkg-install.log" 2>&1 \
  || { cat "$LOGS/dpkg-install.log"; die "dpkg -i failed"; }
status=$(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" | grep -c "install ok installed" || true)
[ "$status" = 5 ] && ok "dpkg -i: all 5 installed" || bad "installed: $status of 5"

missing=""
[ -x /usr/bin/ping32dlp ] || missing+=" /usr/bin/ping32dlp"
for d in "${DAEMONS[@]}"; do
  for f in "/usr/sbin/ping32dlp-$d" "/etc/ping32dlp/$d.toml" "/lib/systemd/system/ping32dlp-$d.service" \
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

if systemd-analyze verify /lib/systemd/system/ping32dlp-{milter,proxy,icap,console}.service > "$LOGS/verify.log" 2>&1; then
  ok "systemd-analyze verify: the 4 units are valid"
else bad "systemd-analyze verify: $(head -n 5 "$LOGS/verify.log")"; fi
sandbox=$(grep -c -E '^(User=ping32dlp|NoNewPrivileges=yes|ProtectSystem=strict|ReadWritePaths=/var/lib/ping32dlp|PrivateTmp=yes|Restart=on-failure)$' \
  /lib/systemd/system/ping32dlp-{milter,proxy,icap,console}.service | awk -F: '{s+=$2} END {print s}')
[ "$sandbox" = 24 ] && ok "units: service user, NoNewPrivileges, ProtectSystem=strict, ReadWritePaths state only, PrivateTmp, Restart=on-failure (each of 4)" \
  || bad "units: $sandbox of 24 sandbox settings"

# ------------------------------------------------------------------ run as the service user
for d in "${DAEMONS[@]}"; do
  runuser -u ping32dlp -- "/usr/sbin/ping32dlp-$d" --config "/etc/ping32dlp/$d.toml" 2> "$LOGS/$d.log" &
  PIDS+=($!)
done
wait_port() { local end=$(( $(date +%s) + 30 )); until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
  [ "$(date +%s)" -gt "$end" ] && return 1; sleep 0.2; done; }
up=""
for port in 8899 10587 10465 1344 8025; do wait_port "$port" && up+=" $port"; done
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

# ------------------------------------------------------------------ remove, purge
echo "# edited by the admin" >> /etc/ping32dlp/milter.toml
dpkg -r "${PKGS[@]}" > "$LOGS/dpkg-remove.log" 2>&1 || { cat "$LOGS/dpkg-remove.log"; die "dpkg -r failed"; }
if [ ! -e /usr/sbin/ping32dlp-milter ] && [ ! -e /usr/bin/ping32dlp ] && [ ! -e /lib/systemd/system/ping32dlp-milter.service ] \
   && grep -q "edited by the admin" /etc/ping32dlp/milter.toml && [ -d /var/lib/ping32dlp ]; then
  ok "dpkg -r: programs and units gone; the edited configuration and the state directory stay"
else bad "after dpkg -r: $(ls /usr/sbin/ping32dlp-* /etc/ping32dlp 2>&1 | head -n 5)"; fi
dpkg -P "${PKGS[@]}" > "$LOGS/dpkg-purge.log" 2>&1 || { cat "$LOGS/dpkg-purge.log"; die "dpkg -P failed"; }
left=$(dpkg-query -W -f='${Package} ${Status}\n' "${PKGS[@]}" 2>/dev/null | grep -v "not-installed" || true)
if [ ! -e /etc/ping32dlp ] && [ -z "$left" ] && [ -s /var/lib/ping32dlp/audit.db ]; then
  ok "dpkg -P: configuration and /etc/ping32dlp gone, packages purged; the audit trail in /var/lib/ping32dlp is kept"
else bad "after purge: /etc/ping32dlp $(ls -d /etc/ping32dlp 2>&1); packages: $left"; fi

echo "$PASS passed, $FAILS failed"
[ "$FAILS" = 0 ]
