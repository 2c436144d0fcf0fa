#!/usr/bin/env bash
# Build factum and show what it does: first the command line on a local data
# directory (the embedded storage): the brief's bank-account events appended
# with optimistic concurrency, read back, the stream and the global order, a
# concurrency conflict, an idempotent retry, verification, a projection, the
# bank account and the orders examples (deciders, upcasting, the balance on a
# past date, a saga); then factumd, the
# server, on its embedded storage, spoken to over the KurrentDB protocol.
# Installs what building and running it needs if missing (scripts/deps.sh demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh demo
. scripts/lib.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DFACTUM_BENCH=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
factum=build/release/factum
export FACTUM_DATA
demo_dir=$(mktemp -d /tmp/factum-demo.XXXXXX)
FACTUM_DATA=$demo_dir/data
trap 'rm -rf "$demo_dir"' EXIT
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "factum demo: an event-sourced bank account in $FACTUM_DATA"
say $factum append account-42 --expected no-stream --type AccountOpened --data '{"owner":"Alice","balance":0}'
say $factum append account-42 --expected 0 --type MoneyDeposited --data '{"amount":1000}' \
    --metadata '{"correlationId":"c-1","user":"alice"}'
say $factum append account-42 --expected 1 --type MoneyWithdrawn --data '{"amount":200}'
say $factum append account-42 --expected 2 --type MoneyWithdrawn --data '{"amount":50}'
say $factum append account-7 --type AccountOpened --data '{"owner":"Bob","balance":0}'
echo
echo "# optimistic concurrency: a writer that read version 1 loses"
say $factum append account-42 --expected 1 --type MoneyWithdrawn --data '{"amount":9999}' || true
echo
echo "# an idempotent retry: the same event id twice is stored once"
id=6f1c2a9e-3b1d-4c55-9a7e-0d2f8e1b4c3a
say $factum append account-7 --expected 0 --id $id --type MoneyDeposited --data '{"amount":10}'
say $factum append account-7 --expected 0 --id $id --type MoneyDeposited --data '{"amount":10}'
echo
echo "# the stream, replayed: balance = 1000 - 200 - 50 = 750"
say $factum read account-42
echo
echo "# the global order (\$all), gapless positions across streams"
say $factum read '$all'
say $factum streams
say $factum info account-42
say $factum verify
echo
echo "# every batch carries a SHA-256 chained to the one before: the head stands for the whole log (sign it and keep"
echo "# it elsewhere: factum chain sign); a backup copies the store while it runs, verified against that head"
say $factum verify --chain
say $factum chain head
say $factum backup "$demo_dir/backup"
echo
echo "# retention, then a scavenge: keep the last 2 events of a stream; the scavenge gives the space of the"
echo "# others back (online; positions never change) and the chain still verifies"
say $factum meta set ledger '{"$maxCount":2}'
for i in 1 2 3 4 5 6; do $factum append ledger --type Entry --data "{\"n\":$i}" >/dev/null; done
say $factum scavenge --seal
say $factum read ledger
say $factum verify --chain
echo
echo "# the archive tier: sealed segments copied (verified) to a second disk; local copies past the retention"
echo "# (here: none) are dropped, and their events are read from the archive, transparently"
mkdir -p "$demo_dir/archive"
say $factum archive --archive-dir "$demo_dir/archive" --retain-bytes 0 --retain-seconds 0
say $factum read account-42
echo
echo "# crypto-shredding (GDPR erasure): with a master key kept outside the data directory, the events of a"
echo "# data subject (here every customer-<id> stream) are sealed under the subject's own key; shredding"
echo "# deletes that key, and the events read as shredded from then on, everywhere"
head -c 32 /dev/urandom >"$demo_dir/master.key" && chmod 600 "$demo_dir/master.key"
gdpr=(--data "$demo_dir/gdpr" --master-key-file "$demo_dir/master.key" --shred-categories customer)
say $factum "${gdpr[@]}" append customer-7 --type Registered --data '{"name":"Dana","email":"dana@example.com"}'
say $factum "${gdpr[@]}" append customer-8 --type Registered --data '{"name":"Eli","email":"eli@example.com"}'
echo "# (no byte of dana@example.com is in the data directory:"
grep -rl 'dana@example.com' "$demo_dir/gdpr" || echo "#  grep finds nothing)"
say $factum "${gdpr[@]}" shred 7
say $factum "${gdpr[@]}" read '$all'
echo
echo "# a read model: a JavaScript projection (KurrentDB's API; V8 in a process of its own) keeps each"
echo "# account's balance, partitioned by stream, exactly once, from the log"
say $factum projection create balances --wait --query "fromCategory('account').foreachStream().when({
  \$init: () => ({ balance: 0 }),
  MoneyDeposited: (s, e) => { s.balance += e.body.amount; return s; },
  MoneyWithdrawn: (s, e) => { s.balance -= e.body.amount; return s; } })"
