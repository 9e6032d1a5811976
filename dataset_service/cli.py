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
    i = sub.add_parser("index", help="index the lake into the catalogue")
    i.add_argument("--lake", help="lake folder (default: INSITU_LAKE_DIR)")
    i.add_argument("--no-progress", action="store_true")
    c = sub.add_parser("create-dataset", help="create a dataset, wait for its build, print its id")
    c.add_argument("--name", required=True)
    sel = c.add_mutually_exclusive_group(required=True)
    sel.add_argument("--study", action="append", metavar="ID", help="study id <subject>/<study> (repeatable)")
    sel.add_argument("--all-studies", action="store_true")
    sel.add_argument("--query", action="append", metavar="K=V", help="catalogue filter (repeatable)")
    c.add_argument("--description", default="")
    c.add_argument("--license", default="")
    c.add_argument("--tag", action="append", default=[])
    c.add_argument("--contact", default="")
    c.add_argument("--previous", default=None, help="id of the previous version")
    c.add_argument("--actor", default="cli", help="recorded as the creator")
    c.add_argument("--no-progress", action="store_true")
    k = sub.add_parser("check", help="integrity check of a dataset (re-hash vs manifest)")
    k.add_argument("dataset_id")
    sub.add_parser("recover", help="resume or fail builds interrupted by a crash")
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


def _fail(reason: str) -> int:
    print(f"error: {reason}", file=sys.stderr)
    return 1


def _db():
    from .db import Database
    from .settings import get_settings

    settings = get_settings()
    db = Database(settings.database_url)
    db.upgrade()
    return settings, db


def cmd_index(args) -> int:
    from .indexer import index_lake

    settings, db = _db()
    if args.lake:
        settings = settings.model_copy(update={"lake_dir": args.lake})
    try:
        st = index_lake(settings, db, progress=False if args.no_progress else None, requested_by="cli")
    except FileNotFoundError as e:
        return _fail(str(e))
    for sk in st.skipped[:50]:
        print(f"skipped {sk['path']}: {sk['reason']}", file=sys.stderr)
    if len(st.skipped) > 50:
        print(f"... and {len(st.skipped) - 50} more skipped", file=sys.stderr)
    for p in st.permissions:
        print(p, file=sys.stderr)
    print(f"indexed {st.subjects} subjects, {st.studies} studies, {st.series} series, {st.files_seen} files "
          f"({st.files_hashed} hashed, {st.files_cached} cached, {len(st.skipped)} skipped) in {st.seconds:.2f} s")
    return 0


def cmd_create_dataset(args) -> int:
    from . import builder

    settings, db = _db()
    query = None
    if args.query:
        query = {}
        for kv in args.query:
            k, eq, v = kv.partition("=")
            if not eq:
                return _fail(f"--query takes K=V, got {kv!r}")
            query[k.strip()] = v.strip()
    try:
        dataset_id = builder.create_dataset(
            settings, db, actor=args.actor, name=args.name, description=args.description, license=args.license,
            tags=args.tag, contact=args.contact, previous_id=args.previous, study_ids=args.study, query=query,
            all_studies=args.all_studies)
    except builder.RequestError as e:
        return _fail(str(e))
    show = not args.no_progress and sys.stderr.isatty()
    if show:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress

        with Progress("[bold]building", BarColumn(), MofNCompleteColumn(), transient=True) as bar:
            task = bar.add_task("build", total=None)
            state = builder.build(settings, db, dataset_id,
                                  progress=lambda done, total, _phase: bar.update(task, completed=done, total=total))
    else:
        state = builder.build(settings, db, dataset_id)
    from .models import Dataset

    with db.session() as s:
        ds = s.get(Dataset, dataset_id)
        if state != "draft":
            return _fail(f"build of {dataset_id} ended {state}: {ds.error or 'see the service log'}")
        report = ds.report or {}
    for x in report.get("left_out_studies", []):
        print(f"left out study {x['study']}: {x['reason']}", file=sys.stderr)
    files = report.get("left_out_files", [])
    for x in files[:50]:
        print(f"left out file {x['path']}: {x['reason']}", file=sys.stderr)
    if len(files) > 50:
        print(f"... and {len(files) - 50} more files left out (see the manifest's report)", file=sys.stderr)
    print(dataset_id)
    return 0


def cmd_check(args) -> int:
    from .operations import Conflict, NotFound, check

    settings, db = _db()
    try:
        res = check(settings, db, args.dataset_id)
    except (NotFound, Conflict) as e:
        return _fail(str(e))
    if res.ok:
        print(f"{args.dataset_id}: ok, {res.files_checked} files match the manifest")
        return 0
    for p in res.problems:
        print(f"{p['kind']}: {p['path']} {p['detail']}".rstrip(), file=sys.stderr)
    return _fail(f"{args.dataset_id}: {len(res.problems)} difference(s) from the manifest")


def cmd_recover(args) -> int:
    from .builder import BuildRunner

    settings, db = _db()
    runner = BuildRunner(settings, db)
    ids = runner.recover()
    runner.shutdown()
    print(f"resumed {len(ids)} interrupted build(s)")
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


COMMANDS = {"demo-lake": cmd_demo_lake, "index": cmd_index, "create-dataset": cmd_create_dataset,
            "check": cmd_check, "recover": cmd_recover, "serve": cmd_serve, "migrate": cmd_migrate}
