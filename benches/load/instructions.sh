#!/usr/bin/env bash
# The broker's instructions per delivered message on one row of the load comparison,
# counted by valgrind (callgrind), not timed: the count is the same whatever else the
# machine is doing, so two builds can be compared on a noisy machine where their rates
# cannot. It counts user-space instructions only: the kernel's work (system calls, waking
# the clients) is not in it, and neither is what the count does to batching (a broker under
# valgrind is many times slower, so more messages wait for each wake-up than in a real run).
#
# The broker runs under valgrind on core 0 and `facteur bench` loads it from core 1 for a
# short and a long run; the instructions per message are the difference of the two totals
# over the difference of the messages delivered, so that starting the broker and
# connecting the clients, the same in both runs, cancel out.
#
# Needs valgrind and the release build of facteur. Usage, from the repository root:
#   bash benches/load/instructions.sh ROW [short seconds] [long seconds]
# ROW as `facteur bench --list` prints it, e.g. "fan-in 8→1/1/64". FACTEUR=path is the
# broker's build (default target/release/facteur); LOADGEN=path the load generator's (the
# same by default: keep one generator when comparing two brokers).
set -euo pipefail
cd "$(dirname "$0")/../.."
row="${1:?usage: instructions.sh ROW [short seconds] [long seconds]}"
short="${2:-3}"
long="${3:-10}"
broker="${FACTEUR:-${CARGO_TARGET_DIR:-target}/release/facteur}"
loadgen="${LOADGEN:-$broker}"
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
[ -x "$broker" ] || { echo "no facteur program at $broker" >&2; exit 1; }
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cp benches/load/facteur.toml "$work/facteur.toml"

# One run of `$1` seconds: prints "messages instructions".
run() {
  local seconds="$1" pid line
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
    "$broker" broker -c "$work/facteur.toml" >/dev/null 2>"$work/valgrind.log" &
  pid=$!
  for _ in $(seq 300); do
    (echo >/dev/tcp/127.0.0.1/18841) 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/valgrind.log" >&2; exit 1; }
    sleep 0.1
  done
  line="$(taskset -c 1 "$loadgen" bench --port 18841 --only "$row" --duration "$seconds" \
    --no-latency --idle 0 | grep -F "| ${row%%/*} |" | head -1)"
  kill -INT "$pid"
  wait "$pid" || true
  python3 - "$line" "$seconds" "$work/callgrind.out" <<'COUNT'
import sys
line, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rate = float(line.split("|")[4].replace(",", ""))
total = next(int(l.split()[1]) for l in open(out) if l.startswith(("summary:", "totals:")))
print(round(rate * seconds), total)
COUNT
}

read -r short_messages short_total < <(run "$short")
read -r long_messages long_total < <(run "$long")
python3 - "$row" "$short_messages" "$short_total" "$long_messages" "$long_total" <<'SLOPE'
import sys
row = sys.argv[1]
m1, i1, m2, i2 = map(int, sys.argv[2:])
if m2 <= m1:
    sys.exit(f"{row}: the long run delivered no more than the short one ({m2} <= {m1})")
print(f"{row}: {(i2 - i1) / (m2 - m1):,.0f} instructions per delivered message "
      f"({m1:,} messages in {i1:,} instructions, then {m2:,} in {i2:,})")
SLOPE
