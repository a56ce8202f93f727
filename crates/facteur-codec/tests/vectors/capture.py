#!/usr/bin/env python3
"""Capture real MQTT traffic between mosquitto_pub / mosquitto_sub and a real
mosquitto broker, and store it as codec test vectors.

Usage (from the repository root):

    python3 crates/facteur-codec/tests/vectors/capture.py

What it does:

* starts `mosquitto` on a free 127.0.0.1 port with a minimal temporary config
  (and a second, refusing instance for the CONNACK-failure scenarios);
* starts an in-process recording TCP proxy on another 127.0.0.1 port that
  forwards to the broker and records both byte streams of every connection;
* runs the scenarios below with mosquitto_pub / mosquitto_sub (and, for the few
  things those clients cannot do, the paho-mqtt helper `paho_helper.py`)
  pointed at the proxy,
  each client with a bounded timeout;
* splits each recorded byte stream into MQTT packets using only the fixed
  header (type byte + variable byte integer remaining length) and writes one
  `<scenario>.txt` file per scenario next to this script.

Only the Python standard library is used here. Everything listens on and talks
to 127.0.0.1 only. The broker(s), the proxy and any client still running are
stopped at exit, also on error or Ctrl-C.
"""

import getpass
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
HELPER = os.path.join(HERE, "paho_helper.py")
CLIENT_TIMEOUT = 15.0  # hard upper bound for any single client process
WAIT_TIMEOUT = 10.0  # upper bound when waiting for a packet to show up

PACKET_TYPES = {
    1: "CONNECT",
    2: "CONNACK",
    3: "PUBLISH",
    4: "PUBACK",
    5: "PUBREC",
    6: "PUBREL",
    7: "PUBCOMP",
    8: "SUBSCRIBE",
    9: "SUBACK",
    10: "UNSUBSCRIBE",
    11: "UNSUBACK",
    12: "PINGREQ",
    13: "PINGRESP",
    14: "DISCONNECT",
    15: "AUTH",
}
TYPE_BY_NAME = {v: k for k, v in PACKET_TYPES.items()}
PROTOCOL_BY_LEVEL = {3: "3.1", 4: "3.1.1", 5: "5.0"}

VERSIONS = [
    # (-V argument, protocol label, file name suffix)
    ("mqttv31", "3.1", "v31"),
    ("mqttv311", "3.1.1", "v311"),
    ("mqttv5", "5.0", "v5"),
]


class CaptureError(Exception):
    pass


# --------------------------------------------------------------------------
# MQTT framing (fixed header only)
# --------------------------------------------------------------------------


def split_packets(stream):
    """Split a byte stream into MQTT packets using the fixed header.

    Returns (packets, leftover) where packets is a list of (start, end) offsets
    and leftover is the number of trailing bytes that do not form a complete
    packet (a truncated stream)."""
    packets = []
    pos = 0
    n = len(stream)
    while pos < n:
        i = pos + 1
        length = 0
        shift = 0
        complete = False
        for _ in range(4):
            if i >= n:
                break
            b = stream[i]
            i += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if b & 0x80 == 0:
                complete = True
                break
        else:
            raise CaptureError("malformed remaining length at offset %d" % pos)
        if not complete or i + length > n:
            break
        packets.append((pos, i + length))
        pos = i + length
    return packets, n - pos


def describe(direction, pkt, protocol):
    """Short label for the per-connection summary comment, e.g. s2c:CONNACK(0x87).

    Shows the CONNACK return / reason code and a DISCONNECT reason code when
    present (only the fixed header and the first bytes are looked at)."""
    t = pkt[0] >> 4
    name = "%s:%s" % (direction, PACKET_TYPES.get(t, "?"))
    _, pos = read_varint(pkt, 1)
    if t == 2 and len(pkt) >= pos + 2:
        name += "(0x%02x)" % pkt[pos + 1]
    elif t == 14 and len(pkt) > pos:
        name += "(0x%02x)" % pkt[pos]
    return name