say $factum projection state balances --partition account-42
say $factum projection state balances --partition account-7
say $factum projection list

echo
echo "# event sourcing for applications (docs/guide.md): the bank account as a decider (no overdraft, ever),"
echo "# an old event shape upcast by the store, and the balance on March 15 from a late booking"
bank="build/release/example_bank $demo_dir/bank"
say $bank open 1 Carol --valid-from 2026-03-01
say $bank deposit 1 100 --valid-from 2026-03-10
say $bank withdraw 1 500 || true
say $bank import-v1 1 25
say $bank withdraw 1 30 --valid-from 2026-03-12
say $bank balance 1
say $bank balance 1 --valid-at 2026-03-15
echo "# the orders of the brief driven by a saga: failures compensated in reverse order, three read models"
say build/release/example_orders --orders 20 --seed 7 --payment-timeout-ms 300 "$demo_dir/orders"
echo

echo
echo "== factumd: the same engine as a KurrentDB-compatible server =="
srvlog=$(dirname "$FACTUM_DATA")/factumd.log
srv=""
trap '[ -z "$srv" ] || { kill -TERM $srv 2>/dev/null || true; wait $srv 2>/dev/null || true; }; rm -rf "$demo_dir"' EXIT
# Ready when its log names its port and /health/live answers (scripts/lib.sh).
factumd_start "$srvlog" build/release/factumd --insecure --db "$(dirname "$FACTUM_DATA")/server-db" \
  --node-ip 127.0.0.1 --node-port 0 --backup-dir "$demo_dir/backups"
srv=$factumd_pid port=$factumd_port
url="kurrentdb://127.0.0.1:$port?tls=false"
cat "$srvlog"
unset FACTUM_DATA
say curl -s -o /dev/null -w 'GET /health/live -> %{http_code}\n' "http://127.0.0.1:$port/health/live"
say curl -s "http://127.0.0.1:$port/info"
echo "# the admin web UI (docs/ui.md) is on the same port: open http://127.0.0.1:$port/ in a browser while this runs"
say curl -s -o /dev/null -w 'GET /ui/ -> %{http_code} %{content_type}\n' "http://127.0.0.1:$port/ui/"
echo "# any KurrentDB/EventStoreDB client connects with $url; here the factum CLI over gRPC:"
say $factum --server "$url" append account-42 --expected no-stream --type AccountOpened --data '{"owner":"Alice"}'
say $factum --server "$url" append account-42 --expected 0 --type MoneyDeposited --data '{"amount":1000}'
say $factum --server "$url" append account-42 --expected 0 --type MoneyDeposited --data '{"amount":1}' || true
say $factum --server "$url" read account-42
echo "# a live subscription: tail follows account-42 while another client appends to it"
($factum --server "$url" tail account-42 --from start --markers --count 3 &
 sleep 0.5; $factum --server "$url" append account-42 --type MoneyWithdrawn --data '{"amount":250}' >/dev/null; wait)
echo "# a read model: SQL tables factumd keeps from the log, exactly once (docs/readmodels.md)"
cat >"$demo_dir/balances.json" <<'EOD'
{"name": "balances", "lifecycle": "inline", "streams": ["account-"],
 "schema": "CREATE TABLE balances(id TEXT PRIMARY KEY, owner TEXT, balance INTEGER NOT NULL)",
 "handlers": {
   "AccountOpened": "INSERT INTO balances VALUES (:stream, :data.owner, 0)",
   "MoneyDeposited": "UPDATE balances SET balance = balance + :data.amount WHERE id = :stream",
   "MoneyWithdrawn": "UPDATE balances SET balance = balance - :data.amount WHERE id = :stream"}}
