"""Command line: demo-lake, index, create-dataset, check, serve, migrate.

Exit status 0 on success, non-zero with a one-line reason on stderr otherwise.
"""
from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dataset_service", description="insitu dataset service")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo-lake", help="write a deterministic synthetic DICOM lake")
    d.add_argument("out")
    d.add_argument("--subjects", type=int, default=20)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--studies-per-subject", type=int, default=0, help="0: 1 or 2 at random")
    d.add_argument("--series-per-study", type=int, default=2)
    d.add_argument("--slices", type=int, default=16)
    d.add_argument("--size", type=int, default=32)
    d.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    s = sub.add_parser("serve", help="run the API with uvicorn")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8101)
    sub.add_parser("migrate", help="alembic upgrade head")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def cmd_demo_lake(args) -> int:
    from .demo_lake import write_lake

    n = write_lake(args.out, args.subjects, args.seed, studies_per_subject=args.studies_per_subject,
                   series_per_study=args.series_per_study, slices=args.slices, size=args.size,
                   workers=args.workers)
    print(f"wrote {n} DICOM files for {args.subjects} subjects into {args.out}")
    return 0


def cmd_serve(args) -> int:
    import uvicorn

    from .app import create_app

    uvicorn.run(create_app(), host=args.host, port=args.port)
    return 0


def cmd_migrate(args) -> int:
    from .db import Database
    from .settings import get_settings

    Database(get_settings().database_url).upgrade()
    return 0


COMMANDS = {"demo-lake": cmd_demo_lake, "serve": cmd_serve, "migrate": cmd_migrate}