def read_utf8(buf, pos):
    ln = int.from_bytes(buf[pos : pos + 2], "big")
    return buf[pos + 2 : pos + 2 + ln].decode("utf-8", "replace"), pos + 2 + ln


def read_varint(buf, pos):
    value, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b & 0x80 == 0:
            return value, pos


def parse_connect(pkt):
    """(protocol label, client id) of a CONNECT packet."""
    _, pos = read_varint(pkt, 1)
    _name, pos = read_utf8(pkt, pos)
    level = pkt[pos]
    pos += 1 + 1 + 2  # level, flags, keep alive
    if level == 5:
        plen, pos = read_varint(pkt, pos)
        pos += plen
    client_id, _ = read_utf8(pkt, pos)
    return PROTOCOL_BY_LEVEL.get(level, "level-%d" % level), client_id


# --------------------------------------------------------------------------
# Recording proxy
# --------------------------------------------------------------------------


class Connection:
    def __init__(self, proxy, index):
        self.proxy = proxy
        self.index = index
        self.chunks = []  # (seq, direction, bytes)
        self.closed_dirs = 0
        self.done = threading.Event()

    def stream(self, direction):
        return b"".join(c for _, d, c in self.chunks if d == direction)

    def packets(self):
        """All complete packets, ordered by the arrival of their last byte.

        Returns (list of (direction, bytes), {direction: leftover bytes})."""
        with self.proxy.lock:
            chunks = list(self.chunks)
        out = []
        leftovers = {}
        for direction in ("c2s", "s2c"):
            mine = [(s, c) for s, d, c in chunks if d == direction]
            data = b"".join(c for _, c in mine)
            ends = []  # cumulative end offset of each chunk, with its seq
            total = 0
            for s, c in mine:
                total += len(c)
                ends.append((total, s))
            spans, leftovers[direction] = split_packets(data)
            k = 0
            for j, (a, b) in enumerate(spans):
                while ends[k][0] < b:
                    k += 1
                out.append(((ends[k][1], direction == "s2c", j), direction, data[a:b]))
        out.sort(key=lambda t: t[0])
        return [(d, p) for _, d, p in out], leftovers

    def info(self):
        """(protocol, client id) from the CONNECT, or (None, None)."""
        for d, p in self.packets()[0]:
            if d == "c2s" and p[0] >> 4 == 1:
                return parse_connect(p)
        return None, None

    def count(self, direction, type_name):
        t = TYPE_BY_NAME[type_name]
        return sum(1 for d, p in self.packets()[0] if d == direction and p[0] >> 4 == t)


