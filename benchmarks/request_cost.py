"""The collector's CPU cost of one request: one thread reading one object permissions document in a loop.

The collection benchmark (``collection_scale.py``) is CPU-bound on a small machine; this isolates the cost
of a single request through the real client stack (databricks-sdk -> requests -> urllib3 -> http.client,
plus the run's throttle and call recording), with the emulator in a separate process and no latency, so
the number is the client's CPU per request and nothing else.

Run ``python benchmarks/request_cost.py [--requests 2000]``; results are in docs/benchmark-collection.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time


def _serve(tenant: dict, conn) -> None:
    from pytest_dbsec.emulator import Emulator

    emu = Emulator(tenant, live_edits=False)
    emu.start()
    ws = emu.workspaces[0]
    conn.send({"url": ws["url"], "name": ws["name"]})
    conn.recv()  # stop
    emu.stop()


def run(requests: int = 2000) -> dict:
    from collection_scale import generate

    from pytest_dbsec import connect
    from pytest_dbsec.connect import CallLog, Target

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(generate(0.01, 1), child), daemon=True)
    proc.start()
    try:
        info = parent.recv()
        client = connect.workspace_client(Target(info["name"], host=info["url"], token=f"emu-auditor-{info['name']}"))
        job_id = next(iter(client.jobs.list())).job_id
        path = f"/api/2.0/permissions/jobs/{job_id}"
        with CallLog() as log:  # as a section records its calls
            for _ in range(100):  # warm up: connection, imports, caches
                client.api_client.do("GET", path)
            cpu, wall = time.process_time(), time.monotonic()
            for _ in range(requests):
                client.api_client.do("GET", path)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        assert len(log.calls) == requests + 100 and all(c["status"] == 200 for c in log.calls)
        parent.send("stop")
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
    return {"requests": requests, "cpu_ms_per_request": round(cpu / requests * 1000, 3),
            "wall_ms_per_request": round(wall / requests * 1000, 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000)
    args = p.parse_args(argv)
    res = run(args.requests)
    print(f"{res['requests']} requests: {res['cpu_ms_per_request']} ms CPU and {res['wall_ms_per_request']} ms "
          "wall per request (one thread, no latency)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
