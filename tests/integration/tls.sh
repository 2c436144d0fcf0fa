#!/usr/bin/env bash
# TLS on factumd's port, driven with the openssl command line (s_client) and
# bash's /dev/tcp: certificates refused at start with a clear reason (missing
# settings, missing file, expired, not yet valid, untrusted, mismatched key);
# the handshake (TLS 1.3 and 1.2, ALPN h2 and http/1.1); what is refused (TLS
# 1.1, TLS 1.2 without ECDHE/AEAD); a verifying client refusing factumd's
# certificate (untrusted CA, wrong host); client certificates (requested,
# not required; an untrusted one refused); cleartext HTTP/1.1 and HTTP/2 to
# the TLS port, and TLS to an --insecure port, answered clearly; reload of
# the certificates by SIGHUP and POST /admin/reloadconfig, and a failed
# reload keeping the old one. Cites TLS-n (src/net/tls.h).
# Usage: tests/integration/tls.sh /path/to/factumd
set -uo pipefail
shopt -s execfail
factumd=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"
work=$(mktemp -d /tmp/factum-tls.XXXXXX)
pid=""
trap '[ -z "$pid" ] || kill -9 $pid 2>/dev/null; rm -rf "$work"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { # description, then a command: ok if it succeeds
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}

MKCERTS_EXTRA=1 bash "$here/mkcerts.sh" "$work/c" || { echo "cannot make certificates"; exit 1; }
c=$work/c
# The node's files at fixed paths, so that reloads can replace them.
mkdir -p "$work/live"
cp "$c/node.crt" "$c/node.key" "$work/live/"
tlsargs=(--certificate-file "$work/live/node.crt" --certificate-private-key-file "$work/live/node.key"
         --trusted-root-certificates-path "$c/ca")

# ---- start refusals ------------------------------------------------------
refuses() { # expected-text, args...: factumd exits 2 and says expected-text
  local want=$1
  shift
  local out rc
  out=$(timeout 20 "$factumd" --mem-db --node-ip 127.0.0.1 --node-port 0 "$@" 2>&1)
  rc=$?
  if [ $rc -eq 2 ] && grep -qF -- "$want" <<<"$out"; then ok "start refused: $want"; else
    bad "start refused with '$want' (exit $rc): $out"; fi
}
refuses "--certificate-file is not set"
refuses "factum certs"
refuses "--trusted-root-certificates-path is not set" --certificate-file "$c/node.crt" --certificate-private-key-file "$c/node.key"
refuses "cannot read the certificate file $work/nope.crt: No such file or directory" \
  --certificate-file "$work/nope.crt" --certificate-private-key-file "$c/node.key" --trusted-root-certificates-path "$c/ca"
refuses "expired on 2021-01-01" --certificate-file "$c/expired.crt" --certificate-private-key-file "$c/expired.key" \
  --trusted-root-certificates-path "$c/ca"
refuses "is not valid yet (not before 2040-01-01" --certificate-file "$c/future.crt" \
  --certificate-private-key-file "$c/future.key" --trusted-root-certificates-path "$c/ca"
refuses "is not signed by a trusted root in $c/ca" --certificate-file "$c/untrusted.crt" \
  --certificate-private-key-file "$c/untrusted.key" --trusted-root-certificates-path "$c/ca"
refuses "the private key in $c/node2.key does not match the certificate in $c/node.crt" \
  --certificate-file "$c/node.crt" --certificate-private-key-file "$c/node2.key" --trusted-root-certificates-path "$c/ca"
# The environment and config-file forms of the settings (KurrentDB's names).
out=$(KURRENTDB_CERTIFICATE_FILE=$c/expired.crt KURRENTDB_CERTIFICATE_PRIVATE_KEY_FILE=$c/expired.key \
  EVENTSTORE_TRUSTED_ROOT_CERTIFICATES_PATH=$c/ca timeout 20 "$factumd" --mem-db --node-port 0 2>&1)
check "KURRENTDB_/EVENTSTORE_ environment names" grep -q "expired on" <<<"$out"
printf 'CertificateFile: %s\nCertificatePrivateKeyFile: %s\nTrustedRootCertificatesPath: %s\n' \
  "$c/future.crt" "$c/future.key" "$c/ca" >"$work/conf.yaml"