class Proxy:
    def __init__(self, upstream_port):
        self.upstream = (HOST, upstream_port)
        self.lock = threading.Lock()
        self.seq = 0
        self.connections = []
        self.sockets = []
        self.stopping = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((HOST, 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            with self.lock:
                conn = Connection(self, len(self.connections))
                self.connections.append(conn)
                self.sockets += [client, server]
            for src, dst, direction in ((client, server, "c2s"), (server, client, "s2c")):
                threading.Thread(
                    target=self._pump, args=(conn, src, dst, direction), daemon=True
                ).start()

    def _pump(self, conn, src, dst, direction):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            with self.lock:
                self.seq += 1
                conn.chunks.append((self.seq, direction, data))
            try:
                dst.sendall(data)
            except OSError:
                pass  # peer gone; keep recording what still arrives
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self.lock:
            conn.closed_dirs += 1
            finished = conn.closed_dirs == 2
        if finished:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass
            conn.done.set()

    def mark(self):
        with self.lock:
            return len(self.connections)

    def since(self, mark):
        with self.lock:
            return list(self.connections[mark:])

    def wait_for(self, mark, client_id, direction, type_name, count=1, timeout=WAIT_TIMEOUT):
        """Wait until the (latest) connection with this client id has seen
        `count` packets of the given type in the given direction."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for conn in reversed(self.since(mark)):
                if conn.info()[1] == client_id:
                    if conn.count(direction, type_name) >= count:
                        return conn
                    break
            time.sleep(0.02)
        raise CaptureError(
            "timed out waiting for %s %s from client %r" % (direction, type_name, client_id)
        )

    def wait_closed(self, mark, timeout=WAIT_TIMEOUT):
        deadline = time.monotonic() + timeout
        for conn in self.since(mark):
            if not conn.done.wait(max(0.0, deadline - time.monotonic())):
                raise CaptureError("connection %d did not close in time" % conn.index)

    def close(self):
        self.stopping = True
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.sockets)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


# --------------------------------------------------------------------------
# Processes: broker and clients
# --------------------------------------------------------------------------

PROCESSES = []  # every Popen we started, for cleanup


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def kill_process(p, grace=3.0):
    if p.poll() is not None:
        return
    try:
        p.terminate()
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    except OSError:
        pass


class Broker:
    def __init__(self, workdir, name, extra_lines=()):
        self.port = free_port()
        self.name = name
        lines = [
            "listener %d %s" % (self.port, HOST),
            "persistence false",
        ] + list(extra_lines)
        self.config_lines = lines
        if os.geteuid() == 0:
            # Otherwise mosquitto drops to the `mosquitto` user and may not be
            # able to read files in our temp dir.
            lines = lines + ["user %s" % getpass.getuser()]
        self.conf = os.path.join(workdir, name + ".conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", self.conf],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        PROCESSES.append(self.proc)
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise CaptureError("mosquitto (%s) exited early, see %s" % (name, self.log_path))
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise CaptureError("mosquitto (%s) did not start listening" % name)
                time.sleep(0.05)
        # The readiness probe above shows up in the broker log only; it never
        # goes through the proxy.

    def stop(self):
        kill_process(self.proc)
        self.log.close()


def first_line(cmd):
    try:
        out = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = out.decode("utf-8", "replace").splitlines()
    for line in lines:
        if "version" in line:
            return line.strip()
    return lines[0].strip() if lines else "unknown"


class Scenario:
    """Collects the commands and connections of one output file."""

    def __init__(self, ctx, name, description, broker=None):
        self.ctx = ctx
        self.name = name
        self.description = description
        self.broker = broker or ctx.broker
        self.proxy = ctx.proxies[self.broker.name]
        self.mark = self.proxy.mark()
        self.commands = []
        self.notes = []
        self.running = []

    def _args(self, cmd):
        return [str(a).replace("$PORT", str(self.proxy.port)) for a in cmd]

    def _log(self, cmd, background=False, expect=None):
        text = shlex.join(cmd)
        if cmd and cmd[0] == sys.executable:
            text = "python3 " + shlex.join(cmd[1:])
        text = text.replace(HERE + os.sep, "")
        if background:
            text += "  &"
        if expect is not None:
            text += "   # expected exit status %s" % expect
        self.commands.append(text)

    def run(self, cmd, expect=0, timeout=CLIENT_TIMEOUT):
        """Run a client to completion (bounded)."""
        self._log(cmd, expect=None if expect == 0 else expect)
        p = subprocess.Popen(
            self._args(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        PROCESSES.append(p)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process(p)
            raise CaptureError("%s: client timed out: %s" % (self.name, shlex.join(cmd)))
        if expect is not None and p.returncode != expect:
            raise CaptureError(
                "%s: %s exited with %d (expected %s): %s"
                % (self.name, shlex.join(cmd), p.returncode, expect, out.decode(errors="replace"))
            )
        return out

    def start(self, cmd):
        """Start a client in the background."""
        self._log(cmd, background=True)
        p = subprocess.Popen(
            self._args(cmd),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        PROCESSES.append(p)
        self.running.append((cmd, p))
        return p

    def wait(self, p, expect=0, timeout=CLIENT_TIMEOUT):
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_process(p)
            raise CaptureError("%s: background client timed out" % self.name)
        if expect is not None and p.returncode != expect:
            raise CaptureError(
                "%s: background client exited with %d (expected %s): %s"
                % (self.name, p.returncode, expect, out.decode(errors="replace"))
            )
        return out

    def wait_for(self, client_id, direction, type_name, count=1, timeout=WAIT_TIMEOUT):
        return self.proxy.wait_for(self.mark, client_id, direction, type_name, count, timeout)

    def note(self, text):
        self.notes.append(text)

    def finish(self):
        for _, p in self.running:
            if p.poll() is None:
                kill_process(p)
        self.proxy.wait_closed(self.mark)
        conns = self.proxy.since(self.mark)
        if not conns:
            raise CaptureError("%s: no connections recorded" % self.name)
        self.ctx.write(self, conns)


class Context:
    def __init__(self, workdir):
        self.workdir = workdir
        self.brokers = {}
        self.proxies = {}
        self.files = []
        self.broker_version = first_line(["mosquitto", "-h"])
        self.pub_version = first_line(["mosquitto_pub", "--help"])
        self.sub_version = first_line(["mosquitto_sub", "--help"])
        self.paho_version = None
        try:
            out = subprocess.run(
                [sys.executable, "-c", "import paho.mqtt; print(paho.mqtt.__version__)"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                timeout=10,
            )
            if out.returncode == 0:
                self.paho_version = out.stdout.decode().strip()
        except (OSError, subprocess.TimeoutExpired):
            pass

    def add_broker(self, name, extra_lines=()):
        b = Broker(self.workdir, name, extra_lines)
        self.brokers[name] = b
        self.proxies[name] = Proxy(b.port)
        return b

    @property
    def broker(self):
        return self.brokers["main"]

    def cleanup(self):
        for p in self.proxies.values():
            p.close()
        for b in self.brokers.values():
            b.stop()
        for p in PROCESSES:
            kill_process(p, grace=1.0)

    def write(self, sc, conns):
        lines = []
        lines.append("# facteur-codec MQTT test vector: %s" % sc.name)
        lines.append("# Captured by capture.py in this directory.")
        lines.append("# broker:  %s  (mosquitto -h | head -1)" % self.broker_version)
        lines.append("# clients: %s" % self.pub_version)
        lines.append("#          %s" % self.sub_version)
        if any("paho_helper.py" in c for c in sc.commands):
            lines.append("#          paho-mqtt %s (helper paho_helper.py)" % self.paho_version)
        lines.append("# broker config (plus a `user` line when run as root):")
        for cl in sc.broker.config_lines:
            cl = cl.replace(str(sc.broker.port), "<port>")
            lines.append("#   %s" % cl)
        lines.append("# All clients talked to a recording TCP proxy on 127.0.0.1 ($PORT below)")
        lines.append("# that forwarded to the broker.")
        lines.append("#")
        for d in sc.description.strip().splitlines():
            lines.append(("# " + d.strip()).rstrip())
        lines.append("#")
        lines.append("# Commands, in order:")
        for c in sc.commands:
            lines.append("#   $ %s" % c)
        for n in sc.notes:
            lines.append("# Note: %s" % n)
        lines.append("#")
        lines.append("# Format (see README.md): one packet per line, `<c2s|s2c> <3.1|3.1.1|5.0> <hex>`;")
        lines.append("# each connection's packets follow its `# connection` comment, in arrival order.")
        summary = {}
        for n, conn in enumerate(conns, 1):
            packets, leftovers = conn.packets()
            protocol, client_id = conn.info()
            if protocol is None:
                protocol = "unknown"
            names = [describe(d, p, protocol) for d, p in packets]
            lines.append("#")
            lines.append(
                "# connection %d: client id %r, MQTT %s, %d packets"
                % (n, client_id, protocol, len(packets))
            )
            for i in range(0, len(names), 6):
                lines.append("#   " + " ".join(names[i : i + 6]))
            for d, left in leftovers.items():
                if left:
                    raise CaptureError(
                        "%s: connection %d: %d trailing %s bytes do not form a complete packet"
                        % (sc.name, n, left, d)
                    )
            for d, p in packets:
                t = p[0] >> 4
                if t not in PACKET_TYPES:
                    raise CaptureError("%s: invalid packet type byte %02x" % (sc.name, p[0]))
                lines.append("%s %s %s" % (d, protocol, p.hex()))
                key = "%s %s" % (d, PACKET_TYPES[t])
                summary[key] = summary.get(key, 0) + 1
        path = os.path.join(HERE, sc.name + ".txt")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.files.append((sc.name, len(conns), summary, os.path.getsize(path)))
        print(
            "%-32s %d conn  %s" % (sc.name + ".txt", len(conns), ", ".join("%s=%d" % kv for kv in sorted(summary.items()))),
            flush=True,
        )


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


def pub(V, cid, *args):
    return ["mosquitto_pub", "-h", HOST, "-p", "$PORT", "-V", V, "-i", cid] + list(args)


def sub(V, cid, *args):
    return ["mosquitto_sub", "-h", HOST, "-p", "$PORT", "-V", V, "-i", cid] + list(args)


def scenario_publish(ctx, V, proto, suffix, qos):
    sc = Scenario(
        ctx,
        "publish_qos%d_%s" % (qos, suffix),
        """QoS %d publish with MQTT %s. A mosquitto_sub subscribed at QoS %d on a
        wildcard filter receives it and exits after one message (-C 1)."""
        % (qos, proto, qos),
    )
    sid, pid = "sub-q%d-%s" % (qos, suffix), "pub-q%d-%s" % (qos, suffix)
    s = sc.start(sub(V, sid, "-q", str(qos), "-t", "q%d/%s/#" % (qos, suffix), "-C", "1", "-W", "10", "-v"))
    sc.wait_for(sid, "s2c", "SUBACK")
    sc.run(pub(V, pid, "-q", str(qos), "-t", "q%d/%s/hello" % (qos, suffix), "-m", "hello qos %d" % qos))
    sc.wait(s)
    sc.finish()


def scenario_retained(ctx, V, proto, suffix):
    sc = Scenario(
        ctx,
        "retained_%s" % suffix,
        """Retained messages with MQTT %s: a QoS 1 retained publish (-r); a later
        subscriber receives it with the retain flag set; the retained message is
        cleared with a zero-length retained publish (-r -n); a last subscriber
        (-W 2, times out) shows that nothing is retained any more.""" % proto,
    )
    topic = "ret/%s/state" % suffix
    flt = "ret/%s/#" % suffix
    sc.run(pub(V, "ret-pub-%s" % suffix, "-q", "1", "-r", "-t", topic, "-m", "on"))
    sc.run(sub(V, "ret-sub-%s" % suffix, "-q", "1", "-t", flt, "-C", "1", "-W", "10", "-v"))
    sc.run(pub(V, "ret-clr-%s" % suffix, "-q", "1", "-r", "-n", "-t", topic))
    sc.run(sub(V, "ret-chk-%s" % suffix, "-q", "1", "-t", flt, "-W", "2", "-v"), expect=27)
    sc.note("mosquitto_sub exits with status 27 when -W times out; it still sends a DISCONNECT"
            " (with MQTT 5 that DISCONNECT has reason code 0x04, disconnect with will message).")
    sc.finish()


def scenario_will(ctx, V, proto, suffix):
    v5 = V == "mqttv5"
    sc = Scenario(
        ctx,
        "will_%s" % suffix,
        """Will message with MQTT %s. A client with a QoS 1 retained will,
        username/password (the broker allows anonymous access, so any credentials
        are accepted) and keep alive 5 s connects and subscribes, idles until it
        has exchanged PINGREQ/PINGRESP, and is then killed with SIGKILL, so the
        broker publishes the will to a watching subscriber. Finally the retained
        will is cleared.%s"""
        % (proto, " The will carries MQTT 5 will properties." if v5 else ""),
    )
    wid, watch = "will-%s" % suffix, "will-watch-%s" % suffix
    topic = "will/%s/status" % suffix
    w = sc.start(sub(V, watch, "-q", "1", "-t", "will/%s/#" % suffix, "-C", "1", "-W", "14", "-v"))
    sc.wait_for(watch, "s2c", "SUBACK")
    extra = []
    if v5:
        extra = [
            "-D", "will", "content-type", "text/plain",
            "-D", "will", "user-property", "reason", "crash",
            "-D", "will", "message-expiry-interval", "120",
            "-D", "will", "will-delay-interval", "0",
        ]
    cmd = sub(
        V, wid,
        "-u", "alice", "-P", "s3cret", "-k", "5",
        "--will-topic", topic, "--will-payload", "offline", "--will-qos", "1", "--will-retain",
        "-q", "0", "-t", "will/%s/cmd" % suffix,
    ) + extra
    c = sc.start(cmd)
    sc.wait_for(wid, "s2c", "SUBACK")
    sc.wait_for(wid, "s2c", "PINGRESP", timeout=12)
    c.send_signal(signal.SIGKILL)
    sc.commands.append("kill -KILL <pid of %s>   # after its PINGREQ/PINGRESP" % wid)
    c.wait(5)
    sc.wait(w)
    sc.run(pub(V, "will-clr-%s" % suffix, "-q", "1", "-r", "-n", "-t", topic))
    sc.finish()


def scenario_multi(ctx, V, proto, suffix):
    v5 = V == "mqttv5"
    sc = Scenario(
        ctx,
        "subscribe_multi_%s" % suffix,
        """MQTT %s: one SUBSCRIBE with three filters (-t a -t b/+ -t c/#) at QoS 1,
        then an UNSUBSCRIBE of `a` (mosquitto_sub -U, sent right after the
        SUBSCRIBE); once the UNSUBACK is seen a QoS 1 message to c/d/e is
        published and delivered.%s"""
        % (proto, " SUBSCRIBE and UNSUBSCRIBE carry user properties." if v5 else ""),
    )
    sid = "multi-%s" % suffix
    extra = ["-D", "subscribe", "user-property", "x", "y", "-D", "unsubscribe", "user-property", "u", "v"] if v5 else []
    s = sc.start(sub(V, sid, "-q", "1", "-t", "a", "-t", "b/+", "-t", "c/#", "-U", "a", "-C", "1", "-W", "10", "-v") + extra)
    sc.wait_for(sid, "s2c", "UNSUBACK")
    sc.run(pub(V, "multi-pub-%s" % suffix, "-q", "1", "-t", "c/d/e", "-m", "multi"))
    sc.wait(s)
    sc.finish()


def scenario_payload(ctx, V, proto, suffix, size, with_sub):
    label = "1k" if size == 1024 else "%dk" % (size // 1024)
    sc = Scenario(
        ctx,
        "payload_%s_%s" % (label, suffix),
        """MQTT %s: QoS 1 publish of a %d byte binary payload (mosquitto_pub -f;
        byte i of the payload is i %% 256%s).%s"""
        % (
            proto,
            size,
            "" if size <= 1024 else ", so the PUBLISH has a 3-byte remaining length",
            " A subscriber on a wildcard receives it." if with_sub
            else " No subscriber, to keep the vector small (the PUBLISH is still acknowledged).",
        ),
    )
    path = os.path.join(ctx.workdir, "payload-%d.bin" % size)
    with open(path, "wb") as f:
        f.write(bytes(i % 256 for i in range(size)))
    topic = "big/%s/%s" % (label, suffix)
    s = None
    if with_sub:
        sid = "big-sub-%s-%s" % (label, suffix)
        s = sc.start(sub(V, sid, "-q", "1", "-t", "big/%s/#" % label, "-C", "1", "-W", "10", "-N"))
        sc.wait_for(sid, "s2c", "SUBACK")
    cmd = pub(V, "big-pub-%s-%s" % (label, suffix), "-q", "1", "-t", topic, "-f", path)
    sc.run(cmd)
    sc.commands[-1] = sc.commands[-1].replace(path, "payload-%d.bin" % size)
    if s is not None:
        sc.wait(s)
    sc.finish()


def scenario_v5_properties(ctx):
    sc = Scenario(
        ctx,
        "v5_properties",
        """MQTT 5.0 properties. The subscriber's CONNECT carries session expiry
        interval 30, receive maximum 10, topic alias maximum 5, maximum packet size
        and a user property; its SUBSCRIBE a user property and the retain as
        published option (--retain-as-published). The publisher's PUBLISH
        carries user property, content type, message expiry interval, response
        topic, correlation data, payload format indicator and a topic alias;
        its DISCONNECT carries a session expiry interval and a user property (so
        it has an explicit reason code byte). The broker's CONNACKs carry
        mosquitto's v5 properties.""",
    )
    sid, pid = "v5-props-sub", "v5-props-pub"
    s = sc.start(
        sub(
            "mqttv5", sid, "-q", "1", "-t", "props/#", "-C", "1", "-W", "10", "-v",
            "-D", "connect", "session-expiry-interval", "30",
            "-D", "connect", "receive-maximum", "10",
            "-D", "connect", "topic-alias-maximum", "5",
            "-D", "connect", "maximum-packet-size", "65536",
            "-D", "connect", "user-property", "a", "b",
            "-D", "subscribe", "user-property", "x", "y",
            "--retain-as-published",
        )
    )
    sc.wait_for(sid, "s2c", "SUBACK")
    sc.run(
        pub(
            "mqttv5", pid, "-q", "1", "-t", "props/data", "-m", '{"temp":21.5}',
            "-D", "publish", "user-property", "k", "v",
            "-D", "publish", "content-type", "text/plain",
            "-D", "publish", "message-expiry-interval", "60",
            "-D", "publish", "response-topic", "r/t",
            "-D", "publish", "correlation-data", "corr-1234",
            "-D", "publish", "payload-format-indicator", "1",
            "-D", "publish", "topic-alias", "1",
            "-D", "disconnect", "session-expiry-interval", "0",
            "-D", "disconnect", "user-property", "bye", "now",
        )
    )
    sc.wait(s)
    sc.finish()


def scenario_v5_session_takeover(ctx):
    sc = Scenario(
        ctx,
        "v5_session_takeover",
        """MQTT 5.0 session takeover: a subscriber with client id `dup` is connected
        when a publisher connects with the same client id. MQTT 5 allows the
        broker to send the old connection a DISCONNECT with reason code 0x8e
        (session taken over); mosquitto 2.0.11 does not, it just closes the old
        socket, so the first connection below ends without any DISCONNECT.
        mosquitto_sub reconnects by itself (taking the id back once the
        publisher has gone) and exits when -W expires.""",
    )
    s = sc.start(sub("mqttv5", "dup", "-q", "0", "-t", "dup/#", "-W", "4"))
    sc.wait_for("dup", "s2c", "SUBACK")
    sc.run(pub("mqttv5", "dup", "-q", "0", "-t", "dup/x", "-m", "takeover"))
    sc.wait(s, expect=None)
    sc.finish()


def scenario_v5_paho(ctx):
    if ctx.paho_version is None:
        print("paho-mqtt not importable: skipping v5_subscription_options", flush=True)
        return
    sc = Scenario(
        ctx,
        "v5_subscription_options",
        """MQTT 5.0 subscription options, subscription identifier, assigned client
        identifier and a client DISCONNECT with reason code 0x04 (disconnect with
        will message). mosquitto_sub 2.0.11 has --retain-as-published but no
        no-local or retain-handling switch, no subscription identifier and no way
        to choose a DISCONNECT reason code, so this scenario uses the paho-mqtt
        helper paho_helper.py (see its docstring for the exact sequence). A
        mosquitto_sub watches the will topic.""",
    )
    w = sc.start(sub("mqttv5", "so-watch", "-q", "1", "-t", "so/will", "-C", "1", "-W", "12", "-v"))
    sc.wait_for("so-watch", "s2c", "SUBACK")
    sc.run([sys.executable, HELPER, HOST, "$PORT", "subopts"])
    sc.wait(w)
    sc.note("the broker assigns a random client identifier (auto-...) to the empty-id client.")
    sc.finish()


def scenario_refused(ctx, V, proto, suffix):
    sc = Scenario(
        ctx,
        "connect_refused_%s" % suffix,
        """MQTT %s CONNECTs to a refusing broker (allow_anonymous false, a password
        file with user alice / password s3cret, clientid_prefixes ok-,
        allow_zero_length_clientid false):
        1) client id without the ok- prefix;
        2) anonymous (no username);
        3) wrong password;
        4) correct credentials: accepted, then a QoS 0 publish;
        %s
        The CONNACK codes mosquitto actually sent are given in each connection's
        comment. In each refused case the broker closes the connection right
        after the CONNACK."""
        % (
            proto,
            "5) zero-length client id (paho-mqtt helper; mosquitto_pub cannot send one)."
            if V != "mqttv31" and ctx.paho_version
            else "(no zero-length client id case: mosquitto_pub cannot send one and paho-mqtt\n"
            "replaces an empty MQTT 3.1 client id with a random one)",
        ),
        broker=ctx.brokers["auth"],
    )
    sc.run(pub(V, "bad-%s" % suffix, "-u", "alice", "-P", "s3cret", "-t", "x", "-m", "x"), expect=None)
    sc.run(pub(V, "ok-anon-%s" % suffix, "-t", "x", "-m", "x"), expect=None)
    sc.run(pub(V, "ok-badpw-%s" % suffix, "-u", "alice", "-P", "wrong", "-t", "x", "-m", "x"), expect=None)
    sc.run(pub(V, "ok-good-%s" % suffix, "-u", "alice", "-P", "s3cret", "-t", "auth/%s" % suffix, "-m", "welcome"))
    if V != "mqttv31" and ctx.paho_version:
        sc.run([sys.executable, HELPER, HOST, "$PORT", "empty-id", proto])
    sc.note("mosquitto_pub exits non-zero for the refused connections.")
    sc.finish()


def main():
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub"):
        if shutil.which(tool) is None:
            sys.exit("capture.py: %s not found in PATH" % tool)
    workdir = tempfile.mkdtemp(prefix="facteur-capture-")
    ctx = Context(workdir)
    print("broker: %s" % ctx.broker_version, flush=True)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    ok = False
    try:
        ctx.add_broker("main", ["allow_anonymous true"])
        pwfile = os.path.join(workdir, "passwd")
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", pwfile, "alice", "s3cret"],
            check=True, timeout=10, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.chmod(pwfile, 0o600)
        ctx.add_broker(
            "auth",
            [
                "allow_anonymous false",
                "password_file %s" % pwfile,
                "clientid_prefixes ok-",
                "allow_zero_length_clientid false",
            ],
        )
        # Keep the temp path out of the vector files.
        ctx.brokers["auth"].config_lines = [
            "listener <port> %s" % HOST,
            "persistence false",
            "allow_anonymous false",
            "password_file <file with alice:s3cret, made by mosquitto_passwd -b -c>",
            "clientid_prefixes ok-",
            "allow_zero_length_clientid false",
        ]

        for V, proto, suffix in VERSIONS:
            for qos in (0, 1, 2):
                scenario_publish(ctx, V, proto, suffix, qos)
            scenario_retained(ctx, V, proto, suffix)
            scenario_will(ctx, V, proto, suffix)
            scenario_multi(ctx, V, proto, suffix)
            scenario_payload(ctx, V, proto, suffix, 1024, with_sub=True)
            scenario_payload(ctx, V, proto, suffix, 70 * 1024, with_sub=False)
            scenario_refused(ctx, V, proto, suffix)
        scenario_v5_properties(ctx)
        scenario_v5_session_takeover(ctx)
        scenario_v5_paho(ctx)
        ok = True
    finally:
        ctx.cleanup()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print("capture.py: failed; broker logs kept in %s" % workdir, file=sys.stderr)
    total = sum(f[3] for f in ctx.files)
    print("%d files, %d bytes in total" % (len(ctx.files), total))


if __name__ == "__main__":
    main()
