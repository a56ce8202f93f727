#!/usr/bin/env python3
"""Interop check of a broker with paho-mqtt (2.x), MQTT 3.1.1 and 5.0.

usage: paho_check.py PORT
Exits 0 when every check passes, prints the failing check and exits 1 otherwise.
Every wait is bounded. Only 127.0.0.1 is used.
"""
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

PORT = int(sys.argv[1])
WAIT = 5.0


def client(name, protocol, will=None):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=protocol)
    c.received = []
    c.got = threading.Event()
    c.subscribed = threading.Event()

    def on_message(_c, _u, msg):
        c.received.append((msg.topic, msg.payload, msg.qos, msg.retain))
        c.got.set()

    c.on_message = on_message
    c.on_subscribe = lambda *_args: c.subscribed.set()
    if will:
        c.will_set(*will)
    if protocol == mqtt.MQTTv5:
        c.connect("127.0.0.1", PORT, keepalive=30, clean_start=True)
    else:
        c.connect("127.0.0.1", PORT, keepalive=30)
    c.loop_start()
    return c


def wait_for(cond, what):
    deadline = time.time() + WAIT
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise SystemExit(f"FAIL: {what}")


def check(protocol, tag):
    sub = client(f"paho-sub-{tag}", protocol)
    sub.subscribe(f"paho/{tag}/#", qos=2)
    wait_for(sub.subscribed.is_set, f"{tag}: SUBACK")
    pub = client(f"paho-pub-{tag}", protocol)
    for qos in (0, 1, 2):
        info = pub.publish(f"paho/{tag}/q{qos}", f"qos{qos}".encode(), qos=qos)
        info.wait_for_publish(WAIT)
    wait_for(lambda: len(sub.received) >= 3, f"{tag}: three messages at QoS 0/1/2")
    got = sorted((t, p, q) for t, p, q, _r in sub.received)
    want = [(f"paho/{tag}/q{q}", f"qos{q}".encode(), q) for q in (0, 1, 2)]
    if got != want:
        raise SystemExit(f"FAIL: {tag}: got {got}, want {want}")

    # Retained: a later subscriber gets it with the retain flag.
    pub.publish(f"paho/{tag}/retained", b"kept", qos=1, retain=True).wait_for_publish(WAIT)
    late = client(f"paho-late-{tag}", protocol)
    late.subscribe(f"paho/{tag}/retained", qos=1)
    wait_for(lambda: late.received, f"{tag}: retained message on subscribe")
    if late.received[0][1:] != (b"kept", 1, True):
        raise SystemExit(f"FAIL: {tag}: retained got {late.received[0]}")

    # Will: a client that vanishes without DISCONNECT.
    doomed = client(f"paho-doomed-{tag}", protocol, will=(f"paho/{tag}/will", b"gone", 1))
    wait_for(doomed.is_connected, f"{tag}: will client connected")
    doomed.loop_stop()
    doomed.socket().close()
    wait_for(lambda: any(t == f"paho/{tag}/will" for t, *_ in sub.received), f"{tag}: will")

    for c in (sub, pub, late):
        c.disconnect()
        c.loop_stop()
    print(f"ok {tag}")


check(mqtt.MQTTv311, "v311")
check(mqtt.MQTTv5, "v5")