out=$(timeout 20 "$factumd" --mem-db --node-port 0 --config "$work/conf.yaml" 2>&1)
check "config file keys" grep -q "not valid yet" <<<"$out"

# ---- a TLS server --------------------------------------------------------
factumd_start "$work/log" "$factumd" "${tlsargs[@]}" --mem-db --node-ip 127.0.0.1 --node-port 0 --log-level debug ||
  exit 1
pid=$factumd_pid port=$factumd_port
sc() { # s_client ARGS... : its output (the session ends at once)
  timeout 10 openssl s_client -connect "127.0.0.1:$port" -brief "$@" </dev/null 2>&1
}
out=$(sc -CAfile "$c/ca/ca.crt" -verify_return_error -verify_ip 127.0.0.1 -alpn h2)
check "TLS 1.3 handshake, verified by a client, ALPN h2" \
  grep -q "Protocol version: TLSv1.3" <<<"$out"
alpn() { timeout 10 openssl s_client -connect "127.0.0.1:$port" "$@" </dev/null 2>&1 | sed -n 's/^ALPN protocol: //p'; }
check "ALPN h2 chosen" test "$(alpn -alpn h2)" = h2
check "ALPN h2 chosen when the client offers both" test "$(alpn -alpn http/1.1,h2)" = h2
out=$(sc -CAfile "$c/ca/ca.crt" -verify_return_error -verify_hostname localhost -alpn http/1.1 -tls1_2)
check "TLS 1.2 handshake, ALPN http/1.1, ECDHE + AEAD (TLS-1)" \
  grep -Eq "Ciphersuite: ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM|CHACHA20)" <<<"$out"
check "ALPN http/1.1 chosen" test "$(alpn -alpn http/1.1 -tls1_2)" = http/1.1
out=$(sc -tls1_1)
check "TLS 1.1 refused (TLS-1)" grep -qi "alert protocol version\|no protocols available\|unsupported protocol" <<<"$out"
out=$(sc -tls1_2 -cipher AES128-GCM-SHA256)
check "TLS 1.2 without ECDHE refused (TLS-1)" grep -qi "handshake failure\|no shared cipher" <<<"$out"
out=$(sc -tls1_2 -cipher ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA)
check "TLS 1.2 without AEAD refused (TLS-1)" grep -qi "handshake failure\|no shared cipher" <<<"$out"
out=$(sc -CAfile "$c/other-ca/ca.crt" -verify_return_error)
check "a client trusting another CA refuses factumd's certificate" \
  grep -qi "unable to get local issuer certificate\|verify error" <<<"$out"
out=$(sc -CAfile "$c/ca/ca.crt" -verify_return_error -verify_hostname example.com)
check "a client expecting another host refuses factumd's certificate" grep -qi "hostname mismatch" <<<"$out"
# Client certificates (TLS-3): none is fine, a trusted one is taken (its CN
# is the connection's peer CN), an untrusted one ends the handshake.
out=$(sc -CAfile "$c/ca/ca.crt" -cert "$c/user-admin.crt" -key "$c/user-admin.key")
check "a trusted client certificate is accepted" grep -q "CONNECTION ESTABLISHED" <<<"$out"
sleep 0.3
check "its CN is the connection's peer CN" grep -q "client certificate CN=admin" "$work/log"
# (TLS 1.3: the client's handshake is over before the server refuses its
# certificate; its alert comes after, so the client waits a moment to read it.)
out=$(sleep 1 | timeout 10 openssl s_client -connect "127.0.0.1:$port" -brief -CAfile "$c/ca/ca.crt" \
  -cert "$c/user-bad.crt" -key "$c/user-bad.key" 2>&1)
check "an untrusted client certificate is refused (TLS-3)" \
  grep -qi "alert unknown ca\|alert bad certificate\|alert certificate unknown\|unknown ca" <<<"$out"
