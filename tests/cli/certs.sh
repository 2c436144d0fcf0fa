#!/usr/bin/env bash
# certs.sh - `factum certs` (src/cli/cmd_certs.c): the CA, node and user
# certificates es-gencert-cli makes, checked with openssl itself: the chain
# verifies, the CA may sign (CA:TRUE, keyCertSign), nodes carry their SANs and
# serverAuth+clientAuth, users CN=<name> and clientAuth only, the validity is
# what --days asked, keys match their certificates and are 0600, nothing is
# overwritten without --force (CERTS-1), nothing is written after a bad
# argument (CERTS-3), es-gencert-cli's single-dash options work.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
command -v openssl >/dev/null || { echo "SKIP: no openssl program"; exit 0; }
FACTUM=$(cd "$(dirname "$FACTUM")" && pwd)/$(basename "$FACTUM")
cd "$T"

text() { openssl x509 -in "$1" -noout -text; }
mode() { stat -c %a "$1"; }
pub_of_cert() { openssl x509 -in "$1" -noout -pubkey; }
pub_of_key() { openssl pkey -in "$1" -pubout; }

run 0 "$FACTUM" certs --help
contains "$OUT" "usage: factum certs create-ca"
contains "$OUT" "--ip-addresses"
run 0 "$FACTUM" help certs
contains "$OUT" "create-user"
run 2 "$FACTUM" certs
run 2 "$FACTUM" certs create-everything
one_error_line certs
contains "$ERR" "unknown subcommand 'create-everything'"

# ---- the CA, with es-gencert-cli's defaults (./ca, 5 years).
run 0 "$FACTUM" certs create-ca
contains "$OUT" "created ca/ca.crt and ca/ca.key (ECDSA P-256"
[ -f ca/ca.crt ] && [ -f ca/ca.key ] || fail "ca/ca.crt, ca/ca.key missing"
eq "$(mode ca/ca.key)" 600 "CA key mode"
eq "$(mode ca/ca.crt)" 644 "CA certificate mode"
TXT=$(text ca/ca.crt)
contains "$TXT" "CA:TRUE"
contains "$TXT" "Certificate Sign"
contains "$TXT" "ecdsa-with-SHA256"
contains "$TXT" "NIST CURVE: P-256"
openssl verify -CAfile ca/ca.crt ca/ca.crt >/dev/null || fail "the CA does not verify itself"
openssl x509 -in ca/ca.crt -noout -checkend $((5 * 365 * 86400 - 86400)) >/dev/null || fail "CA valid < 5 years"
openssl x509 -in ca/ca.crt -noout -checkend $((5 * 365 * 86400 + 3 * 86400)) >/dev/null &&
    fail "CA valid for more than 5 years and a day"
eq "$(pub_of_cert ca/ca.crt)" "$(pub_of_key ca/ca.key)" "CA key matches its certificate"

# CERTS-1: a second run changes nothing without --force.
SUM=$(md5sum ca/ca.crt ca/ca.key)
run 1 "$FACTUM" certs create-ca
one_error_line certs
contains "$ERR" "'ca/ca.crt' exists; not replaced (give --force to replace it)"
eq "$(md5sum ca/ca.crt ca/ca.key)" "$SUM" "files after a refused run"
# A key alone (the certificate removed) is not replaced either.
mv ca/ca.crt ca/ca.crt.saved
run 1 "$FACTUM" certs create-ca
contains "$ERR" "'ca/ca.key' exists"
[ ! -e ca/ca.crt ] || fail "a certificate was written beside a key it does not match"
mv ca/ca.crt.saved ca/ca.crt
ls ca | grep -q tmp && fail "temporary files left: $(ls ca)"

# ---- a node certificate: es-gencert-cli's command line as written in its README.
run 0 "$FACTUM" certs create-node -ca-certificate ./ca/ca.crt -ca-key ./ca/ca.key -out ./node1 \
    -ip-addresses 127.0.0.1,172.20.240.1 -dns-names localhost,eventstore-node1.localhost.com
contains "$OUT" "created ./node1/node.crt and ./node1/node.key"
eq "$(mode node1/node.key)" 600 "node key mode"
TXT=$(text node1/node.crt)
contains "$TXT" "IP Address:127.0.0.1, IP Address:172.20.240.1, DNS:localhost, DNS:eventstore-node1.localhost.com"
contains "$TXT" "TLS Web Server Authentication, TLS Web Client Authentication"
contains "$TXT" "CA:FALSE"
contains "$TXT" "Subject: CN = eventstoredb-node"
lacks "$TXT" "Certificate Sign"
eq "$(pub_of_cert node1/node.crt)" "$(pub_of_key node1/node.key)" "node key matches its certificate"
openssl verify -CAfile ca/ca.crt node1/node.crt >/dev/null || fail "node chain"
openssl verify -CAfile ca/ca.crt -purpose sslserver -verify_hostname eventstore-node1.localhost.com \
    node1/node.crt >/dev/null || fail "node as server for its DNS name"
openssl verify -CAfile ca/ca.crt -purpose sslserver -verify_ip 172.20.240.1 node1/node.crt >/dev/null ||
    fail "node as server for its IP"
