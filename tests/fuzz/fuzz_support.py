"""Property-based fuzzing of the platform's APIs from their own live OpenAPI specs (schemathesis).

``fuzz(stack, service, roles, max_examples)`` loads ``/openapi.json`` from the running service,
generates requests for every operation (valid ones and, in negative mode, ones the spec forbids)
with Hypothesis, sends each one with the hub token of each role (``None``: no token), and runs
every schemathesis check on the answer (no 5xx, status codes, content types, response schemas and
headers as declared, valid data accepted, invalid data rejected, auth not ignored, 405s, ...).
Around every request it takes a snapshot of the state (the dataset service's and the tracer's
databases, the files under the stack's folders): a refused request (4xx) that changed it is a failure.

Used by ``tests/fuzz/test_fuzz.py`` (bounded, default suite) and ``bench/fuzz.py`` (longer runs).
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

# refused valid data is expected when it names something that is not there, or that the caller may
# not touch, or that conflicts with the current state: what the schema cannot know
POSITIVE_STATUSES = ["2xx", "400", "401", "403", "404", "409"]
ROLES = [None, "alice", "dora", "dac1", "audrey", "admin", "insitu-hub", "dataset-service"]


@dataclass
class Report:
    operations: set[str] = field(default_factory=set)
    requests: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"operations={len(self.operations)} requests={self.requests} failures={len(self.failures)}"


def _sqlite_digest(path: Path) -> str:
    if not path.exists():
        return "-"
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        h = hashlib.sha256()
        for line in con.iterdump():
            h.update(line.encode())
        return h.hexdigest()
    finally:
        con.close()


def _tree_digest(root: Path, skip: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for f in sorted(files):
            if f.endswith((".sqlite", ".sqlite-wal", ".sqlite-shm", ".sqlite-journal", ".log")):
                continue
            p = Path(dirpath) / f
            try:
                stt = p.lstat()
            except FileNotFoundError:
                continue
            h.update(f"{p.relative_to(root)} {stt.st_size} {stt.st_mtime_ns}\n".encode())
    return h.hexdigest()


def snapshot(stack) -> tuple[str, str, str]:
    """The state a refused request must not change (waits for background builds first)."""
    _idle(stack)
    return (_sqlite_digest(stack.workdir / "dataset-service.sqlite"),
            _sqlite_digest(stack.workdir / "tracer.sqlite"),
            _tree_digest(stack.workdir, skip=("hub",)))


def _idle(stack, timeout: float = 60) -> None:
    """Wait for the background work (dataset builds, index runs) that earlier requests started."""
    pool = stack.app.state.builds.pool
    futures = getattr(pool, "fuzz_futures", None)
    if futures is None:  # record every job submitted from now on
        futures = pool.fuzz_futures = []
        submit = pool.submit

        def tracked(*a, **kw):
            f = submit(*a, **kw)
            futures.append(f)
            return f
        pool.submit = tracked
    concurrent.futures.wait(list(futures), timeout=timeout)


def load_schema(url: str):
    import schemathesis

    schema = schemathesis.openapi.from_url(url)
    schema.config.checks.positive_data_acceptance.expected_statuses = POSITIVE_STATUSES
    return schema


def fuzz(stack, service: str, roles: list[str | None], max_examples: int, report: Report,
         seed: int | None = 19, negative: bool = True) -> Report:
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode

    if service == "dataset-service":
        spec_url, base_url = stack.public + "/openapi.json", stack.hub.url  # through the hub's proxy
    else:
        spec_url = stack.tracer.url + "/openapi.json"
        base_url = stack.tracer.url.rsplit("/services/", 1)[0]
    schema = load_schema(spec_url)
    for result in schema.get_all_operations():
        op = result.ok()
        label = f"{service} {op.label}"
        report.operations.add(label)
        has_input = any(len(getattr(op, part).items) for part in ("path_parameters", "query", "headers", "body"))
        # invalid data needs something to be invalid: operations without any input get valid data only
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_input and negative else \
            (GenerationMode.POSITIVE,)
        for mode in modes:
            _fuzz_op(stack, op, label, roles, mode, base_url, max_examples, report, seed,
                     given, settings, HealthCheck, Phase)
    return report


def _fuzz_op(stack, op, label, roles, mode, base_url, max_examples, report, seed,
             given, settings, HealthCheck, Phase) -> None:
    from hypothesis import seed as hseed

    tokens = {role: {"Authorization": f"token {stack.token(role)}"} if role else {} for role in roles}
    turn = iter(range(10**9))

    def one(case) -> None:
        role = roles[next(turn) % len(roles)]  # every role in turn, so each one gets its share
        headers = tokens[role]
        before = snapshot(stack)
        try:
            resp = case.call(base_url=base_url, headers=headers, timeout=60)
        except Exception as e:  # noqa: BLE001  (a transport error is a failure too)
            report.requests += 1
            report.failures.append(f"{label} as {role or 'anonymous'}: no answer: {e!r}")
            return
        report.requests += 1
        try:
            case.validate_response(resp, headers=headers, transport_kwargs={"base_url": base_url})
        except (Exception, BaseExceptionGroup) as e:  # noqa: BLE001  (one group holding every failed check)
            report.failures.append(f"{label} as {role or 'anonymous'} ({mode.value}): {case.as_curl_command(headers)}"
                                   f" -> {resp.status_code}: {str(e)[:1500]}")
        if 400 <= resp.status_code < 500 and snapshot(stack) != before:
            report.failures.append(f"{label} as {role or 'anonymous'}: refused with {resp.status_code} but the "
                                   f"state changed: {case.as_curl_command(headers)}")

    try:
        strategy = op.as_strategy(generation_mode=mode)
    except Exception as e:  # noqa: BLE001
        report.failures.append(f"{label}: no {mode.value} strategy: {e!r}")
        return
    test = settings(max_examples=max_examples * len(roles), deadline=None, database=None, derandomize=seed is None,
                    suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])(
        given(case=strategy)(one))
    if seed is not None:
        test = hseed(seed)(test)
    try:
        test()
    except (Exception, BaseExceptionGroup) as e:  # noqa: BLE001  (e.g. no example could be generated)
        if "Unsatisfiable" not in type(e).__name__:
            report.failures.append(f"{label} ({mode.value}): {e!r}"[:1500])