EOD
cat "$demo_dir/balances.json"
say $factum --server "$url" readmodel create "$demo_dir/balances.json"
pos=$($factum --server "$url" append account-42 --type MoneyDeposited --data '{"amount":5}' --json |
  sed -n 's/.*"lastPosition":\([0-9]*\).*/\1/p')
say $factum --server "$url" readmodel wait balances "$pos"
echo "# inline: once an append is acknowledged, queries see it"
say $factum --server "$url" query balances 'SELECT id, owner, balance FROM balances ORDER BY id'
say curl -s -G "http://127.0.0.1:$port/readmodels/balances/query" --data-urlencode 'sql=SELECT balance FROM balances WHERE id = :id' --data-urlencode 'params={"id":"account-42"}'
echo
say $factum --server "$url" readmodel list
say $factum --server "$url" bench --count 2000 --workload W1,W2,W4,W7
echo
echo "# metrics for Prometheus:"
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^factum_(appends_total|events_written_total|group_commits_total|grpc_calls_total|connections_total) '
echo "# an online backup of the running server (on a thread of its own), and the hash chain's head:"
say curl -s -X POST "http://127.0.0.1:$port/admin/backup?destination=nightly"
for _ in $(seq 1 50); do
  curl -s "http://127.0.0.1:$port/admin/backup" | grep -q '"state":"running"' || break
  sleep 0.1
done
say curl -s "http://127.0.0.1:$port/admin/backup"
say curl -s "http://127.0.0.1:$port/admin/chain"
echo "# a scavenge of the running server (POST; GET its status by id, current or last):"
say curl -s -X POST "http://127.0.0.1:$port/admin/scavenge?seal=true"
for _ in $(seq 1 50); do
  curl -s "http://127.0.0.1:$port/admin/scavenge/current" | grep -q '"state":"running"' || break
  sleep 0.1
done
say curl -s "http://127.0.0.1:$port/admin/scavenge/last"
kill -TERM $srv; wait $srv
srv=""
echo
echo "== factumd secure, as by default: TLS, users, access control =="
certs=$(dirname "$srvlog")/certs
say $factum certs dev --out "$certs"
factum_start_log=$(dirname "$srvlog")/factumd-secure.log
factumd_start "$factum_start_log" build/release/factumd --db "$(dirname "$srvlog")/secure-db" --node-ip 127.0.0.1 \
  --node-port 0 --certificate-file "$certs/node/node.crt" --certificate-private-key-file "$certs/node/node.key" \
  --trusted-root-certificates-path "$certs/ca"
srv=$factumd_pid port=$factumd_port
grep -E "listening|default password" "$factum_start_log"
admin="kurrentdb://admin:changeit@localhost:$port?tlsCAFile=$certs/ca/ca.crt"
say $factum --server "$admin" user create alice --full-name Alice wonderland
say $factum --server "$admin" append account-7 --type AccountOpened --data '{"owner":"Alice"}'
say $factum --server "$admin" meta set account-7 '{"$acl":{"$r":"alice","$w":"$admins"}}'
alice="kurrentdb://alice:wonderland@localhost:$port?tlsCAFile=$certs/ca/ca.crt"
say $factum --server "$alice" read account-7
echo "# alice may read account-7 but not write it; no credentials, or a wrong password, may do nothing:"
say $factum --server "$alice" append account-7 --type MoneyDeposited --data '{"amount":5}' || true
say $factum --server "kurrentdb://localhost:$port?tlsCAFile=$certs/ca/ca.crt" read account-7 || true
say $factum --server "kurrentdb://alice:guess@localhost:$port?tlsCAFile=$certs/ca/ca.crt" read account-7 || true
echo "# and TLS without the CA is refused by the client:"
say $factum --server "kurrentdb://admin:changeit@localhost:$port" read account-7 || true
echo "# every administrative action is in \$audit:"
say $factum --server "$admin" read '$audit' --json
kill -TERM $srv; wait $srv
srv=""
echo
echo "factumd stopped cleanly. Next: README.md (the Node example, configuration, the secure quick start), docs/."