openssl verify -CAfile ca/ca.crt -purpose sslclient node1/node.crt >/dev/null || fail "node as client"
openssl verify -CAfile ca/ca.crt -verify_hostname other.example.com node1/node.crt >/dev/null 2>&1 &&
    fail "node verified for a host it does not name"
openssl verify -CAfile ca/ca.crt -verify_ip 10.1.1.1 node1/node.crt >/dev/null 2>&1 &&
    fail "node verified for an address it does not name"
openssl x509 -in node1/node.crt -noout -checkend $((364 * 86400)) >/dev/null || fail "node valid < 1 year"
openssl x509 -in node1/node.crt -noout -checkend $((367 * 86400)) >/dev/null && fail "node valid > 1 year"

# Defaults: ./ca/ca.{crt,key} and the first free ./nodeN; IPv6; a wildcard; --days.
run 0 "$FACTUM" certs create-node --ip-addresses ::1 --dns-names '*.example.com' --days 10 --common-name n2
contains "$OUT" "created node2/node.crt and node2/node.key"
TXT=$(text node2/node.crt)
contains "$TXT" "IP Address:0:0:0:0:0:0:0:1, DNS:*.example.com"
contains "$TXT" "Subject: CN = n2"
openssl verify -CAfile ca/ca.crt -purpose sslserver -verify_hostname a.example.com node2/node.crt >/dev/null ||
    fail "wildcard"
openssl x509 -in node2/node.crt -noout -checkend $((9 * 86400)) >/dev/null || fail "--days 10: < 9 days"
openssl x509 -in node2/node.crt -noout -checkend $((11 * 86400)) >/dev/null && fail "--days 10: > 11 days"

# ---- a user certificate.
run 0 "$FACTUM" certs create-user -username ouro -days 10
contains "$OUT" "created user-ouro/user-ouro.crt and user-ouro/user-ouro.key"
eq "$(mode user-ouro/user-ouro.key)" 600 "user key mode"
TXT=$(text user-ouro/user-ouro.crt)
contains "$TXT" "Subject: CN = ouro"
contains "$TXT" "TLS Web Client Authentication"
lacks "$TXT" "TLS Web Server Authentication"
lacks "$TXT" "Subject Alternative Name"
eq "$(pub_of_cert user-ouro/user-ouro.crt)" "$(pub_of_key user-ouro/user-ouro.key)" "user key"
openssl verify -CAfile ca/ca.crt -purpose sslclient user-ouro/user-ouro.crt >/dev/null || fail "user as client"
openssl verify -CAfile ca/ca.crt -purpose sslserver user-ouro/user-ouro.crt >/dev/null 2>&1 &&
    fail "a user certificate verified as a server"
openssl x509 -in user-ouro/user-ouro.crt -noout -checkend $((11 * 86400)) >/dev/null && fail "user --days 10"
run 0 "$FACTUM" certs create-user --username 'Jane Doe' --out users/jane
[ -f "users/jane/user-Jane Doe.crt" ] || fail "--out for a user: $(ls -R users)"
contains "$(text "users/jane/user-Jane Doe.crt")" "Subject: CN = Jane Doe"
# --force replaces, still 0600, and the new pair matches.
SUM=$(md5sum user-ouro/user-ouro.key)
run 1 "$FACTUM" certs create-user --username ouro
run 0 "$FACTUM" certs create-user --username ouro --force
[ "$(md5sum user-ouro/user-ouro.key)" != "$SUM" ] || fail "--force did not replace the key"
eq "$(mode user-ouro/user-ouro.key)" 600 "user key mode after --force"
eq "$(pub_of_cert user-ouro/user-ouro.crt)" "$(pub_of_key user-ouro/user-ouro.key)" "user key after --force"

# ---- RSA: an RSA CA signs an EC node and an RSA user (a CA key of either kind signs).
run 0 "$FACTUM" certs create-ca --out rsa-ca --key-type rsa --days 30
contains "$(openssl pkey -in rsa-ca/ca.key -noout -text)" "Private-Key: (2048 bit"
contains "$(text rsa-ca/ca.crt)" "sha256WithRSAEncryption"
run 0 "$FACTUM" certs create-node --ca-certificate rsa-ca/ca.crt --ca-key rsa-ca/ca.key --out rn --dns-names h
openssl verify -CAfile rsa-ca/ca.crt rn/node.crt >/dev/null || fail "EC node under an RSA CA"
run 0 "$FACTUM" certs create-user --ca-certificate rsa-ca/ca.crt --ca-key rsa-ca/ca.key --username r --key-type rsa
contains "$(text user-r/user-r.crt)" "Key Encipherment"
openssl verify -CAfile rsa-ca/ca.crt user-r/user-r.crt >/dev/null || fail "RSA user"
# A node of one CA does not verify against another.
openssl verify -CAfile rsa-ca/ca.crt node1/node.crt >/dev/null 2>&1 && fail "node1 verified by a foreign CA"
# The node's CA expires before the node: a warning, and the certificate is made.
run 0 "$FACTUM" certs create-node --ca-certificate rsa-ca/ca.crt --ca-key rsa-ca/ca.key --out rn2 --dns-names h
contains "$ERR" "warning: the CA expires before this certificate"

