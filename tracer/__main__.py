"""Command line: ``python -m tracer {serve,dev-chain,dev-key,verify}``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tracer", description="insitu tracer")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run the tracer service (settings from TRACER_* variables)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)

    d = sub.add_parser("dev-chain", help="run the local dev chain (anvil) with its state on disk")
    d.add_argument("--port", type=int, default=8545)
    d.add_argument("--state-dir", type=Path, default=None, help="default: var/chain")
    d.add_argument("--block-time", type=float, default=None, help="seconds per block (default: automine)")

    k = sub.add_parser("dev-key", help="write the dev chain's tracer key (mode 0600) if it is not there")
    k.add_argument("path", type=Path)

    v = sub.add_parser("verify", help="verify exported traces against the chain alone (never asks the tracer)")
    v.add_argument("file", help="JSON lines export (GET /traces?format=jsonl) or one trace record (JSON); - for stdin")
    v.add_argument("--chain-url", required=True, help="JSON-RPC URL of any node of the chain")
    v.add_argument("--contract", required=True, help="address of the TraceAnchor contract")
    v.add_argument("--no-poa", action="store_true", help="do not inject the POA extraData middleware")
    v.add_argument("--partial", action="store_true",
                   help="the file is a filtered selection: skip the completeness check of whole batches")
    v.add_argument("--json", action="store_true", help="print the report as JSON")

    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.cmd == "serve":
        import uvicorn

        from tracer.app import create_app
        from tracer.settings import TracerSettings

        settings = TracerSettings()
        app = create_app(settings)
        uvicorn.run(app, host=args.host or settings.host, port=args.port or settings.port, log_level="info")
        return 0
    if args.cmd == "dev-chain":
        from tracer.devchain import run_dev_chain

        return run_dev_chain(port=args.port, state_dir=args.state_dir, block_time=args.block_time)
    if args.cmd == "dev-key":
        from tracer.devchain import write_dev_key

        write_dev_key(args.path)
        return 0
    if args.cmd == "verify":
        from tracer.verify import main as verify_main

        return verify_main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
