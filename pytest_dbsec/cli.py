"""The ``dbsec`` command: tools around the pytest suite.

    dbsec emulator serve [--tenant FILE] [--port N]   run the Databricks REST emulator

Exit codes: 0 ok, 4 bad input (the same as pytest's usage error), 1 other failures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

USAGE_ERROR = 4


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dbsec", description="pytest-dbsec tools")
    sub = p.add_subparsers(dest="command", required=True)
    emu = sub.add_parser("emulator", help="the Databricks REST emulator")
    emu_sub = emu.add_subparsers(dest="emulator_command", required=True)
    serve = emu_sub.add_parser("serve", help="serve a tenant over HTTP until interrupted")
    serve.add_argument("--tenant", metavar="FILE", help="tenant YAML (default: the shipped demo tenant)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0,
                       help="account API port; workspaces get their own ports (default: any free port)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad flags; we promise 4 for bad input
        return USAGE_ERROR if e.code not in (0, None) else 0
    if args.command == "emulator" and args.emulator_command == "serve":
        from .emulator import DEMO_TENANT, TenantError, serve

        tenant = Path(args.tenant) if args.tenant else DEMO_TENANT
        if not 0 <= args.port <= 65535:
            print(f"dbsec: --port {args.port}: not a port number", file=sys.stderr)
            return USAGE_ERROR
        try:
            serve(tenant, args.host, args.port)
        except TenantError as e:
            print(f"dbsec: {e}", file=sys.stderr)
            return USAGE_ERROR
        except OSError as e:
            print(f"dbsec: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
            return USAGE_ERROR
        except KeyboardInterrupt:
            return 0
        return 0
    return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
