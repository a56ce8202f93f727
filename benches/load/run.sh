#!/usr/bin/env bash
# Load comparison of facteur, mosquitto and rumqttd on this machine, in one run, with
# equivalent settings (loopback only, anonymous, 1000 queued messages per client, no
# persistence). Prints one set of markdown tables per broker (from `facteur bench`).
#
# Needs: mosquitto (Debian), rumqttd (`cargo install rumqttd`), and the release build of
# facteur (`cargo build --release -p facteur`; the script runs `$FACTEUR` if set, else
# `$CARGO_TARGET_DIR/release/facteur`, else `target/release/facteur`). Usage, from the
# repository root:
#   bash benches/load/run.sh [seconds per run] [idle connections]
#
# PIN=1 holds each broker to core 0 and the load generator to core 1 (taskset): what one
# core of broker delivers. Each throughput row also says the broker's CPU time per
# delivered message (from /proc) and, where `perf` can trace, its system calls per message.
# BROKERS="facteur mosquitto" runs only those. LOADGEN=path runs another build's `facteur
# bench` as the load generator (to compare two builds of the broker with one generator).
# TLS=1 puts facteur and mosquitto behind TLS with the same certificates (a CA and a
# P-256 server certificate for localhost made here with openssl; rumqttd is left out) and
# the load generator connects with `--cafile`: the idle connections' connects/s are then
# TLS handshakes (with CONNECT/CONNACK) per second. WS=1 puts facteur and mosquitto behind
# a WebSocket listener (the `mqtt` subprotocol; rumqttd is left out) and the load generator
# connects with `--ws`; with TLS=1 too, the WebSocket is over TLS (wss). ONLY=text runs only
# the throughput rows whose "scenario/qos/size" contains it.
#
# ROUNDS=N runs the throughput rows row by row instead of broker by broker: for each row,
# every broker, freshly started, runs it in turn (the one going first changes from round to
# round), and the lot N times. The brokers' runs of a row are then seconds apart, not
# minutes, so a slow spell of a shared machine weighs on all of them alike. It prints every
# run, then per row each broker's median run (by rate, with that run's CPU and system calls)
# and facteur's ratio to the better peer in each round and their median; each run's line
# also says how much CPU time the hypervisor took from the machine meanwhile (steal). The
# latency runs and the idle connections then run once per broker.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration="${1:-3}"
idle="${2:-10000}"
ulimit -n "$(ulimit -Hn)"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
bench="${FACTEUR:-${CARGO_TARGET_DIR:-target}/release/facteur}"
if [ ! -x "$bench" ]; then
  echo "no facteur program at $bench: run \`cargo build --release -p facteur\` first" >&2
  exit 1
fi

cp benches/load/facteur.toml "$work/facteur.toml"
if [ "${WS:-0}" = 1 ]; then
  printf 'protocol = "websockets"\n' >> "$work/facteur.toml"
  # mosquitto 2.0.11 (Debian 12) exits with "Unable to start any listening sockets" when all
  # its listeners are websockets ones: a plain one on 18852, which no client uses, keeps it up.
  printf 'listener 18852 127.0.0.1\nlistener 18842 127.0.0.1\nprotocol websockets\n' \
    > "$work/mosquitto.conf"
else
  printf 'listener 18842 127.0.0.1\n' > "$work/mosquitto.conf"
fi
# Its TLS lines, if any, are appended below: they belong to the last listener, 18842.
cat >> "$work/mosquitto.conf" <<CONF
allow_anonymous true
persistence false
max_queued_messages 1000
max_inflight_messages 20
max_connections -1
CONF
client_args=()
if [ "${WS:-0}" = 1 ]; then
  client_args+=(--ws /mqtt)
