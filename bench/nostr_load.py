#!/usr/bin/env python3
"""Load client for a nostr relay: N signed kind-1 events (NIP-01, BIP-340 Schnorr over
secp256k1) from 100 keys, each with one `t` tag and a 200-300 letter body, published over one
WebSocket with a window of events in flight, waiting for every OK; then REQ by tag.

Events are signed before the clock starts (clients sign on their own machines). Prints one
JSON line for bench/suite.py.

Usage: nostr_load.py URL [N=10000] [WINDOW=500] [TOPICS=16]
"""
import asyncio
import hashlib
import json
import random
import sys
import time

import coincurve
import websockets

AUTHORS = 100
QUERIES = 20


def make_events(n, topics):
    rng = random.Random(42)
    keys = [coincurve.PrivateKey(hashlib.sha256(bytes([i + 1]) * 32).digest()) for i in range(AUTHORS)]
    pubs = [k.public_key_xonly.format().hex() for k in keys]
    now = int(time.time())
    events = []
    for i in range(n):
        body = "".join(chr(ord("a") + rng.randrange(26)) for _ in range(rng.randrange(200, 300)))
        k = i % AUTHORS
        created = now - (n - i) // 1000
        tags = [["t", f"t{i % topics}"]]
        ser = json.dumps([0, pubs[k], created, 1, tags, body], separators=(",", ":"), ensure_ascii=False)
        eid = hashlib.sha256(ser.encode()).digest()
        sig = keys[k].sign_schnorr(eid)
        events.append({"id": eid.hex(), "pubkey": pubs[k], "created_at": created, "kind": 1,
                       "tags": tags, "content": body, "sig": sig.hex()})
    return events


async def publish(url, events, window):
    sem = asyncio.Semaphore(window)
    pending = {}
    async with websockets.connect(url, max_size=None) as ws:
        async def reader():
            got = 0
            while got < len(events):
                msg = json.loads(await ws.recv())
                if msg[0] == "OK":
                    if not msg[2]:
                        raise SystemExit(f"relay refused an event: {msg}")
                    fut = pending.pop(msg[1], None)
                    if fut is not None:
                        got += 1
                        sem.release()
                elif msg[0] == "NOTICE":
                    print(f"notice: {msg}", file=sys.stderr)
        t = time.perf_counter()
        r = asyncio.create_task(reader())
        for ev in events:
            await sem.acquire()
            pending[ev["id"]] = True
            await ws.send(json.dumps(["EVENT", ev], separators=(",", ":")))
        await r
        return time.perf_counter() - t


async def query(url, topic, limit):
    async with websockets.connect(url, max_size=None) as ws:
        t = time.perf_counter()
        await ws.send(json.dumps(["REQ", "q", {"#t": [topic], "limit": limit}]))
        n = 0
        while True:
            msg = json.loads(await ws.recv())
            if msg[0] == "EVENT":
                n += 1
            elif msg[0] == "EOSE":
                return time.perf_counter() - t, n


async def main():
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    topics = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    events = make_events(n, topics)
    size = sum(len(json.dumps(e, separators=(",", ":"))) for e in events)
    secs = await publish(url, events, window)
    limit = min(1000, -(-n // topics))
    times, got = [], 0
    for q in range(QUERIES):
        d, got = await query(url, f"t{q % topics}", limit)
        times.append(d)
    times.sort()
    print(json.dumps({"posts": n, "window": window, "encoded_bytes": size, "seconds": secs,
                      "posts_per_s": n / secs, "query_results": got,
                      "query_p50_ms": times[QUERIES // 2] * 1e3, "query_max_ms": times[-1] * 1e3}))


asyncio.run(main())
