"""Fuzz both APIs for longer than the default suite does (issue 19).

Starts the real stack of the tests (JupyterHub with configurable-http-proxy, the tracer, the dataset
service; ``tests/fixtures/governance_stack.py``) in a temporary folder, then runs
``tests/fuzz/fuzz_support.fuzz`` over every operation of both live specs, for every role and none,
valid and invalid data, every schemathesis check, and a state snapshot around every request.

    .venv/bin/python bench/fuzz.py              # 10 examples per operation, role and mode
    .venv/bin/python bench/fuzz.py --quick      # within a minute: valid data, one role per service
    .venv/bin/python bench/fuzz.py --examples 50 --show 20

Baseline in the same run: plain GETs of the public dataset list through the same proxy (requests/s),
so the fuzzing rate can be read against what the stack answers at all. The last line prints
operations, requests, failures, the rates and their ratio. Exit status 1 when anything failed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "fuzz"), str(ROOT)]


def baseline(stack, seconds: float) -> float:
    import httpx

    n, t0 = 0, time.monotonic()
    with httpx.Client(base_url=stack.public, timeout=30) as c:
        while time.monotonic() - t0 < seconds:
            c.get("/api/public/datasets").raise_for_status()
            n += 1
    return n / (time.monotonic() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="within a minute: valid data only, one role per service")
    p.add_argument("--examples", type=int, default=10, help="examples per operation, role and mode")
    p.add_argument("--show", type=int, default=10, help="failures to print in full")
    args = p.parse_args(argv)

    from fixtures.governance_stack import start_governance_stack
    from fuzz_support import ROLES, Report, fuzz

    roles = {"dataset-service": ["dora"], "tracer": ["dataset-service"]} if args.quick else \
        {"dataset-service": ROLES, "tracer": ROLES}
    examples = 1 if args.quick else args.examples
    with tempfile.TemporaryDirectory(prefix="insitu-fuzz-") as tmp:
        stack = start_governance_stack(Path(tmp) / "stack")
        try:
            stack.add_dataset("Fuzz released", state="released")
            stack.add_dataset("Fuzz published", state="published")
            base = baseline(stack, 2 if args.quick else 5)
            report, t0 = Report(), time.monotonic()
            for service in ("dataset-service", "tracer"):
                fuzz(stack, service, roles[service], examples, report, negative=not args.quick)
            rate = report.requests / (time.monotonic() - t0)
        finally:
            stack.stop()
    for f in report.failures[: args.show]:
        print(f, end="\n\n")
    print(f"{report.line()} roles={len(roles['dataset-service'])} examples={examples} fuzz_req_per_s={rate:.1f} "
          f"baseline_get_per_s={base:.1f} ratio={rate / base:.2f}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