fi
if [ "${TLS:-0}" = 1 ]; then
  (
    cd "$work"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout ca.key -out ca.crt -days 2 -subj "/CN=facteur bench CA" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out server.crt -days 2 -extfile server.ext 2>/dev/null
  )
  printf 'certfile = "%s"\nkeyfile = "%s"\n' "$work/server.crt" "$work/server.key" >> "$work/facteur.toml"
  printf 'cafile %s\ncertfile %s\nkeyfile %s\n' "$work/ca.crt" "$work/server.crt" \
    "$work/server.key" >> "$work/mosquitto.conf"
  # Started as root, mosquitto becomes the user `mosquitto` before its websockets listener
  # (libwebsockets) reads the certificate and key, which it then cannot reach in this
  # private directory ("Unable to create websockets listener"): it stays the user it is.
  printf 'user %s\n' "$(id -un)" >> "$work/mosquitto.conf"
  client_args+=(--cafile "$work/ca.crt")
fi
only_args=()
if [ -n "${ONLY:-}" ]; then
  only_args=(--only "$ONLY")
fi
cat > "$work/rumqttd.toml" <<CONF
id = 0
[router]
id = 0
max_connections = 20000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:18843"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 20480
    max_inflight_count = 20
    dynamic_filters = true
CONF

loadgen="${LOADGEN:-$bench}"
broker_cpu=()
load_cpu=()
if [ "${PIN:-0}" = 1 ]; then
  broker_cpu=(taskset -c 0)
  load_cpu=(taskset -c 1)
fi
syscalls=()
if perf stat -e raw_syscalls:sys_enter -x , true >/dev/null 2>&1; then
  syscalls=(--syscalls)
fi

start() {
  # Another broker on the port (another run of this script) would be measured instead.
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use: is another load run going on?" >&2
    return 1
  fi
  case "$1" in
    facteur) "${broker_cpu[@]}" "$bench" broker -c "$work/facteur.toml" >/dev/null 2>"$work/broker.log" & ;;
    mosquitto) "${broker_cpu[@]}" mosquitto -c "$work/mosquitto.conf" >/dev/null 2>"$work/broker.log" & ;;
    rumqttd) "${broker_cpu[@]}" rumqttd -q -c "$work/rumqttd.toml" >/dev/null 2>"$work/broker.log" & ;;
  esac
  pid=$!
  # Bounded wait until it accepts connections (a restart may take a moment to bind).
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "$1 did not start listening on $port; the end of its standard error:" >&2
  tail -n 5 "$work/broker.log" >&2
  return 1
}

stop() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Sets the port and version of broker $1.
choose() {
  case "$1" in
    facteur) port=18841; version="$($bench --version | awk '{print $2}')" ;;
    mosquitto) port=18842; version="$( (mosquitto -h 2>/dev/null || true) | head -1 | awk '{print $3}')" ;;
    rumqttd) port=18843; version="$(rumqttd --version | awk '{print $2}')" ;;
  esac
}

default_brokers="facteur mosquitto rumqttd"
if [ "${TLS:-0}" = 1 ] || [ "${WS:-0}" = 1 ]; then
  default_brokers="facteur mosquitto"
