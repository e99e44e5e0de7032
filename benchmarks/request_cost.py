"""The collector's CPU cost of one request: threads reading one object permissions document in a loop.

The collection benchmark (``collection_scale.py``) is CPU-bound on a small machine; this isolates the cost
of a single request through the real client stack (databricks-sdk -> requests -> urllib3 -> http.client,
plus the run's throttle and call recording), with the emulator in a separate process. By default one
thread and no latency, so the number is the client's CPU per request and nothing else; ``--threads T
--latency-ms L --window W`` measures it the way a collection runs: T threads through one host's window of
W, each answer L ms late (threads beyond the window wait for a slot, and that waiting costs CPU too).

Run ``python benchmarks/request_cost.py [--requests 2000] [--threads 48 --latency-ms 50 --window 16]``;
results are in docs/benchmark-collection.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time


def _serve(tenant: dict, latency_ms: int, conn) -> None:
    from pytest_dbsec.emulator import Emulator

    emu = Emulator(tenant, live_edits=False)
    if latency_ms:
        emu.add_fault("* /*", latency_ms=latency_ms)
    emu.start()
    ws = emu.workspaces[0]
    conn.send({"url": ws["url"], "name": ws["name"]})
    conn.recv()  # stop
    emu.stop()


def run(requests: int = 2000, *, threads: int = 1, latency_ms: int = 0, window: int = 16) -> dict:
    from collection_scale import generate

    from pytest_dbsec import connect, throttle
    from pytest_dbsec.connect import CallLog, Target

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(generate(0.01, 1), latency_ms, child), daemon=True)
    proc.start()
    threads = max(1, threads)
    per_thread = max(1, requests // threads)
    try:
        info = parent.recv()
        client = connect.workspace_client(Target(info["name"], host=info["url"], token=f"emu-auditor-{info['name']}"))
        throttle.limiter_for(info["url"]).bound(window)
        job_id = next(iter(client.jobs.list())).job_id
        path = f"/api/2.0/permissions/jobs/{job_id}"

        def loop(log: CallLog):
            connect._recorder.log = log  # record into the run's log, as a collector's helper threads do
            for _ in range(per_thread):
                client.api_client.do("GET", path)

        with CallLog() as log:  # as a section records its calls
            for _ in range(20 if latency_ms else 100):  # warm up: connection, imports, caches
                client.api_client.do("GET", path)
            warm = len(log.calls)
            workers = [threading.Thread(target=loop, args=(log,)) for _ in range(threads)]
            cpu, wall = time.process_time(), time.monotonic()
            for t in workers:
                t.start()
            for t in workers:
                t.join()
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        done = per_thread * threads
        assert len(log.calls) == warm + done and all(c["status"] == 200 for c in log.calls)
        parent.send("stop")
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
    return {"requests": done, "threads": threads, "latency_ms": latency_ms, "window": window,
            "cpu_ms_per_request": round(cpu / done * 1000, 3), "wall_ms_per_request": round(wall / done * 1000, 3),
            "requests_per_s": round(done / wall, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1, help="threads sending at once (default 1)")
    p.add_argument("--latency-ms", type=int, default=0, help="the emulator's latency on every answer (default 0)")
    p.add_argument("--window", type=int, default=16, help="requests in flight per host (dbsec_max_workers; default 16)")
    args = p.parse_args(argv)
    res = run(args.requests, threads=args.threads, latency_ms=args.latency_ms, window=args.window)
    how = ("one thread, no latency" if res["threads"] == 1 and not res["latency_ms"] else
           f"{res['threads']} thread(s), window {res['window']}, {res['latency_ms']} ms latency: {res['requests_per_s']} requests/s")
    print(f"{res['requests']} requests: {res['cpu_ms_per_request']} ms CPU and {res['wall_ms_per_request']} ms "
          f"wall per request ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
