# Shared by the scripts that start factumd (sourced: scripts/demo.sh,
# bench/run-network.sh, tests/integration/*.sh): starting it on a port of its
# choosing and knowing when it is ready, without racing its log.

# factumd_health PORT: 0 if GET /health/live on 127.0.0.1:PORT answers 204
# (HTTP/1.1 shares the gRPC port; bash's /dev/tcp, so no curl is needed), or,
# on a TLS port, the 400 that says cleartext is not served there.
factumd_health() {
  local fd reply=""
  exec {fd}<>"/dev/tcp/127.0.0.1/$1" || return 1
  # A TLS port may answer and close before the request is all written: in a
  # subshell that ignores SIGPIPE, so that the caller is not killed by it.
  (trap '' PIPE; printf 'GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&"$fd") \
    2>/dev/null || true
  IFS= read -r -t 5 reply <&"$fd" || true
  exec {fd}>&-
  # 400 is the answer of a TLS port to cleartext (factumd started with
  # certificates): the server is up.
  [[ $reply == "HTTP/1.1 204"* || $reply == "HTTP/1.1 400"* ]]
}

# factumd_start LOG FACTUMD ARGS...: start FACTUMD ARGS... in the background
# (ARGS must include --node-ip 127.0.0.1 --node-port 0), its output in LOG,
# and set factumd_pid and, once it is ready, factumd_port. Ready: its log
# names the port it listens on (written after the socket listens) and
# /health/live answers. LOG is emptied before factumd starts, so reading it
# neither races its creation nor finds an earlier run's port. If factumd
# exits first or is not ready within 30 s (it is then killed), its log goes
# to stderr and the return is 1.
factumd_start() {
  local log=$1 bin=$2
  shift 2
  : >"$log"
  "$bin" "$@" >>"$log" 2>&1 &
  factumd_pid=$!
  factumd_port=""
  local i
  for ((i = 0; i < 300; i++)); do
    factumd_port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log")
    factumd_port=${factumd_port%%$'\n'*}
    if [ -n "$factumd_port" ] && factumd_health "$factumd_port" 2>/dev/null; then return 0; fi
    if ! kill -0 "$factumd_pid" 2>/dev/null; then
      echo "factumd exited before it was ready; its log:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "factumd was not ready after 30 s; its log:" >&2
  cat "$log" >&2
  kill -9 "$factumd_pid" 2>/dev/null || true
  return 1
}