fi
read -r -a brokers <<<"${BROKERS:-$default_brokers}"
rounds="${ROUNDS:-0}"
if [ "$rounds" -gt 0 ]; then
  mapfile -t rows < <("$loadgen" bench --list)
  : > "$work/runs"
  # Time the hypervisor gave neither core to this machine (steal, in ticks of 1/100 s, both
  # cores together): a run that lost some says so in its last column.
  steal() { awk '/^cpu[01] /{n += $9} END{print n}' /proc/stat; }
  echo "## every run (round | broker | row ... | ticks stolen from the machine)"
  echo
  for round in $(seq 1 "$rounds"); do
    # The broker going first moves by one each round.
    shift_by=$(((round - 1) % ${#brokers[@]}))
    order=("${brokers[@]:shift_by}" "${brokers[@]:0:shift_by}")
    for row in "${rows[@]}"; do
      if [ -n "${ONLY:-}" ] && [[ "$row" != *"$ONLY"* ]]; then
        continue
      fi
      for broker in "${order[@]}"; do
        choose "$broker"
        start "$broker"
        stolen_before="$(steal)"
        line="$("${load_cpu[@]}" "$loadgen" bench --port "$port" --duration "$duration" \
          --idle 0 --no-latency --pid "$pid" "${syscalls[@]}" "${client_args[@]}" \
          --only "$row" 2>/dev/null | grep -E '^\| (fan|p2p)' | head -n 1)"
        stolen="$(($(steal) - stolen_before))"
        stop
        echo "| $round | $broker $line $stolen |" | tee -a "$work/runs"
      done
    done
  done
  echo
  python3 - "$work/runs" "${brokers[@]}" <<'SUMMARY'
import statistics, sys
path, brokers = sys.argv[1], sys.argv[2:]
runs = {}  # (row, broker) -> [(round, rate, lost, cpu, calls)]
for line in open(path):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    rnd, broker, row = int(cells[0]), cells[1], tuple(cells[2:5])
    rate, lost, cpu, calls = float(cells[5]), cells[6], cells[7], cells[8]
    runs.setdefault((row, broker), []).append((rnd, rate, lost, cpu, calls))
rows = list(dict.fromkeys(row for row, _ in runs))
peers = [b for b in brokers if b != "facteur"]
print("## medians by row (each broker's median run by rate)")
print()
head = ["scenario", "QoS", "payload"] + [f"{b} msg/s" for b in brokers]
head += ["CPU ns/msg " + " / ".join(b[0] for b in brokers)]
head += ["syscalls/msg " + " / ".join(b[0] for b in brokers)]
head += ["QoS 1 lost " + " / ".join(b[0] for b in brokers)]
if "facteur" in brokers and peers:
    head += ["facteur / better peer, each round", "median"]
print("| " + " | ".join(head) + " |")
print("| --- | ---: | ---: |" + " ---: |" * (len(head) - 3))
for row in rows:
    median = {}
    for b in brokers:
        got = sorted(runs.get((row, b), []), key=lambda r: r[1])
        if got:
            median[b] = got[(len(got) - 1) // 2]
    cells = list(row)
    cells += [f"{median[b][1]:,.0f}" if b in median else "–" for b in brokers]
    cells += [" / ".join(median[b][3] if b in median else "–" for b in brokers)]
    cells += [" / ".join(median[b][4] if b in median else "–" for b in brokers)]
    lost = [str(sum(int(r[2]) for r in runs.get((row, b), []))) for b in brokers]
    cells += [" / ".join(lost) if row[1] == "1" else "–"]
    if "facteur" in brokers and peers:
        ratios = []
        for rnd in sorted({r[0] for r in runs.get((row, "facteur"), [])}):
            rate = {b: r[1] for b in brokers for r in runs.get((row, b), []) if r[0] == rnd}
            best = max((rate[p] for p in peers if p in rate), default=0)
            if "facteur" in rate and best > 0:
                ratios.append(rate["facteur"] / best)
        cells += [", ".join(f"{x:.2f}×" for x in ratios)]
        cells += [f"{statistics.median(ratios):.2f}×" if ratios else "–"]
    print("| " + " | ".join(cells) + " |")
print()
SUMMARY
fi
for broker in "${brokers[@]}"; do
  choose "$broker"
  echo "## $broker $version"
  echo
  start "$broker"
  if [ "$rounds" -gt 0 ]; then
    "${load_cpu[@]}" "$loadgen" bench --port "$port" --duration "$duration" --idle 0 \
      --latency-only "${client_args[@]}" 2>/dev/null
  else
    "${load_cpu[@]}" "$loadgen" bench --port "$port" --duration "$duration" --idle 0 \
      --pid "$pid" "${syscalls[@]}" "${client_args[@]}" "${only_args[@]}" 2>/dev/null
  fi
  stop
  # Idle connections on a fresh process, so its RSS growth is theirs alone.
  start "$broker"
  "${load_cpu[@]}" "$loadgen" bench --port "$port" --idle "$idle" --pid "$pid" --idle-only \
    "${client_args[@]}" 2>"$work/idle.err" || { cat "$work/idle.err" >&2; exit 1; }
  stop
  echo
done