# HTTP/1.1 over TLS.
out=$(printf 'GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' |
  timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$c/ca/ca.crt" -quiet -alpn http/1.1 2>/dev/null)
check "/info over TLS says tls and internal authentication" \
  grep -q '"authentication":{"type":"internal","properties":{}},"tls":true' <<<"$out"

# ---- cleartext to the TLS port ------------------------------------------
plain() { # BYTES: send them in cleartext, print the answer (SIGPIPE ignored: the server closes after it)
  (
    trap '' PIPE
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf "$1" >&3
    timeout 5 cat <&3
  )
}
out=$(plain 'GET /info HTTP/1.1\r\nHost: x\r\n\r\n')
check "cleartext HTTP/1.1 gets 400 saying the port speaks TLS" \
  grep -q "HTTP/1.1 400" <<<"$out"
check "  ... and why" grep -q "This port speaks TLS" <<<"$out"
plain 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0' >"$work/goaway"
# SETTINGS (9 bytes), then GOAWAY: type 7, error INADEQUATE_SECURITY (0xc), debug data.
hex=$(od -An -tx1 -v "$work/goaway" | tr -d ' \n')
check "cleartext HTTP/2 gets SETTINGS + GOAWAY (INADEQUATE_SECURITY)" \
  grep -q "^000000040000000000......070000000000000000000000000c" <<<"$hex"
check "  ... whose debug data says tls=true" grep -q "factumd requires TLS on this port: connect with tls=true" \
  "$work/goaway"
check "both logged" grep -q "cleartext HTTP/2 (gRPC with tls=false?) to the TLS port" "$work/log"

# ---- reload (TLS-4) ------------------------------------------------------
subject() { sc -CAfile "$c/ca/ca.crt" | sed -n 's/^Peer certificate: //p'; }
check "serves the first certificate" grep -q "CN = factumd$" <<<"$(subject)"
cp "$c/node2.crt" "$work/live/node.crt"
cp "$c/node2.key" "$work/live/node.key"
kill -HUP "$pid"
sleep 0.5
check "SIGHUP: new connections get the new certificate" grep -q "CN = factumd-reloaded" <<<"$(subject)"
check "  ... and the log says so" grep -q "certificates reloaded: new connections get /CN=factumd-reloaded" "$work/log"
# A failed reload (a key that does not match) keeps the current certificate.
cp "$c/node.crt" "$work/live/node.crt"
kill -HUP "$pid"
sleep 0.5
check "a failed reload keeps the current certificate" grep -q "CN = factumd-reloaded" <<<"$(subject)"
check "  ... and logs why" grep -q "does not match the certificate" "$work/log"
check "  ... and that the current one stays" grep -q "the current ones stay in use" "$work/log"
cp "$c/node.key" "$work/live/node.key"
out=$(printf 'POST /admin/reloadconfig HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' |
  timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$c/ca/ca.crt" -quiet 2>/dev/null)
check "POST /admin/reloadconfig answers 200" grep -q "HTTP/1.1 200" <<<"$out"
sleep 0.5
check "  ... and reloads" grep -q "CN = factumd$" <<<"$(subject)"
kill -TERM "$pid"
wait "$pid"
check "the TLS server stops cleanly" test $? -eq 0
pid=""
grep -E "runtime error|AddressSanitizer|LeakSanitizer" "$work/log" && bad "sanitizer reports in the log"

# ---- TLS to an --insecure port -------------------------------------------
factumd_start "$work/log2" "$factumd" --insecure --mem-db --node-ip 127.0.0.1 --node-port 0 || exit 1
pid=$factumd_pid port=$factumd_port
check "--insecure logs a loud warning" grep -q "INSECURE MODE.*NO AUTHENTICATION" "$work/log2"
out=$(sc)
check "a TLS ClientHello to an --insecure port gets a TLS alert" grep -qi "alert handshake failure" <<<"$out"
sleep 0.3
check "  ... and a clear log line" grep -q "started a TLS handshake, but factumd runs with --insecure" "$work/log2"
check "--insecure /info says insecure, no TLS" \
  grep -q '"authentication":{"type":"insecure","properties":{}},"tls":false' \
  <<<"$(plain 'GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')"
kill -TERM "$pid"
wait "$pid"
pid=""
grep -E "runtime error|AddressSanitizer|LeakSanitizer" "$work/log2" && bad "sanitizer reports in the log"

echo "$fails failures"
[ $fails -eq 0 ]
