#!/usr/bin/env bash
# `npm start` as a newcomer runs it: no environment beyond PATH and HOME. Passes when, within
# 30 s, it prints the dashboard URL and /api/connections/stats answers with the printed token
# (and refuses without it); then stops it with Ctrl-C's signal and checks it exits cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

port_env=()
if (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null; then
  echo "start-smoke: port 3000 is taken on this machine; using PORT=0 (a free port)"
  port_env=(PORT=0)
fi

log=$(mktemp)
setsid env -i PATH="$PATH" HOME="$HOME" "${port_env[@]}" npm start >"$log" 2>&1 &
pid=$!
stop() { kill -INT -- "-$pid" 2>/dev/null || true; }
trap 'stop; cat "$log"' ERR

started=$SECONDS
until grep -q 'Dashboard: http' "$log"; do
  if ! kill -0 "$pid" 2>/dev/null; then echo "start-smoke: npm start exited early"; false; fi
  if (( SECONDS - started >= 30 )); then echo "start-smoke: no dashboard URL within 30 s"; false; fi
  sleep 0.2
done
url=$(grep -o 'Dashboard: http[^ ]*' "$log" | cut -d' ' -f2)
token=${url##*token=}
origin=$(echo "$url" | grep -o '^http://[^/]*')

[ "$(curl -s -o /dev/null -w '%{http_code}' "$origin/api/connections/stats")" = 401 ]
# Bodies are read whole before grep looks at them: `curl | grep -q` fails under pipefail when
# grep has matched and closed the pipe while curl was still writing (curl's exit 23).
stats=$(curl -fsS -H "Authorization: Bearer $token" "$origin/api/connections/stats")
grep -q '"success":true' <<<"$stats"
page=$(curl -fsS "$url")
grep -q '<title>connection-pools dashboard</title>' <<<"$page"
echo "start-smoke: dashboard served after $(( SECONDS - started )) s at $origin/api/connections/dashboard"

stop
wait "$pid" || true
grep -q 'stopped: pools closed, local services stopped' "$log"
trap - ERR
echo "start-smoke: stopped cleanly"
