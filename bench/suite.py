#!/usr/bin/env python3
"""Lakitu's benchmark suite: runs every benchmark and writes docs/performance.md.

Run through bench/run.sh (which builds first). Sizes come from the environment:
BENCH_QUICK=1 for a small run (minutes) that checks the machinery; BENCH_INGEST_N,
BENCH_STORE_N, BENCH_MEMBERS, BENCH_SIM_NODES, BENCH_SIM_LAKITU_MAX, BENCH_CLUSTER_POSTS,
BENCH_RECONCILE_SEEDS, BENCH_BRIDGE_MINUTES, BENCH_BRIDGE_POSTS, BENCH_CATCHUP_N,
BENCH_CATCHUP_XMPP_LIMITED, BENCH_CATCHUP_XMPP_OPEN override single sizes.
BENCH_SKIP=a,b skips sections (ingest, reconcile, sim, cluster, catchup, catchup_xmpp, bridge, store,
membership). Heavy
work runs under `nice`.
"""
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
REL = os.path.join(TARGET, "release")
QUICK = os.environ.get("BENCH_QUICK") == "1"
SKIP = set(filter(None, os.environ.get("BENCH_SKIP", "").split(",")))


def size(name, quick, full):
    return int(os.environ.get(name, quick if QUICK else full))


INGEST_N = size("BENCH_INGEST_N", 2000, 10000)
STORE_N = size("BENCH_STORE_N", 20000, 1000000)
MEMBERS = size("BENCH_MEMBERS", 5000, 50000)
SIM_NODES = os.environ.get("BENCH_SIM_NODES", "100,1000" if QUICK else "1000,10000")
SIM_LAKITU_MAX = size("BENCH_SIM_LAKITU_MAX", 100, 1000)
CLUSTER_POSTS = size("BENCH_CLUSTER_POSTS", 5, 30)
RECONCILE_SEEDS = size("BENCH_RECONCILE_SEEDS", 1, 3)
BRIDGE_MINUTES = size("BENCH_BRIDGE_MINUTES", 1, 5)
BRIDGE_POSTS = size("BENCH_BRIDGE_POSTS", 4, 20)
CATCHUP_N = os.environ.get("BENCH_CATCHUP_N", "5000" if QUICK else "20000,100000")
CATCHUP_XMPP_LIMITED = os.environ.get("BENCH_CATCHUP_XMPP_LIMITED", "300" if QUICK else "2000")
CATCHUP_XMPP_OPEN = os.environ.get("BENCH_CATCHUP_XMPP_OPEN",
                                   "2000" if QUICK else "20000,100000")
TOPICS = 16
NICE = ["nice", "-n", "10"]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log(" ".join(cmd))
    t = time.time()
    out = subprocess.run(NICE + cmd, check=True, capture_output=True, text=True, **kw)
    log(f"  done in {time.time() - t:.0f} s")
    return out.stdout


def machine():
    cpu = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) / 1024 / 1024
    load = open("/proc/loadavg").read().split()[:3]
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": mem, "load": " ".join(load),
            "kernel": platform.release()}


def proc_kib(pid, field):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


def wait_port_file(path, proc, secs=30):
    end = time.time() + secs
    while time.time() < end:
        if os.path.exists(path) and open(path).read().strip():
            return
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        time.sleep(0.1)
    raise SystemExit(f"server did not start ({path})")


# ---------------------------------------------------------------- ingest vs nostr-rs-relay

