#!/usr/bin/env python3
"""Writes the committed seed corpus of the `broker_stream` fuzz target.

Run from anywhere: python3 fuzz/make_broker_seeds.py. Each seed (`seed-*`: the rest of the
corpus directory is what fuzzing found, not committed) is a head byte (streams - 1
in bits 0-1, how bytes are written in bits 2-3, keep open in bit 4, small pipe in bit 5),
then every stream but the last as a little-endian u16 length and its bytes, then the last
stream (see fuzz_targets/broker_stream.rs).
"""
import pathlib
import struct

OUT = pathlib.Path(__file__).resolve().parent / "corpus" / "broker_stream"


def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(text):
    return struct.pack(">H", len(text)) + text.encode()


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def props(*items):
    body = b"".join(items)
    return varint(len(body)) + body


def connect(v5, client_id, clean=True, keep_alive=60, expiry=None):
    flags = 0x02 if clean else 0x00
    head = s("MQTT") + bytes([5 if v5 else 4, flags]) + struct.pack(">H", keep_alive)
    if v5:
        head += props(b"\x11" + struct.pack(">I", expiry)) if expiry is not None else props()
    return packet(0x10, head + s(client_id))


def subscribe(v5, packet_id, topic_filter, qos):
    body = struct.pack(">H", packet_id) + (props() if v5 else b"") + s(topic_filter)
    return packet(0x82, body + bytes([qos]))


def publish(v5, topic, payload, qos=0, packet_id=None, expiry=None):
    body = s(topic) + (struct.pack(">H", packet_id) if qos else b"")
    if v5:
        body += props(b"\x02" + struct.pack(">I", expiry)) if expiry is not None else props()
    return packet(0x30 | qos << 1, body + payload)


def ack(kind, packet_id):
    return packet(kind, struct.pack(">H", packet_id))


PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"


def seed(streams, piece=0, hold=False, small_pipe=False):
    head = (len(streams) - 1) | piece << 2 | (0x10 if hold else 0) | (0x20 if small_pipe else 0)
    out = bytes([head])
    for stream in streams[:-1]:
        out += struct.pack("<H", len(stream)) + stream
    return out + streams[-1]


def session(v5, client_id, **kw):
    """Connects, subscribes to a/#, publishes at QoS 0, 1 and 2 (completing each flow)."""
    return b"".join([
        connect(v5, client_id, **kw),
        subscribe(v5, 1, "a/#", 2),
        publish(v5, "a/b", b"zero"),
        publish(v5, "a/b", b"one", 1, 2),
        publish(v5, "a/c", b"two", 2, 3, expiry=30 if v5 else None),
        ack(0x62, 3),
        PINGREQ,
    ])


SEEDS = {
    "v311-one-client": seed([session(False, "a") + DISCONNECT]),
    "v5-one-client": seed([session(True, "b", expiry=300) + DISCONNECT]),
    "v311-pieces-of-one": seed([session(False, "c") + DISCONNECT], piece=1),
    "v5-sub-v311-pub": seed([
        connect(True, "sub", clean=False, expiry=300) + subscribe(True, 1, "t/+", 1) + PINGREQ,
        connect(False, "pub") + publish(False, "t/x", b"hello", 1, 7) + DISCONNECT,
    ], piece=2),
    "takeover": seed([
        connect(True, "same", clean=False, expiry=60) + subscribe(True, 1, "#", 2),
        connect(True, "same", clean=False, expiry=60) + PINGREQ + DISCONNECT,
        connect(False, "other") + publish(False, "x", b"y", 2, 1) + ack(0x62, 1),
    ], piece=3),
    "kept-open-small-pipe": seed([
        connect(True, "k", keep_alive=2) + subscribe(True, 5, "#", 1),
        connect(False, "l", keep_alive=0) + publish(False, "m", b"n" * 200, 1, 9),
    ], hold=True, small_pipe=True),
    "four-clients-one-refused": seed([
        session(False, "w1"),
        session(True, "w2"),
        session(False, "w3"),
        session(True, "w4") + DISCONNECT,
    ]),
}

OUT.mkdir(parents=True, exist_ok=True)
for name, data in SEEDS.items():
    (OUT / f"seed-{name}").write_bytes(data)
print(f"{len(SEEDS)} seeds written to {OUT}")