# ---- An intermediate CA (es-gencert-cli's create-ca -ca-certificate -ca-key): it chains to the root,
# may sign leaves only, and the leaves it signs carry it after themselves.
run 0 "$FACTUM" certs create-ca -ca-certificate ca/ca.crt -ca-key ca/ca.key -out inter
TXT=$(text inter/ca.crt)
contains "$TXT" "CA:TRUE, pathlen:0"
contains "$TXT" "factum dev intermediate CA"
openssl verify -CAfile ca/ca.crt inter/ca.crt >/dev/null || fail "intermediate under the root"
run 0 "$FACTUM" certs create-node --ca-certificate inter/ca.crt --ca-key inter/ca.key --out in --dns-names localhost
eq "$(grep -c 'BEGIN CERTIFICATE' in/node.crt)" 2 "certificates in a node file signed by an intermediate"
openssl verify -CAfile ca/ca.crt -untrusted in/node.crt -purpose sslserver -verify_hostname localhost in/node.crt \
    >/dev/null || fail "node under the intermediate, with the root only"
run 0 "$FACTUM" certs create-user --ca-certificate inter/ca.crt --ca-key inter/ca.key --username iu
eq "$(grep -c 'BEGIN CERTIFICATE' user-iu/user-iu.crt)" 2 "certificates in a user file signed by an intermediate"
eq "$(grep -c 'BEGIN CERTIFICATE' node1/node.crt)" 1 "certificates in a node file signed by the root"
run 2 "$FACTUM" certs create-ca --out inter2 --ca-certificate ca/ca.crt
contains "$ERR" "needs both --ca-certificate and --ca-key"

# ---- CERTS-3: bad arguments write nothing.
snap() { find . -not -name '.out' -not -name '.err' -printf '%p %s\n' | sort; }
BEFORE=$(snap)
run 2 "$FACTUM" certs create-node --out bad --ip-addresses 300.1.1.1
one_error_line certs
contains "$ERR" "'300.1.1.1' is not an IPv4 or IPv6 address"
run 2 "$FACTUM" certs create-node --out bad --dns-names 'a..b'
contains "$ERR" "'a..b' is not a host name"
run 2 "$FACTUM" certs create-node --out bad --dns-names 'x,'
run 2 "$FACTUM" certs create-node --out bad
contains "$ERR" "give at least one address or name"
run 2 "$FACTUM" certs create-node --out bad --dns-names h --days 0
contains "$ERR" "--days: 0 is outside 1..36500"
run 2 "$FACTUM" certs create-node --out bad --dns-names h --days -3
run 2 "$FACTUM" certs create-ca --out bad --key-type dsa
contains "$ERR" "--key-type: 'dsa' is not ec or rsa"
run 2 "$FACTUM" certs create-ca --out bad --username x
contains "$ERR" "unknown option '--username'"
run 2 "$FACTUM" certs create-user --out bad
contains "$ERR" "--username NAME"
run 2 "$FACTUM" certs create-user --out bad --username 'a/b'
run 2 "$FACTUM" certs create-user --out bad --username ''
run 1 "$FACTUM" certs create-node --out bad --dns-names h --ca-certificate missing.crt
one_error_line certs
contains "$ERR" "cannot read the CA certificate 'missing.crt'"
run 1 "$FACTUM" certs create-node --out bad --dns-names h --ca-key rsa-ca/ca.key
contains "$ERR" "the CA key 'rsa-ca/ca.key' does not belong to the CA certificate 'ca/ca.crt'"
run 1 "$FACTUM" certs create-node --out bad --dns-names h --ca-certificate node1/node.crt --ca-key node1/node.key
contains "$ERR" "'node1/node.crt' is not a CA certificate"
run 1 "$FACTUM" certs create-user --out bad --username u --ca-certificate ca/ca.key
contains "$ERR" "'ca/ca.key' is not a PEM certificate"
eq "$(snap)" "$BEFORE" "files after bad arguments"

# ---- dev: the three for this machine, in one command, refused a second time.
run 0 "$FACTUM" certs dev --out d
contains "$OUT" "--certificate-file d/node/node.crt"
for f in d/ca/ca.key d/node/node.key d/user-admin/user-admin.key; do eq "$(mode $f)" 600 "$f"; done
openssl verify -CAfile d/ca/ca.crt -purpose sslserver -verify_hostname localhost d/node/node.crt >/dev/null ||
    fail "dev node for localhost"
openssl verify -CAfile d/ca/ca.crt -purpose sslserver -verify_ip 127.0.0.1 d/node/node.crt >/dev/null ||
    fail "dev node for 127.0.0.1"
openssl verify -CAfile d/ca/ca.crt -purpose sslclient d/user-admin/user-admin.crt >/dev/null || fail "dev user"
contains "$(text d/user-admin/user-admin.crt)" "Subject: CN = admin"
BEFORE=$(snap)
run 1 "$FACTUM" certs dev --out d
eq "$(snap)" "$BEFORE" "dev a second time"
echo "certs: all checks passed"
