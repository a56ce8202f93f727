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
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

PORT = int(sys.argv[1])
WAIT = 5.0


def client(name, protocol, will=None, persistent=False):
    """Connects `name`; `persistent` keeps its session after it goes: clean session 0 in
    3.1.1, clean start 0 and a Session Expiry Interval of 300 s in 5.0."""
    clean_session = None
    if protocol != mqtt.MQTTv5:
        clean_session = not persistent
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=name, protocol=protocol, clean_session=clean_session
    )
    c.received = []
    c.got = threading.Event()
    c.subscribed = threading.Event()
    c.connacks = []
    c.gone = threading.Event()

    def on_message(_c, _u, msg):
        c.received.append((msg.topic, msg.payload, msg.qos, msg.retain))
        c.got.set()

    c.on_message = on_message
    c.on_subscribe = lambda *_args: c.subscribed.set()
    c.on_connect = lambda _c, _u, flags, reason, _p: c.connacks.append((flags.session_present, reason))
    c.on_disconnect = lambda *_args: c.gone.set()
    if will:
        c.will_set(*will)
    if protocol == mqtt.MQTTv5:
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 300
        c.connect("127.0.0.1", PORT, keepalive=30, clean_start=not persistent, properties=props)
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


def close(*clients):
    for c in clients:
        c.disconnect()
        wait_for(c.gone.is_set, f"{c._client_id!r}: disconnected")
        c.loop_stop()


def persistent_session(protocol, tag):
    """A persistent session keeps its subscription while offline; a QoS 1 message published
    meanwhile arrives on reconnection, with session present set."""
    name = f"paho-keeper-{tag}"
    topic = f"paho/{tag}/offline"
    keeper = client(name, protocol, persistent=True)
    wait_for(lambda: keeper.connacks, f"{tag}: persistent CONNACK")
    keeper.subscribe(topic, qos=1)
    wait_for(keeper.subscribed.is_set, f"{tag}: persistent SUBACK")
    close(keeper)

    pub = client(f"paho-offline-pub-{tag}", protocol)
    pub.publish(topic, b"while-away", qos=1).wait_for_publish(WAIT)

    back = client(name, protocol, persistent=True)  # no SUBSCRIBE: the session has it
    wait_for(lambda: back.connacks, f"{tag}: CONNACK on return")
    if not back.connacks[0][0]:
        raise SystemExit(f"FAIL: {tag}: session present not set on return: {back.connacks}")
    wait_for(lambda: back.received, f"{tag}: offline QoS 1 message delivered on reconnect")
    if back.received[0] != (topic, b"while-away", 1, False):
        raise SystemExit(f"FAIL: {tag}: offline message got {back.received}")
    close(back, pub)

    # A clean connection ends the session: nothing is present the next time.
    clean = client(name, protocol)
    wait_for(lambda: clean.connacks, f"{tag}: clean CONNACK")
    close(clean)
    again = client(name, protocol, persistent=True)
    wait_for(lambda: again.connacks, f"{tag}: CONNACK after clean")
    if again.connacks[0][0]:
        raise SystemExit(f"FAIL: {tag}: session present after a clean connection")
    close(again)
    clean = client(name, protocol)
    wait_for(lambda: clean.connacks, f"{tag}: clean CONNACK")
    close(clean)
    print(f"ok {tag} persistent session")


def wildcards(protocol, tag):
    """`+` matches one level, `#` any number, and neither matches `$SYS/...` topics."""
    base = f"paho/{tag}/w"
    plus = client(f"paho-plus-{tag}", protocol)
    plus.subscribe(f"{base}/+/temp", qos=1)
    multi = client(f"paho-multi-{tag}", protocol)
    multi.subscribe(f"{base}/#", qos=1)
    everything = client(f"paho-hash-{tag}", protocol)
    everything.subscribe("#", qos=1)
    sys_topics = client(f"paho-sys-{tag}", protocol)
    sys_topics.subscribe("$SYS/broker/uptime", qos=0)
    for c in (plus, multi, everything, sys_topics):
        wait_for(c.subscribed.is_set, f"{tag}: wildcard SUBACK")
    # $SYS exists (retained since the broker's first tick), but only explicitly asked for.
    wait_for(lambda: sys_topics.received, f"{tag}: $SYS/broker/uptime")

    pub = client(f"paho-wild-pub-{tag}", protocol)
    topics = [f"{base}/salon/temp", f"{base}/salon/hum", f"{base}/a/b/temp", base, f"{base}/end/temp"]
    for t in topics:
        pub.publish(t, b"w", qos=1).wait_for_publish(WAIT)
    last = topics[-1]
    for c in (plus, multi, everything):
        wait_for(lambda c=c: any(t == last for t, *_ in c.received), f"{tag}: wildcard delivery")
    got = [t for t, *_ in plus.received]
    if got != [f"{base}/salon/temp", last]:
        raise SystemExit(f"FAIL: {tag}: {base}/+/temp got {got}")
    got = [t for t, *_ in multi.received]
    if got != topics:  # `a/#` matches `a` itself too
        raise SystemExit(f"FAIL: {tag}: {base}/# got {got}")
    got = [t for t, *_ in everything.received]
    if any(t.startswith("$") for t in got) or any(t not in got for t in topics):
        raise SystemExit(f"FAIL: {tag}: # got {got}")
    close(plus, multi, everything, sys_topics, pub)
    print(f"ok {tag} wildcards")


check(mqtt.MQTTv311, "v311")
check(mqtt.MQTTv5, "v5")
persistent_session(mqtt.MQTTv311, "v311")
persistent_session(mqtt.MQTTv5, "v5")
wildcards(mqtt.MQTTv311, "v311")
wildcards(mqtt.MQTTv5, "v5")
