#!/usr/bin/env python3
"""paho-mqtt (2.x) helper for capture.py: the few things that
mosquitto_pub / mosquitto_sub 2.0.11 cannot produce.

Usage (capture.py runs it against its recording proxy):
  python3 paho_helper.py HOST PORT subopts
  python3 paho_helper.py HOST PORT empty-id 3.1.1|5.0

`empty-id`: one CONNECT with a zero-length client identifier (clean session /
clean start), to be refused by a broker with `allow_zero_length_clientid false`;
exits 0 unless the connect was accepted.

`subopts` sequence:
  client `so-sub` (MQTT 5.0, will on so/will at QoS 1):
    1. publishes retained QoS 1 messages to so/rh1/x and so/rh2/x;
    2. SUBSCRIBE (subscription identifier 7, user property sub=opts) with
         so/nl    QoS 1 no local
         so/rap   QoS 1 retain as published
         so/rh1/# QoS 2 retain handling 1 (send retained only if new)
         so/rh2/# QoS 0 retain handling 2 (never send retained)
       -> receives the retained so/rh1/x only;
    3. SUBSCRIBE again to so/rh1/# with retain handling 1 (subscription
       identifier 8) -> no retained message this time;
    4. publishes QoS 1 to so/nl (not echoed back: no local) and a retained
       QoS 1 message to so/rap (echoed back with the retain flag kept);
    5. UNSUBSCRIBE so/nl and so/rh2/# (user property unsub=yes);
    6. DISCONNECT with reason code 0x04 (disconnect with will message) and a
       user property -> the broker publishes the will.
  client with an empty client id (MQTT 5.0, clean start): the broker's CONNACK
  carries an assigned client identifier; it clears the three retained
  messages (zero-length retained QoS 1 publishes) and disconnects normally.

Every wait is bounded; the exit status is non-zero on any failure.
"""

import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

TIMEOUT = 5.0


class Waiter:
    def __init__(self):
        self.cond = threading.Condition()
        self.events = []
        self.messages = []

    def push(self, kind, value=None):
        with self.cond:
            self.events.append((kind, value))
            self.cond.notify_all()

    def wait(self, kind, n=1):
        deadline = time.monotonic() + TIMEOUT
        with self.cond:
            while sum(1 for k, _ in self.events if k == kind) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit("paho_helper.py: timed out waiting for %s" % kind)
                self.cond.wait(left)
            return [v for k, v in self.events if k == kind][n - 1]


def make_client(client_id, w, protocol=mqtt.MQTTv5):
    kw = {} if protocol == mqtt.MQTTv5 else {"clean_session": True}
    c = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        reconnect_on_failure=False,
        **kw,
    )
    c.on_connect = lambda cl, ud, flags, rc, props: w.push("connack", (rc, props))
    c.on_subscribe = lambda cl, ud, mid, rcs, props: w.push("suback", rcs)
    c.on_unsubscribe = lambda cl, ud, mid, rcs, props: w.push("unsuback", rcs)
    c.on_message = lambda cl, ud, msg: w.push("message", (msg.topic, msg.payload, msg.retain))
    c.on_disconnect = lambda cl, ud, flags, rc, props: w.push("disconnect", rc)
    return c


def props(packet_type, **kw):
    p = Properties(packet_type)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def empty_id(host, port, version):
    protocol = {"3.1.1": mqtt.MQTTv311, "5.0": mqtt.MQTTv5}[version]
    w = Waiter()
    c = make_client("", w, protocol)
    if protocol == mqtt.MQTTv5:
        c.connect(host, port, keepalive=60, clean_start=True)
    else:
        c.connect(host, port, keepalive=60)
    c.loop_start()
    try:
        # paho does not always report a refused MQTT 3.1.1 CONNACK through
        # on_connect (the broker closes the socket right after it), so wait for
        # the disconnect and only check that no successful CONNACK came first.
        w.wait("disconnect")
    finally:
        c.loop_stop()
    with w.cond:
        connacks = [v for k, v in w.events if k == "connack"]
    for rc, _ in connacks:
        value = rc.value if hasattr(rc, "value") else int(rc)
        print("CONNACK code %#04x (%s)" % (value, rc))
        if value == 0:
            raise SystemExit("paho_helper.py: empty client id was accepted")


def subopts(host, port):
    w = Waiter()
    c = make_client("so-sub", w)
    c.will_set("so/will", b"gone", qos=1, retain=False)
    c.connect(host, port, keepalive=60, clean_start=True)
    c.loop_start()
    try:
        rc, _ = w.wait("connack")
        if rc != 0:
            raise SystemExit("paho_helper.py: connect refused: %s" % rc)
        for t, m in (("so/rh1/x", b"r1"), ("so/rh2/x", b"r2")):
            c.publish(t, m, qos=1, retain=True).wait_for_publish(TIMEOUT)
        c.subscribe(
            [
                ("so/nl", SubscribeOptions(qos=1, noLocal=True)),
                ("so/rap", SubscribeOptions(qos=1, retainAsPublished=True)),
                ("so/rh1/#", SubscribeOptions(qos=2, retainHandling=1)),
                ("so/rh2/#", SubscribeOptions(qos=0, retainHandling=2)),
            ],
            properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7, UserProperty=[("sub", "opts")]),
        )
        w.wait("suback")
        topic, _, retain = w.wait("message")
        assert topic == "so/rh1/x" and retain, (topic, retain)
        c.subscribe(
            [("so/rh1/#", SubscribeOptions(qos=2, retainHandling=1))],
            properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=8),
        )
        w.wait("suback", 2)
        c.publish("so/nl", b"not for me", qos=1).wait_for_publish(TIMEOUT)
        c.publish("so/rap", b"kept", qos=1, retain=True).wait_for_publish(TIMEOUT)
        topic, _, retain = w.wait("message", 2)
        assert topic == "so/rap" and retain, (topic, retain)
        c.unsubscribe(["so/nl", "so/rh2/#"], properties=props(PacketTypes.UNSUBSCRIBE, UserProperty=[("unsub", "yes")]))
        w.wait("unsuback")
        c.disconnect(
            reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4),
            properties=props(PacketTypes.DISCONNECT, UserProperty=[("why", "test")]),
        )
        w.wait("disconnect")
    finally:
        c.loop_stop()

    w2 = Waiter()
    c2 = make_client("", w2)
    c2.connect(host, port, keepalive=60, clean_start=True)
    c2.loop_start()
    try:
        rc, p = w2.wait("connack")
        if rc != 0:
            raise SystemExit("paho_helper.py: connect refused: %s" % rc)
        print("assigned client id: %s" % getattr(p, "AssignedClientIdentifier", None))
        for t in ("so/rh1/x", "so/rh2/x", "so/rap"):
            c2.publish(t, b"", qos=1, retain=True).wait_for_publish(TIMEOUT)
        c2.disconnect()
        w2.wait("disconnect")
    finally:
        c2.loop_stop()


def main():
    host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "subopts":
        subopts(host, port)
    elif mode == "empty-id":
        empty_id(host, port, sys.argv[4])
    else:
        raise SystemExit("paho_helper.py: unknown mode %r" % mode)


if __name__ == "__main__":
    main()