def ingest_lakitu(work, batch=500, in_flight=2, tag="lakitu"):
    d = os.path.join(work, tag)
    os.makedirs(d)
    os.chmod(d, 0o700)
    with open(os.path.join(d, "config.toml"), "w") as f:
        f.write(f'[node]\ndata_dir = "{d}"\n\n[api]\nlisten = "127.0.0.1:0"\n\n'
                '[quic]\nlisten = "127.0.0.1:0"\n')
    lakitu = os.path.join(REL, "lakitu")
    subprocess.run([lakitu, "--dir", d, "init"], check=True, capture_output=True)
    env = dict(os.environ, LAKITU_LOG="warn")
    logf = open(os.path.join(work, "lakitu.log"), "w")
    proc = subprocess.Popen(NICE + [lakitu, "--dir", d, "run"], env=env, stdout=logf, stderr=logf)
    try:
        wait_port_file(os.path.join(d, "api.addr"), proc)
        time.sleep(0.5)
        idle = proc_kib(proc.pid, "VmRSS")
        out = run([os.path.join(REL, "examples", "node_ingest_bench"), d, str(INGEST_N), str(batch),
                   str(in_flight), str(TOPICS)])
        res = json.loads(out.strip().splitlines()[-1])
        res["rss_idle_kib"] = idle
        res["rss_peak_kib"] = proc_kib(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    res["disk_bytes"] = du(os.path.join(d, "store"))
    return res


def ingest_nostr(work):
    try:
        bin_path = subprocess.run([os.path.join(ROOT, "bench", "nostr-relay.sh")], check=True,
                                  capture_output=True, text=True).stdout.strip().splitlines()[-1]
    except subprocess.CalledProcessError as e:
        return {"error": f"nostr-rs-relay build failed: {e.stderr[-500:]}"}
    try:
        import coincurve  # noqa: F401
        import websockets  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "websockets", "coincurve"],
                       check=True)
    d = os.path.join(work, "nostr")
    os.makedirs(os.path.join(d, "db"))
    port = 17777
    with open(os.path.join(d, "config.toml"), "w") as f:
        f.write(f'[info]\nrelay_url = "ws://127.0.0.1:{port}/"\nname = "bench"\n\n'
                f'[database]\nengine = "sqlite"\ndata_directory = "{d}/db"\n\n'
                f'[network]\naddress = "127.0.0.1"\nport = {port}\n\n'
                '[verified_users]\nmode = "disabled"\n')
    logf = open(os.path.join(work, "nostr.log"), "w")
    proc = subprocess.Popen(NICE + [bin_path, "--config", os.path.join(d, "config.toml"), "--db",
                                    os.path.join(d, "db")], stdout=logf, stderr=logf)
    try:
        import socket
        end = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > end or proc.poll() is not None:
                    return {"error": "nostr-rs-relay did not start"}
                time.sleep(0.2)
        time.sleep(0.5)
        idle = proc_kib(proc.pid, "VmRSS")
        out = run([sys.executable, os.path.join(ROOT, "bench", "nostr_load.py"),
                   f"ws://127.0.0.1:{port}", str(INGEST_N), "500", str(TOPICS)])
        res = json.loads(out.strip().splitlines()[-1])
        res["rss_idle_kib"] = idle
        res["rss_peak_kib"] = proc_kib(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    res["disk_bytes"] = du(os.path.join(d, "db"))
    return res


def section_ingest(work):
    lk = ingest_lakitu(work)
    # Before the batch endpoint: one post per request (each its own flush), 32 in flight.
    one = ingest_lakitu(work, batch=1, in_flight=32, tag="lakitu-one")
    nr = ingest_nostr(work)
    out = [f"## Ingest: Lakitu vs nostr-rs-relay 0.8.12\n",
           f"{INGEST_N:,} posts signed by 100 keys before the clock starts, one tag of {TOPICS} "
           "and a 200–300 letter body each, the same text for both. Lakitu: the release daemon, "
           "posts in batches of 500 through `POST /v1/posts/batch`, 2 requests in flight, each "
           "acknowledged after the flush that made it durable (`examples/node_ingest_bench.rs`). "
           "nostr-rs-relay: NIP-01 kind-1 events (BIP-340 signatures) over one WebSocket, 500 in "
           "flight, each `OK` awaited (`bench/nostr_load.py`, Python websockets + coincurve), "
           "SQLite engine, defaults otherwise. Query: newest "
           f"{min(1000, -(-INGEST_N // TOPICS))} posts with one tag (all of them), p50 of 20. "
           "Peak RSS is the server's VmHWM; disk is the data directory after the run. Both "
           "servers ran one after the other on this machine, under `nice`.\n"]
    if "error" in nr:
        out.append(f"nostr-rs-relay not measured: {nr['error']}\n")
    rows = [("posts/s acknowledged", "posts_per_s", "{:,.0f}", True),
            ("query by tag, p50 ms", "query_p50_ms", "{:.1f}", False),
            ("query by tag, worst of 20, ms", "query_max_ms", "{:.1f}", False),
            ("posts returned by the query", "query_results", "{}", None),
            ("peak RSS, MiB", "rss_peak_kib", None, False),
            ("idle RSS before the load, MiB", "rss_idle_kib", None, False),
            ("bytes on disk", "disk_bytes", "{:,}", False),
            ("bytes on disk per post", None, None, False),
            ("bytes sent per post (encoding)", "encoded_bytes", None, False)]
    out.append("| measure | Lakitu | nostr-rs-relay | Lakitu / nostr-rs-relay |")
    out.append("|---|---|---|---|")
    fig = {}
    for label, key, fmt, _ in rows:
        def val(r):
            if "error" in r:
                return None
            if key is None:
                return r["disk_bytes"] / r["posts"]
            if key == "encoded_bytes":
                return r[key] / r["posts"]
            if key.endswith("_kib"):
                return r[key] / 1024
            return r[key]
        a, b = val(lk), val(nr)
        f = fmt or "{:.1f}"
        ratio = f"{a / b:.2f}×" if a is not None and b else "–"
        out.append(f"| {label} | {f.format(a)} | {'–' if b is None else f.format(b)} | {ratio} |")
        fig[label] = (a, b)
    a, b = fig["posts/s acknowledged"]
    if b:
        r = a / b
        verdict = ("met" if r >= 20 else
                   f"not met: {r:.1f}× ({20 / r:.1f}× short); see *Where the time goes*")
        out.append(f"\n**Target Lakitu ≥ 20× nostr-rs-relay on ingest, durable: {verdict}.**\n")
    out.append("Before/after the batch endpoint (same daemon, same posts): one post per request, "
               f"32 requests in flight: {one['posts_per_s']:,.0f} posts/s "
               f"({one['posts_per_s'] / b:.1f}× nostr-rs-relay); batches of 500: "
               f"{a:,.0f} posts/s ({a / one['posts_per_s']:.1f}× faster).\n" if b else "")
    return "\n".join(out) + "\n", {"lakitu": lk, "lakitu_one_per_request": one, "nostr": nr}


# ---------------------------------------------------------------- the other sections

def section_reconcile():
    def lines(out):
        rows = {}
        for line in out.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                rows[(r["frame"], r["layout"], r["d"])] = r
        return rows
    lk = lines(run([os.path.join(REL, "examples", "reconcile_bench"),
                    f"seeds={RECONCILE_SEEDS}", "json"]))
    try:
        neg_bin = subprocess.run([os.path.join(ROOT, "bench", "negentropy.sh")], check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
        ng = lines(run([neg_bin, f"seeds={RECONCILE_SEEDS}"]))
    except (subprocess.CalledProcessError, OSError) as e:
        ng = {}
        log(f"negentropy driver failed: {e}")
    out = ["## Reconciliation: Lakitu vs negentropy 0.5.3\n",
           "Two sets of 100,000 items (timestamp, 32-byte id), d differences, half on each "
           "side, spread across history or among the newest; the same sets (same generator and "
           "seeds) for `examples/reconcile_bench.rs` (Lakitu's `engine::reconcile`) and "
           "`bench/negentropy` (the negentropy crate, ids under second timestamps as nostr "
           f"uses them); mean of {RECONCILE_SEEDS} seed(s). Bytes: every message both ways. "
           "Round trips: until the initiator knows the whole difference.\n",
           "| frames | layout | d | Lakitu bytes | negentropy bytes | bytes ratio | Lakitu B/diff "
           "| Lakitu RTs | negentropy RTs | target met |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    misses = []
    for key in sorted(lk, key=lambda k: (k[0] != "unlimited", k[1], k[2])):
        a, b = lk[key], ng.get(key)
        frame, layout, d = key
        per = f"{a['bytes'] / d:.0f}" if d else "–"
        if b:
            ok = a["bytes"] <= b["bytes"] and a["round_trips"] <= b["round_trips"]
            if layout == "Spread" and d:
                ok = ok and a["bytes"] / d <= 200
            if not ok:
                misses.append(f"{frame} {layout} d={d}")
            out.append(f"| {frame} | {layout} | {d} | {a['bytes']:,.0f} | {b['bytes']:,.0f} | "
                       f"{a['bytes'] / b['bytes']:.2f} | {per} | {a['round_trips']:.1f} | "
                       f"{b['round_trips']:.1f} | {'yes' if ok else 'no'} |")
        else:
            out.append(f"| {frame} | {layout} | {d} | {a['bytes']:,.0f} | – | – | {per} | "
                       f"{a['round_trips']:.1f} | – | – |")
    verdict = ("met in every case" if not misses else "not met in: " + ", ".join(misses))
    out.append(f"\n**Target no more bytes and no more round trips than negentropy, and ≤ 200 "
               f"B per spread difference: {verdict}.**\n")
    return "\n".join(out) + "\n"


def section_sim():
    nodes = SIM_NODES
    faults = "100" if QUICK else "1000"
    out = run([os.path.join(REL, "examples", "sim"), "--nodes", nodes, "--seed", "1",
               "--lakitu-max", str(SIM_LAKITU_MAX), "--faults", faults, "--lakitu-faults",
               str(min(SIM_LAKITU_MAX, int(faults)))])
    return ("## Dissemination (simulator)\n\n"
            f"`examples/sim.rs --nodes {nodes} --lakitu-max {SIM_LAKITU_MAX}`: Lakitu (the real "
            "engine per node) vs flooding vs push gossip to ⌈ln n⌉ + anti-entropy; methods in "
            "*Notes* below.\n\n" + out.strip() + "\n")


def section_cluster():
    out = run([os.path.join(REL, "examples", "cluster_bench"), str(CLUSTER_POSTS)])
    return ("## Dissemination over real QUIC (separate processes)\n\n"
            f"`examples/cluster_bench.rs {CLUSTER_POSTS}`: 10 and 50 `lakitu` daemons on "
            "loopback, full mesh of seeds; each post published through one node's API; latency "
            "from publication to the moment the last node stores it.\n\n" + out.strip() + "\n")


def section_catchup():
    sizes = [n.strip() for n in CATCHUP_N.split(",") if n.strip()]
    out = run([os.path.join(REL, "examples", "catchup_bench")] + sizes)
    return ("## Catching up over QUIC (separate processes)\n\n"
            f"`examples/catchup_bench.rs {' '.join(sizes)}`: one `lakitu` relay holds N posts of "
            "its own spread over a year (all older than the 7-day repair window); a new relay "
            "with an empty store starts, joins it over QUIC on loopback and fetches them all "
            "with a history sync (ids in pages of 1,024, posts by IWant, pipelined). Seconds "
            "run from the new relay's start to its last post; bytes are every frame byte the "
            "new relay received.\n\n" + out.strip() + "\n" + catchup_verdict(out))


def catchup_verdict(out):
    """Issue 19's target for a catch-up over QUIC, from the table's rows (N, fetched, s, posts/s)."""
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].isdigit():
            rows.append((int(cells[0]), int(cells[1]), float(cells[2]), float(cells[3])))
    if not rows:
        return "\n**Target ≥ 20,000 posts/s, 100,000 posts in ≤ 5 s: no figures.**\n"
    short = [f"{n:,} posts at {rate:,.0f} posts/s ({20000 / rate:.2f}× short)"
             for n, got, _, rate in rows if rate < 20000 or got < n]
    slow = [f"100,000 posts in {secs:.2f} s" for n, _, secs, _ in rows if n == 100000 and secs > 5]
    verdict = "met" if not short and not slow else "not met: " + "; ".join(short + slow)
    return f"\n**Target ≥ 20,000 posts/s, 100,000 posts in ≤ 5 s: {verdict}.**\n"


def section_catchup_xmpp():
    # A cargo bench, like the bridge's: it starts Prosody through tests/servers.
    out = run(["cargo", "bench", "--locked", "--bench", "catchup_xmpp", "--", "--limited",
               CATCHUP_XMPP_LIMITED, "--open", CATCHUP_XMPP_OPEN], cwd=ROOT)
    return ("## Catching up over XMPP (separate processes, real Prosody)\n\n"
            f"`benches/catchup_xmpp.rs --limited {CATCHUP_XMPP_LIMITED} --open "
            f"{CATCHUP_XMPP_OPEN}`: as over QUIC, one relay holds N posts of its own spread over "
            "a year; a new relay on the same Prosody, reached only over XMPP, follows its author "
            "(`lakitu follow`, which shows a progress bar) and fetches them with a history sync. "
            "Seconds are the sync's own start to end; bytes are frame bytes (a stanza carries "
            "them in base64, 4/3 as many). With Prosody's stock client limit the relays pace "
            "what they write at their default 8,000 bytes/s, so the server never throttles "
            "them; without a limit, and with pacing off, it shows what the relay itself does.\n\n"
            + out.strip() + "\n")


def section_bridge():
    # A cargo bench (harness = false): it starts Prosody and Postfix + Dovecot through
    # tests/servers like the tests do, and runs the lakitu binary of the bench profile.
    out = run(["cargo", "bench", "--locked", "--bench", "bridge", "--", "--minutes",
               str(BRIDGE_MINUTES), "--posts", str(BRIDGE_POSTS)], cwd=ROOT)
    return ("## Bridge across carriers (real processes)\n\n"
            "`benches/bridge.rs`: six `lakitu` relays on loopback with a real Prosody and a real "
            "Postfix + Dovecot: QUIC-only, XMPP-only and email-only relays that share no carrier, "
            "joined by QUIC+XMPP, QUIC+email and XMPP+email bridges, all with default timings. "
            "Every relay posts on a schedule; Prosody is stopped for 5 s half-way while every "
            "relay posts once more; every relay's peer list is read every 10 s.\n\n"
            + out.strip() + "\n")


def section_store():
    out = run([os.path.join(REL, "examples", "ingest_bench"), str(STORE_N)])
    return (f"## Store at {STORE_N:,} posts\n\n`examples/ingest_bench.rs {STORE_N}`: sled store "
            "in a temporary directory, 100 authors, 50 topics. Peak RSS is the benchmark "
            "process's and includes every post it holds in memory.\n\n" + out.strip() + "\n")


def section_membership():
    out = run([os.path.join(REL, "examples", "membership_bench"), str(MEMBERS)])
    r = json.loads(out.strip().splitlines()[-1])
    mib = r["bytes"] / 1024 / 1024
    target = 4.0 * MEMBERS / 50000
    verdict = ("met" if mib <= target else
               f"not met: {mib / target:.1f}× over ({r['bytes_per_member']:.0f} B per member "
               f"against {4 * 1024 * 1024 / 50000:.0f} B)")
    return (f"## Membership view of {r['members']:,} members\n\n"
            "`examples/membership_bench.rs`: one engine learns N members (one QUIC address "
            "each); live heap bytes counted by a counting allocator.\n\n"
            "| measure | value |\n|---|---|\n"
            f"| heap bytes for the view | {r['bytes']:,} ({mib:.1f} MiB) |\n"
            f"| bytes per member | {r['bytes_per_member']:.0f} |\n"
            f"| adding a member (record, index, merkle update) | {r['add_us_per_member']:.1f} µs |\n"
            f"| world-hash comparison (two 32-byte roots, kept up to date) | "
            f"{r['root_compare_ns']:.1f} ns |\n\n"
            f"**Target ≤ 4 MB for 50,000 members (scaled: {target:.1f} MiB here): {verdict}.**\n")


def main():
    docs = os.path.join(ROOT, "docs", "performance.md")
    m = machine()
    started = datetime.datetime.now(datetime.timezone.utc)
    work = tempfile.mkdtemp(prefix="lakitu-bench-")
    parts, raw = [], {}
    try:
        for name, fn in [("ingest", lambda: section_ingest(work)),
                         ("reconcile", section_reconcile),
                         ("sim", section_sim),
                         ("cluster", section_cluster),
                         ("catchup", section_catchup),
                         ("catchup_xmpp", section_catchup_xmpp),
                         ("bridge", section_bridge),
                         ("store", section_store),
                         ("membership", section_membership)]:
            if name in SKIP:
                continue
            try:
                r = fn()
                if isinstance(r, tuple):
                    r, raw[name] = r
                parts.append(r)
            except (subprocess.CalledProcessError, SystemExit, OSError, ValueError) as e:
                detail = getattr(e, "stderr", "") or ""
                parts.append(f"## {name}\n\nFailed in this run: {e}\n\n```\n{detail[-2000:]}\n```\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    took = datetime.datetime.now(datetime.timezone.utc) - started
    env = " ".join(f"{k}={os.environ[k]}" for k in sorted(os.environ)
                   if k.startswith("BENCH_"))
    head = [
        "# Performance\n",
        "Generated by `bench/run.sh` (do not edit by hand: rerun it). Every figure below comes "
        "from one run of that command on the machine described here; absolute figures on a "
        "shared 2-core machine are noisy, so comparisons are made within the run, as ratios.\n",
        f"- date: {started:%Y-%m-%d %H:%M} UTC, took {took.seconds // 60} min",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']:.1f} GiB RAM, "
        f"Linux {m['kernel']}, load average at start {m['load']}",
        f"- command: `{(env + ' ') if env else ''}bench/run.sh`"
        + (" (quick sizes)" if QUICK else ""),
        f"- sizes: ingest {INGEST_N:,} posts, store {STORE_N:,} posts, membership {MEMBERS:,}, "
        f"simulator {SIM_NODES} nodes (Lakitu up to {SIM_LAKITU_MAX}), QUIC cluster "
        f"{CLUSTER_POSTS} posts, catch-up {CATCHUP_N} posts (over XMPP {CATCHUP_XMPP_LIMITED} limited, {CATCHUP_XMPP_OPEN} open), bridge {BRIDGE_MINUTES} min with "
        f"{BRIDGE_POSTS} posts a relay\n",
    ]
    notes = open(os.path.join(ROOT, "bench", "notes.md")).read()
    with open(docs, "w") as f:
        f.write("\n".join(head) + "\n" + "\n".join(parts) + "\n" + notes)
    print(json.dumps({"machine": m, "raw": raw}))
    log(f"wrote {docs}")


if __name__ == "__main__":
    main()
