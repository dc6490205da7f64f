#!/usr/bin/env bash
# A runtime-only install runs every command once. `pip install .` alone (no test extra: no pytest,
# no playwright, nothing the tests happen to pull in) into a fresh venv, then each command as a user
# would run it from another folder; any `Traceback`, or an exit code other than the ones allowed, fails.
# Called by .ci/run before the test extra is installed. RUNTIME_VENV (default /tmp/rt-venv) is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${RUNTIME_VENV:-/tmp/rt-venv}
WORK=$(mktemp -d)
SERVER_PIDS=()
cleanup() {
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "$REPO"
PY="$VENV/bin/python"
# Every third-party import of src/ is a declared dependency (also the ones inside functions, which
# the commands below may not reach).
"$PY" "$REPO/.ci/runtime_deps.py"

# The commands run in $WORK with no provider key and no database in the environment.
unset POLYGON_API_KEY MASSIVE_API_KEY DATABASE_URL DATABASE_PATH PYTHONPATH
cd "$WORK"
failures=0
# check ALLOWED_CODES NAME ARGS...: run `python -m gexhistory ARGS`, keep its output in $WORK/NAME.log
check() {
  local allowed=$1 name=$2
  shift 2
  local code=0
  "$PY" -m gexhistory "$@" >"$WORK/$name.log" 2>&1 || code=$?
  if grep -q "Traceback" "$WORK/$name.log"; then
    echo "FAIL $name: a traceback (gexhistory $*)"; cat "$WORK/$name.log"; failures=$((failures + 1))
  elif [[ " $allowed " != *" $code "* ]]; then
    echo "FAIL $name: exit $code, expected one of $allowed (gexhistory $*)"; tail -n 20 "$WORK/$name.log"
    failures=$((failures + 1))
  else
    echo "ok   $name (exit $code): gexhistory $*"
  fi
}

# serve_static DIR: DIR served over HTTP on a free 127.0.0.1 port in the background (its query strings
# ignored); returns once it answers, with the port in PORT.
serve_static() {
  PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  "$PY" -m http.server "$PORT" --bind 127.0.0.1 --directory "$1" >/dev/null 2>&1 &
  SERVER_PIDS+=($!)
  "$PY" -c "import socket, time, sys
for _ in range(100):
    try: socket.create_connection(('127.0.0.1', $PORT), 0.2).close(); sys.exit(0)
    except OSError: time.sleep(0.1)
sys.exit(1)"
}

DB="$WORK/gex.db"
check "0" init init --db "$DB"
check "0" backfill backfill --days 30 --quiet --db "$DB"
for f in "$REPO"/tests/data/chains/*; do
  extra=()
  case "$(basename "$f")" in *_eod_*) extra=(--volume-as-oi) ;; esac  # OptionsDX: no OI of its own
  check "0" "import-$(basename "$f")" import-chains "$f" "${extra[@]}" --db "$DB"
done
check "0" validate validate --reference "$REPO/tests/data/dix_sample.csv"
check "0 1" status-check status --check --db "$DB"
check "0" status status --json --db "$DB"
check "0" schedule schedule --project-dir "$WORK"
check "0" export export --table gex_history --out "$WORK/gex.parquet" --db "$DB"
check "0" export-contracts export --table option_chain_contracts --out "$WORK/contracts.csv" --db "$DB"

# The keyless snapshot, against Cboe's JSON shape served from 127.0.0.1 (one contract with IV 0).
mkdir -p "$WORK/www/api/global/delayed_quotes/options"
"$PY" - "$WORK/www/api/global/delayed_quotes/options/SPY.json" <<'EOF'
import json, sys
options = [{"option": f"SPY250620{r}{k * 1000:08d}", "bid": b, "ask": b + 0.1, "iv": 0.0 if k == 600 and r == "C"
            else 0.16, "open_interest": 1000 + k, "volume": 10, "delta": 0.5, "gamma": 0.02,
            "last_trade_price": b} for k, r, b in [(590, "C", 12.1), (600, "C", 6.3), (610, "C", 2.4),
                                                   (590, "P", 2.2), (600, "P", 5.9), (610, "P", 11.8)]]
json.dump({"timestamp": "2025-06-10 11:07:42", "data": {"symbol": "SPY", "current_price": 600.5, "close": 600.5,
           "prev_day_close": 598.0, "options": options}}, open(sys.argv[1], "w"))
EOF
serve_static "$WORK/www"
CBOE_BASE_URL="http://127.0.0.1:$PORT" check "0" snapshot-cboe snapshot --source cboe --symbols SPY --db "$DB"

# import-oi against Massive's open-interest shape served from 127.0.0.1 (static files: one session, one
# root), then validate --stored on what it wrote.
"$PY" - "$WORK/massive" "$WORK/ref.csv" <<'EOF'
import datetime as dt, json, os, sys
from gexhistory.calendar import ET, sessions_before, sessions_between
root, ref = sys.argv[1], sys.argv[2]
day = dt.date(2025, 6, 20)
first = sessions_before(day, 25)[0].date
bars = os.path.join(root, "v2/aggs/ticker/I:SPX/range/1/day", first.isoformat())
os.makedirs(bars, exist_ok=True)
days = [s.date for s in sessions_between(dt.date(2025, 1, 2), day)]
close = {d: 6000.0 + 30 * ((k * 7) % 5) for k, d in enumerate(days)}
results = [{"t": int(dt.datetime.combine(d, dt.time(), ET).timestamp() * 1000), "o": c, "h": c + 9, "l": c - 9,
            "c": c, "v": 0} for d, c in close.items() if d >= first]
json.dump({"status": "OK", "ticker": "I:SPX", "results": results}, open(os.path.join(bars, day.isoformat()), "w"))
os.makedirs(os.path.join(root, "options/v1"), exist_ok=True)
recs = [{"date": "2025-06-18", "ticker": f"O:SPXW250627{r}0{k}000", "underlying_ticker": "SPX", "root": "SPXW",
         "contract_type": "call" if r == "C" else "put", "expiration_date": "2025-06-27", "strike_price": k,
         "open_interest": 500 + k % 700} for k in range(5900, 6150, 25) for r in "CP"]
json.dump({"status": "OK", "request_id": "r", "results": recs}, open(os.path.join(root, "options/v1/open-interest"), "w"))
with open(ref, "w") as f:
    f.write("date,price,dix,gex\n" + "".join(f"{d},{c},0.44,{(k % 9 - 3) * 1e9}\n" for k, (d, c) in enumerate(close.items())))
EOF
serve_static "$WORK/massive"
POLYGON_API_KEY=runtime-only-key MASSIVE_BASE_URL="http://127.0.0.1:$PORT" MASSIVE_MAX_TRIES=1 MASSIVE_RATE_PER_MIN=6000 \
  check "0" import-oi import-oi --symbol SPX --roots SPXW --start 2025-06-20 --end 2025-06-20 --db "$DB"
check "0" validate-stored validate --reference "$WORK/ref.csv" --stored --symbol SPX --db "$DB"

# The pages: serve, fetch one page and the API once, stop.
PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
"$PY" -m gexhistory serve --port "$PORT" --db "$DB" >"$WORK/serve.log" 2>&1 &
SERVER_PIDS+=($!)
if "$PY" -c "import sys, time, urllib.request
for _ in range(150):
    try:
        for path in ('/gex/history?symbol=SPY', '/api/gex/history?symbol=SPY'):
            urllib.request.urlopen('http://127.0.0.1:$PORT' + path, timeout=5).read()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)" && ! grep -q Traceback "$WORK/serve.log"; then
  echo "ok   serve: /gex/history and /api/gex/history answered"
else
  echo "FAIL serve"; cat "$WORK/serve.log"; failures=$((failures + 1))
fi

if ((failures)); then
  echo "runtime-only install: $failures command(s) failed"
  exit 1
fi
echo "runtime-only install: every command ran without a traceback"
