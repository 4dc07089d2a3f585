"""Open-loop HTTP load with one record per request (python3, stdlib only), run on the web
host (bench/downtime's shared set-up) or on the controller beside it (separated).

    python3 loadgen.py --rate 250 --host-header webxample.bench --watch /srv/apps/webxample/current
    python3 loadgen.py --address 10.89.0.20 --rate 250 --host-header webxample.bench \
        --watch /var/lib/containers/storage/overlay/.../merged/srv/apps/webxample/current

Sends GET requests to nginx at a fixed rate (open loop: a slow answer does not slow the
sender down, as with real users), each on a new connection, until its stdin is closed
(or --max-seconds). At the same time it polls the `current` symlink (on the controller:
through the container's root filesystem; only the target's last part, the version, is
used) and notes, with this machine's clock, when it changes: the switch times. Prints one
JSON document on stdout:

    {"requests": [[t_sent, latency_s, status, version, error, lag_s], ...],
     "switches": [[t, link_target], ...], "started": t, "ended": t, "cpu_s": s, ...}

cpu_s is the CPU time (user + system) this process used; connect_errors counts the
"connect" errors by errno name (ECONNREFUSED: the server refused; EMFILE would be this
client out of file descriptors, which its raised limit and --max-in-flight prevent).

status is 0 when no HTTP answer came; error is "" / "connect" (refused, reset before an
answer) / "timeout" / "closed" (connection closed without a complete answer) / "client"
(too many requests in flight: the client, not the server, gave up). lag_s is how late the
request left compared to its schedule (shows when this client itself could not keep up).
"""

import argparse
import asyncio
import collections
import errno
import json
import os
import re
import resource
import sys
import threading
import time

# webxample's pages name their version: <title>webxample 1.1.0</title>, /healthz in JSON.
VERSION = re.compile(rb'<title>webxample ([^<\s]+)</title>|"version": ?"([^"]+)"')


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--path", default="/")
    p.add_argument("--host-header", required=True)
    p.add_argument("--rate", type=float, default=250.0, help="requests per second")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request, connect included")
    p.add_argument("--max-in-flight", type=int,
                   help="requests in flight at most (default: --rate x --timeout, so that the client gives"
                        " up on a request only at its timeout, as a patient user would)")
    p.add_argument("--max-seconds", type=float, default=900.0, help="safety stop")
    p.add_argument("--watch", default="", help="symlink whose changes are the switch times")
    return p.parse_args()


def raise_open_files(wanted):
    """Raise this process's soft limit of open files towards `wanted` (up to the hard
    limit: an ssh session starts at 1024, fewer than the requests a slow server keeps in
    flight); returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


async def one_request(args, request_bytes, scheduled, records, in_flight, connect_errors):
    sent = time.time()
    status, version, error = 0, "", ""
    try:
        async with asyncio.timeout(args.timeout):
            reader, writer = await asyncio.open_connection(args.address, args.port)
            try:
                writer.write(request_bytes)
                await writer.drain()
                data = await reader.read()  # Connection: close, so read to EOF
            finally:
                writer.close()
        head, sep, body = data.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        if not sep or len(parts) < 2 or not parts[1].isdigit():
            error = "closed"
        else:
            status = int(parts[1])
            m = VERSION.search(body)
            if m:
                version = (m.group(1) or m.group(2)).decode()
    except TimeoutError:
        error = "timeout"
    except (ConnectionError, OSError) as e:
        error = "connect"
        connect_errors[errno.errorcode.get(e.errno, type(e).__name__)] += 1
    finally:
        in_flight[0] -= 1
    records.append((round(sent, 4), round(time.time() - sent, 4), status, version, error,
                    round(sent - scheduled, 4)))


async def watch_link(path, switches, stop):
    last = None
    while not stop.is_set():
        try:
            target = os.readlink(path)
        except OSError:
            target = ""
        if target != last:
            switches.append((round(time.time(), 4), target))
            last = target
        await asyncio.sleep(0.02)


async def main():
    args = parse_args()
    request_bytes = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host_header}\r\n"
                     "User-Agent: webdeploy-bench\r\nConnection: close\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # The controller stops the load by closing our stdin (the ssh session's, or its pipe).
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)),
                     daemon=True).start()

    # One descriptor per request in flight, and some to spare; the cap below is the
    # client's own ("client" records), never a failure to open a socket.
    args.max_in_flight = args.max_in_flight or int(args.rate * args.timeout) + 100
    limit = raise_open_files(args.max_in_flight + 64)
    args.max_in_flight = min(args.max_in_flight, limit - 64)
    records, switches, tasks, in_flight = [], [], set(), [0]
    connect_errors = collections.Counter()
    watcher = asyncio.create_task(watch_link(args.watch, switches, stop)) if args.watch else None
    started = time.time()
    print(f"loadgen: started at {started:.3f}", file=sys.stderr, flush=True)
    n = 0
    while not stop.is_set() and time.time() - started < args.max_seconds:
        scheduled = started + n / args.rate
        delay = scheduled - time.time()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
                break
            except TimeoutError:
                pass
        n += 1
        if in_flight[0] >= args.max_in_flight:
            records.append((round(time.time(), 4), 0.0, 0, "", "client", round(time.time() - scheduled, 4)))
            continue
        in_flight[0] += 1
        task = asyncio.create_task(one_request(args, request_bytes, scheduled, records, in_flight,
                                                       connect_errors))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    ended = time.time()
    stop.set()
    if tasks:  # let the requests in flight finish (each is bounded by --timeout)
        await asyncio.wait(tasks)
    if watcher:
        await watcher
    records.sort()
    json.dump({"started": started, "ended": ended, "rate": args.rate, "path": args.path,
               "host_header": args.host_header, "timeout": args.timeout,
               "requests": records, "switches": switches, "cpu_s": round(sum(os.times()[:2]), 2),
               "max_in_flight": args.max_in_flight, "connect_errors": dict(connect_errors)}, sys.stdout)
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
