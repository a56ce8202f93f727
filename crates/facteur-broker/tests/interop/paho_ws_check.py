#!/usr/bin/env python3
"""Interop check of a broker's WebSocket listener with paho-mqtt (2.x), MQTT 3.1.1 and 5.0.

usage: paho_ws_check.py PORT [CAFILE]
With CAFILE the WebSocket runs over TLS (wss), the server certificate checked against
CAFILE for the name `localhost`. Exits 0 when every check passes, prints the failing check
and exits 1 otherwise. Every wait is bounded. Only 127.0.0.1 is used.
"""
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

PORT = int(sys.argv[1])
CAFILE = sys.argv[2] if len(sys.argv) > 2 else None
WAIT = 5.0


def wait_for(cond, what):
    deadline = time.time() + WAIT
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise SystemExit(f"FAIL: {what}")


def client(name, protocol):
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=name, protocol=protocol, transport="websockets"
    )
    c.ws_set_options(path="/mqtt")
    if CAFILE:
        c.tls_set(ca_certs=CAFILE, cert_reqs=ssl.CERT_REQUIRED)
    c.received = []
    c.subscribed = threading.Event()
    c.connacks = []
    c.on_message = lambda _c, _u, msg: c.received.append((msg.topic, msg.payload, msg.qos))
    c.on_subscribe = lambda *_args: c.subscribed.set()
    c.on_connect = lambda _c, _u, _f, reason, _p: c.connacks.append(reason)
    # Over TLS the name checked is `localhost`, the test certificate's.
    c.connect("localhost" if CAFILE else "127.0.0.1", PORT, keepalive=30)
    c.loop_start()
    return c


def check(protocol, tag):
    sub = client(f"ws-sub-{tag}", protocol)
    wait_for(lambda: sub.connacks, f"{tag}: CONNACK")
    if sub.connacks[0].is_failure:
        raise SystemExit(f"FAIL: {tag}: refused {sub.connacks}")
    sub.subscribe(f"ws/{tag}/#", qos=2)
    wait_for(sub.subscribed.is_set, f"{tag}: SUBACK")
    pub = client(f"ws-pub-{tag}", protocol)
    # A payload larger than one read, so a packet spans several WebSocket reads.
    big = bytes(range(256)) * 300
    for qos in (0, 1, 2):
        pub.publish(f"ws/{tag}/q{qos}", f"qos{qos}".encode(), qos=qos).wait_for_publish(WAIT)
    pub.publish(f"ws/{tag}/big", big, qos=1).wait_for_publish(WAIT)
    wait_for(lambda: len(sub.received) >= 4, f"{tag}: four messages")
    got = sorted(sub.received)
    want = sorted([(f"ws/{tag}/q{q}", f"qos{q}".encode(), q) for q in (0, 1, 2)] + [(f"ws/{tag}/big", big, 1)])
    if got != want:
        raise SystemExit(f"FAIL: {tag}: got {[(t, len(p), q) for t, p, q in got]}")
    for c in (sub, pub):
        c.disconnect()
        c.loop_stop()
    print(f"ok {tag}{' wss' if CAFILE else ' ws'}")


check(mqtt.MQTTv311, "v311")
check(mqtt.MQTTv5, "v5")
