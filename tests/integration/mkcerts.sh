#!/usr/bin/env bash
# mkcerts.sh DIR - development certificates with the openssl command line
# (until `factum certs` exists): DIR/ca/ca.crt (+ca.key), DIR/node.crt and
# DIR/node.key for 127.0.0.1 and localhost. With MKCERTS_EXTRA=1 also:
# other-ca/ (an untrusted CA), untrusted.crt/.key (signed by it),
# expired.crt/.key, future.crt/.key, wronghost.crt/.key (for example.com),
# node2.crt/.key (another valid node certificate), user-admin.crt/.key (a
# client certificate, CN=admin) and user-bad.crt/.key (a client certificate
# from the untrusted CA).
set -euo pipefail
d=$1
mkdir -p "$d/ca" "$d/other-ca"
cd "$d"
q() { "$@" >/dev/null 2>&1 || { echo "mkcerts: $* failed" >&2; "$@"; exit 1; }; }
ca() { # dir cn
  q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1/ca.key" -out "$1/ca.crt" \
    -days 3650 -subj "/CN=$2" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
# leaf name cn san ca-dir [x509 -days or -not_before/-not_after args] [eku]
leaf() {
  local name=$1 cn=$2 san=$3 cadir=$4 eku=${6:-serverAuth,clientAuth}
  q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" -out "$name.csr" -subj "/CN=$cn"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n%s' \
    "$eku" "${san:+subjectAltName=$san}" >"$name.ext"
  if [ "$5" = past ] || [ "$5" = future ]; then
    # x509 -req cannot set an arbitrary start: use `openssl ca` with explicit dates.
    local db; db=$(mktemp -d)
    : >"$db/index.txt"; echo 01 >"$db/serial"
    printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/index.txt\nserial=%s/serial\nnew_certs_dir=%s\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n' \
      "$db" "$db" "$db" >"$db/ca.cnf"
    if [ "$5" = past ]; then s=20200101000000Z; e=20210101000000Z; else s=20400101000000Z; e=20410101000000Z; fi
    q openssl ca -batch -config "$db/ca.cnf" -cert "$cadir/ca.crt" -keyfile "$cadir/ca.key" -in "$name.csr" \
      -out "$name.crt" -startdate $s -enddate $e -extfile "$name.ext" -notext
    rm -rf "$db"
  else
    q openssl x509 -req -in "$name.csr" -CA "$cadir/ca.crt" -CAkey "$cadir/ca.key" -CAcreateserial -days "$5" \
      -sha256 -extfile "$name.ext" -out "$name.crt"
  fi
  rm -f "$name.csr" "$name.ext"
}
ca ca "factum test CA"
leaf node factumd "DNS:localhost,IP:127.0.0.1" ca 365
if [ "${MKCERTS_EXTRA:-0}" = 1 ]; then
  ca other-ca "some other CA"
  leaf untrusted factumd "DNS:localhost,IP:127.0.0.1" other-ca 365
  leaf expired factumd "DNS:localhost,IP:127.0.0.1" ca past
  leaf future factumd "DNS:localhost,IP:127.0.0.1" ca future
  leaf wronghost factumd "DNS:example.com" ca 365
  leaf node2 factumd-reloaded "DNS:localhost,IP:127.0.0.1" ca 365
  leaf user-admin admin "" ca 365 clientAuth
  leaf user-bad admin "" other-ca 365 clientAuth
fi
rm -f ca/ca.srl other-ca/ca.srl
