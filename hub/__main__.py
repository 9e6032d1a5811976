"""``python -m hub <command>``: ``up`` runs the embedded default (see hub.up)."""

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("up",):
        print("usage: python -m hub up [--port N] [--var DIR] [--no-demo]", file=sys.stderr)
        return 2
    from hub.up import main as up_main

    return up_main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
