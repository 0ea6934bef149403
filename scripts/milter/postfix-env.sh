# Shared by scripts/milter-test.sh and scripts/bench-milter.sh: a private Postfix instance on
# loopback (config and queue under $BASE; the system Postfix is never touched) with TLS, Cyrus
# SASL (user ichiro / secret) and Maildir delivery for alice@dlp.test and bob@dlp.test, wired to
# ping32dlp-milter on $MILTER_PORT. Source it after setting BASE, CONF, VMAIL, SMTP_PORT,
# SMTPS_PORT, MILTER_PORT; then call pfenv_setup, pfenv_start_milter CONFIG, pfenv_start_postfix.

pf() { script -qec "$*" /dev/null; }   # postfix commands print only to a tty or syslog

pfenv_setup() {
pfenv_stop
need=()
for p in postfix swaks libnet-ssleay-perl openssl sasl2-bin libsasl2-modules libsasl2-modules-db; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then   # never let the package start the system postfix
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  debconf-set-selections <<'EOF'
postfix postfix/main_mailer_type select Local only
postfix postfix/mailname string localhost.localdomain
EOF
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${need[@]}" >/dev/null
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

rm -rf "$BASE"
mkdir -p "$CONF/sasl" "$BASE/spool" "$BASE/data" "$VMAIL" "$BASE/tls" "$BASE/sent"
chown postfix "$BASE/data"
chown 65534:65534 "$VMAIL"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ping32dlp test CA" \
  -keyout "$BASE/tls/ca.key" -out "$BASE/tls/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=mx.dlp.test" \
  -keyout "$BASE/tls/server.key" -out "$BASE/tls/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:mx.dlp.test,IP:127.0.0.1\n' > "$BASE/tls/san.ext"
openssl x509 -req -in "$BASE/tls/server.csr" -CA "$BASE/tls/ca.pem" -CAkey "$BASE/tls/ca.key" \
  -CAcreateserial -days 2 -extfile "$BASE/tls/san.ext" -out "$BASE/tls/server.pem" 2>/dev/null
chmod 600 "$BASE/tls/server.key"

# SASL: Cyrus sasldb with one user, ichiro / secret (the audit user comes from {auth_authen}).
echo secret | saslpasswd2 -p -c -f "$BASE/sasldb2" -u dlp.test ichiro
chown postfix "$BASE/sasldb2"; chmod 600 "$BASE/sasldb2"
cat > "$CONF/sasl/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN LOGIN
sasldb_path: $BASE/sasldb2
EOF

cat > "$CONF/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $BASE/spool
data_directory = $BASE/data
maillog_file = $BASE/maillog
maillog_file_prefixes = $BASE
myhostname = mx.dlp.test
mydomain = dlp.test
myorigin = \$mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
biff = no
message_size_limit = 104857600
virtual_mailbox_domains = dlp.test
virtual_mailbox_maps = inline:{ {alice@dlp.test=alice/Maildir/}, {bob@dlp.test=bob/Maildir/} }
virtual_mailbox_base = $VMAIL
virtual_mailbox_limit = 0
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $CONF/sasl
smtpd_sasl_local_domain = dlp.test
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
# The milter: every mail, SMTP and local submission; fail closed.
smtpd_milters = inet:127.0.0.1:$MILTER_PORT
non_smtpd_milters = \$smtpd_milters
milter_protocol = 6
milter_default_action = tempfail
milter_connect_timeout = 10s
milter_command_timeout = 30s
milter_content_timeout = 300s
smtpd_tls_cert_file = $BASE/tls/server.pem
smtpd_tls_key_file = $BASE/tls/server.key
smtpd_tls_security_level = may
smtpd_tls_auth_only = no
default_process_limit = 150
EOF
cat > "$CONF/master.cf" <<EOF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
127.0.0.1:$SMTPS_PORT inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt
tlsmgr    unix  - - n 1000? 1 tlsmgr
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
local     unix  - n n -  - local
virtual   unix  - n n -  - virtual
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
pf postfix -c "$CONF" check
for p in "$SMTP_PORT" "$SMTPS_PORT" "$MILTER_PORT"; do port_free "$p" || die "127.0.0.1:$p is in use"; done
}

pfenv_stop() {
  if [ -f "$CONF/main.cf" ] && postfix -c "$CONF" status >/dev/null 2>&1; then
    pf postfix -c "$CONF" stop >/dev/null || true
  fi
  if [ -f "$BASE/milter.pid" ]; then
    local pid; pid=$(cat "$BASE/milter.pid")
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q ping32dlp-milter; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$BASE/milter.pid"
  fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_log() {  # file pattern seconds: until the file has a line matching the pattern
  local end=$(( $(date +%s) + $3 ))
  until grep -q -- "$2" "$1" 2>/dev/null || [ "$(date +%s)" -gt "$end" ]; do sleep 0.1; done
}

wait_port() {  # port seconds
  local end=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -le "$end" ]; do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 1
}


pfenv_start_milter() {  # milter.toml
  "$MILTER" --config "$1" 2>>"$BASE/milter.log" &
  echo $! > "$BASE/milter.pid"
  wait_port "$MILTER_PORT" 20 || die "the milter did not listen (see $BASE/milter.log)"
}

pfenv_start_postfix() {
  pf postfix -c "$CONF" start >/dev/null
  wait_port "$SMTP_PORT" 20 && wait_port "$SMTPS_PORT" 20 || die "postfix did not start"
}
