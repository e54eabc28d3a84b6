"""``panoptes-network``: run the whole network on one machine, and look inside it.

    panoptes-network up        serve every service and deliver every message
    panoptes-network upload    put frames into the raw bucket, as a unit would
    panoptes-network drain     deliver everything queued, then report
    panoptes-network doc       print one document
    panoptes-network status    buckets, documents, queue and dead letters at a glance
    panoptes-network ls        list a bucket
    panoptes-network emulators start Google's emulators for PANOPTES_BACKEND=gcp
    panoptes-network redrive   publish dead-lettered messages again
    panoptes-network reconcile find (and --fix) frames that fell between the bucket and the documents
    panoptes-network demo      generate demo frames and send them through the pipeline
    panoptes-network catalog load   fill the stars collection (the bundled Gaia catalog, or --tic FILE.csv)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from panoptes_network import log

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
CONTENT_TYPES = {".fits": "application/fits", ".fz": "application/fits", ".jpg": "image/jpeg",
                 ".jpeg": "image/jpeg", ".mp4": "video/mp4"}


class CommandError(Exception):
    """A clear message for the user; exit status 2 (1 is 'absent' or 'failed')."""


def to_json(value: Any) -> str:
    from panoptes_network.ports.documents import to_jsonable

    return json.dumps(to_jsonable(value), default=str, indent=2, sort_keys=True)


def _settings():
    from panoptes_network.config import settings

    try:
        return settings()
    except ValueError as error:
        raise CommandError(str(error)) from None


# --- commands ---------------------------------------------------------------------------


def command_up(args) -> int:
    from panoptes_network.stack import running
    from panoptes_network.stack.server import StackServer, print_urls

    os.environ[log.FORMAT_VARIABLE] = log.console_format(args.log_format, sys.stdout)  # workers inherit it
    settings = _settings()
    server = StackServer(settings, args.host, args.port)
    pool = None
    if settings.backend == "local":
        from panoptes_network.stack.dispatcher import WorkerPool

        pool = WorkerPool(args.workers)
        pool.start(until_idle=False)
        where = f"data directory {settings.data_dir}"
    else:
        from panoptes_network.stack.gcp import ensure_topology, using_emulators

        ensure_topology(settings, args.public_url or server.url)
        where = f"project {settings.project}" + (" on the emulators" if using_emulators() else " on Google Cloud")
    # Recorded so that drain, status and demo find this stack without being told.
    serving = running.record(settings, server.url, args.public_url or server.url)
    if not args.no_catalog:
        _load_catalog_once(settings, in_background=True)  # serving meanwhile: the load is seconds on its own
    print(f"PANOPTES Network is up ({settings.backend} backend, {where}):", flush=True)
    print_urls(server.url)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    print("Upload a frame with:  panoptes-network upload FILE.fits --as PAN001/14d3bd/20180216T110623/20180216T112430.fits",
          flush=True)
    _offer_demo(settings, args)
    _sweep_periodically(settings)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
    finally:
        running.forget(settings, serving)
        server.server.server_close()
        if pool:
            pool.stop()
    return 0


SWEEP_INTERVAL_SECONDS = 600.0  # `up` runs `process --pending` this often (PANOPTES_SWEEP_SECONDS)


def _sweep_periodically(settings) -> None:
    """`process --pending` every few minutes while `up` runs, as Cloud Scheduler does deployed."""
    import threading

    from panoptes_network import runtime
    from panoptes_network.pipeline import process

    interval = float(os.environ.get("PANOPTES_SWEEP_SECONDS", SWEEP_INTERVAL_SECONDS))

    def sweep() -> None:
        while True:
            time.sleep(interval)
            try:
                sent = process.publish(settings, process.pending(runtime.documents(settings)))
                if sent:
                    print(f"process --pending: {len(sent)} observation(s) sent for processing", flush=True)
            except Exception as error:  # the next sweep tries again; `up` keeps serving
                print(f"process --pending failed: {error!r}", file=sys.stderr, flush=True)

    threading.Thread(target=sweep, name="process-pending", daemon=True).start()


def command_process(args) -> int:
    from datetime import timedelta

    from panoptes_network import runtime
    from panoptes_network.pipeline import process

    settings = _settings()
    documents = runtime.documents(settings)
    params = None
    if args.params:
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError as error:
            raise CommandError(f"--params is not JSON: {error}") from None
    if args.all:
        chosen = process.every_observation(documents)
    elif args.pending:
        chosen = process.pending(documents, quiet=timedelta(minutes=args.quiet))
    else:
        chosen = list(args.sequence_ids)
        unknown = [s for s in chosen if documents.get("observations", s) is None]
        if unknown:
            raise CommandError(f"no such observation: {', '.join(unknown)}")
    if not chosen:
        raise CommandError("name observations (SEQUENCE_ID...), or give --pending or --all")
    sent = process.publish(settings, chosen, params)
    print(f"process: {len(sent)} observation(s) sent to {settings.process_observation_topic}")
    for sequence_id in sent:
        print(f"  {sequence_id}")
    if settings.backend == "local":
        print("`panoptes-network drain` (or a running `up`) processes them")
    return 0


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # stop as on Ctrl-C: close the server, stop the workers


def _load_catalog_once(settings, in_background: bool = False):
    """The bundled star catalog on the first start of the local backend (seconds); on gcp a hint.

    ``in_background``: a load still needed runs in a thread (returned) while ``up`` serves;
    one stopped half-way is resumed on the next start, as the load marker says."""
    import threading

    from panoptes_network import runtime, stars

    documents = runtime.documents(settings)
    source = stars.bundled_source()
    if settings.backend != "local":
        if not (stars.load_state(documents, source) or {}).get("complete"):
            print("No star catalog loaded yet: `panoptes-network catalog load` fills the stars collection.", flush=True)
        return None
    if not in_background:
        result = _load_catalog(documents, source, again=False)
        if not result.already_loaded:
            print(f"star catalog: {result.total} stars loaded into {stars.COLLECTION}", flush=True)
        return None
    if (stars.load_state(documents, source) or {}).get("complete"):
        return None

    def load():
        started = time.monotonic()
        try:
            result = stars.load(documents, source)
        except Exception as error:  # the stack serves on without it; the next start resumes the load
            print(f"star catalog: load failed ({error}); `panoptes-network catalog load` resumes it", flush=True)
            return
        if not result.already_loaded:
            print(f"star catalog: {result.total} stars loaded into {stars.COLLECTION} "
                  f"({time.monotonic() - started:.0f} s)", flush=True)

    print(f"star catalog: loading {source.description} into {stars.COLLECTION} in the background", flush=True)
    thread = threading.Thread(target=load, name="star-catalog-load", daemon=True)
    thread.start()
    return thread


def _load_catalog(documents, source, again: bool):
    from tqdm import tqdm

    from panoptes_network import stars

    bar = tqdm(total=source.total, unit="star", unit_scale=True, desc=f"stars: {source.description}",
               disable=None)
    try:
        return stars.load(documents, source, again=again,
                          progress=lambda done, total: bar.update(done - bar.n))
    finally:
        bar.close()


def command_catalog(args) -> int:
    from panoptes_network import runtime, stars

    settings = _settings()
    try:
        source = stars.tic_source(Path(args.tic)) if args.tic else stars.bundled_source()
    except stars.CatalogError as error:
        raise CommandError(str(error)) from None
    result = _load_catalog(runtime.documents(settings), source, again=args.again)
    if result.already_loaded:
        print(f"{source.description}: already loaded ({result.total} stars); --again loads it again")
    else:
        resumed = f", resumed after {result.resumed_from}" if result.resumed_from else ""
        print(f"{source.description}: {result.written} stars written into {stars.COLLECTION}{resumed}")
    return 0


def _offer_demo(settings, args) -> None:
    """On an empty data set, offer demo data (a prompt at a terminal, a hint otherwise)."""
    import threading

    from panoptes_network import runtime

    if runtime.documents(settings).count("observations"):
        return
    hint = "No observations yet: `panoptes-network demo` (or `make demo`) makes a demo data set."
    if not sys.stdin.isatty() or args.no_demo_prompt:
        print(hint, flush=True)
        return
    from panoptes_network.demo import DEFAULT_NIGHTS

    answer = input(f"No observations yet. Generate demo data (3 units, {DEFAULT_NIGHTS} nights, about 400 frames)? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        print(hint, flush=True)
        return
    # Uploaded while the server runs: its delivery workers take the frames through the pipeline.
    threading.Thread(target=_upload_demo, args=(settings, DEFAULT_NIGHTS, None), daemon=True).start()


def _upload_demo(settings, nights: int, seed: int | None, full_size: bool = False,
                 shape: tuple[int, int] | None = None, transits: int | None = None) -> int:
    from tqdm import tqdm

    from panoptes_network import demo, runtime

    raw = runtime.bucket(settings.raw_bucket, settings)
    progress = tqdm(unit="frame", desc="demo frames")

    def advance(done: int, total: int) -> None:
        progress.total = total
        progress.update(1)

    result = demo.generate(lambda path, data: raw.write(path, data, content_type="application/fits"),
                           nights=nights, seed=2016 if seed is None else seed, progress=advance,
                           full_size=full_size, shape=shape,
                           transits=demo.TRANSIT_SEQUENCES if transits is None else transits)
    progress.close()
    print(f"demo: {result.frames} frames of {result.sequences} sequences from {', '.join(result.units)}, "
          f"nights {result.first_night} to {result.last_night}, uploaded to gs://{settings.raw_bucket}", flush=True)
    return result.frames


def _frame_shape(text: str) -> tuple[int, int]:
    try:
        rows, columns = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROWSxCOLUMNS, e.g. 560x840, not {text!r}") from None
    if not (8 <= rows <= 3476 and 8 <= columns <= 5208):
        raise argparse.ArgumentTypeError("a frame is 8x8 to 3476x5208 pixels")
    return rows, columns


def command_demo(args) -> int:
    from panoptes_network.demo import DEFAULT_NIGHTS

    if args.nights is None:
        args.nights = DEFAULT_NIGHTS
    if args.nights < 1 or args.nights > 366:
        raise CommandError("--nights must be between 1 and 366")
    settings = _settings()
    if settings.backend == "gcp" and not args.no_drain:
        _stack_url(settings, args)  # before uploading: say now if nothing will deliver them

    def upload() -> None:
        _upload_demo(settings, args.nights, args.seed, args.full_size, args.frame_shape, args.transits)

    if args.no_drain or settings.backend != "local":
        upload()
        if args.no_drain:
            return 0
        status = command_drain(args)
    else:
        status = command_drain(args, during=upload)  # the local workers deliver while it uploads
    if status == 0:
        # The sweep `up` runs every few minutes, now: the demo's observations are in the
        # past, every frame recorded and solved; their lightcurves (and transits) follow.
        from datetime import timedelta

        from panoptes_network import runtime
        from panoptes_network.pipeline import process

        sent = process.publish(settings, process.pending(runtime.documents(settings), quiet=timedelta(0)))
        print(f"demo: {len(sent)} observation(s) sent to process-observation", flush=True)
        status = command_drain(args)
    return status


def _guess_content_type(path: str) -> str:
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def _path_for(file: Path) -> str:
    from panoptes_network import fits
    from panoptes_network.ids import InvalidPathError, bucket_path_from_header, split_extension

    extension = split_extension(file.name)[1]
    if not extension.lower().startswith((".fits", ".fz")):
        raise CommandError(f"{file}: only FITS headers can name a file; give its bucket path with --as")
    try:
        with file.open("rb") as handle:
            def read_range(start: int, end: int) -> bytes:
                handle.seek(start)
                return handle.read(end - start)

            header = fits.read_header(read_range).header
        return bucket_path_from_header(header, extension)
    except (fits.NotFitsError, InvalidPathError) as error:
        raise CommandError(f"{file}: {error}") from None


def command_upload(args) -> int:
    from panoptes_network import runtime

    files = [Path(name) for name in args.files]
    if args.as_path and len(files) != 1:
        raise CommandError("--as names one file; upload several files without it")
    for file in files:
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
    settings = _settings()
    plan = [(file, args.as_path or _path_for(file)) for file in files]
    bucket = runtime.bucket(settings.raw_bucket, settings)
    progress = None
    if len(plan) > 1:
        from tqdm import tqdm

        progress = tqdm(total=len(plan), unit="file", desc="uploading")
    for file, bucket_path in plan:
        info = bucket.write(bucket_path, file.read_bytes(), content_type=_guess_content_type(file.name))
        if progress:
            progress.update(1)
        else:
            print(f"uploaded {file} -> gs://{settings.raw_bucket}/{info.name} ({info.size} bytes)")
    if progress:
        progress.close()
        print(f"uploaded {len(plan)} files to gs://{settings.raw_bucket}")
    _hint_when_nothing_delivers(settings)
    return 0


def _deployed(settings) -> bool:
    """The gcp backend on Google Cloud itself, where the deployed services take the pushes."""
    if settings.backend != "gcp":
        return False  # and no need to load the Google client libraries
    from panoptes_network.stack.gcp import using_emulators

    return not using_emulators()


def _hint_when_nothing_delivers(settings) -> None:
    from panoptes_network.stack import running

    if _deployed(settings):
        return  # the services deliver, not a stack on this machine
    if running.find(settings) is None:
        also = " or `panoptes-network drain`" if settings.backend == "local" else ""
        print(f"note: no running stack delivers it yet; `panoptes-network up`{also} will", file=sys.stderr)


def _dead_letters_since(settings, since: datetime) -> list[dict]:
    from panoptes_network import deadletter, runtime

    found = runtime.documents(settings).query(deadletter.COLLECTION, [("time", ">=", since)], [("time", "asc")])
    return [{"id": doc.id, **doc.data} for doc in found]


def command_drain(args, during=None) -> int:
    """``during``: on the local backend, what publishes while the workers deliver (see dispatcher.drain)."""
    settings = _settings()
    started = datetime.now(timezone.utc)
    if settings.backend == "local":
        from panoptes_network.stack.dispatcher import drain

        finished = drain(args.timeout, args.workers, during=during)
    else:
        finished = _drain_gcp(settings, args)
    dead = _dead_letters_since(settings, started)
    for letter in dead:
        print(f"dead letter [{letter['service']}]: {letter['reason']}", file=sys.stderr)
    if not finished:
        print(f"drain: timed out after {args.timeout} s with messages still pending", file=sys.stderr)
        return 2
    if dead:
        print(f"drain: done; {len(dead)} message(s) went to dead letters", file=sys.stderr)
        return 1
    print("drain: done; every message delivered")
    return 0


def _stack_url(settings, args) -> str:
    """The running stack's address: --host/--port if given, else where `up` recorded it.
    Never a new stack: only `up` points Pub/Sub's pushes somewhere."""
    from panoptes_network.stack import running
    from panoptes_network.stack.server import fetch_status

    if args.port is not None or args.host is not None:
        base_url = f"http://{args.host or DEFAULT_HOST}:{args.port or DEFAULT_PORT}"
        if fetch_status(base_url) is None:
            raise CommandError(f"no stack answers at {base_url}; {running.START_HINT}, "
                               "or leave out --host/--port to use the one `up` recorded")
        return base_url
    found = running.find(settings)
    if found is None:
        raise CommandError(running.not_found_message(settings))
    return found.url


def _drain_gcp(settings, args) -> bool:
    """Pub/Sub pushes to the running stack; wait until it has nothing pending."""
    from panoptes_network.stack.server import fetch_status, wait_until_settled

    base_url = _stack_url(settings, args)
    return wait_until_settled(lambda: fetch_status(base_url, timeout=30), args.settle, args.timeout)


def command_doc(args) -> int:
    from panoptes_network import runtime

    collection, _, doc_id = args.path.partition("/")
    if not collection or not doc_id or "/" in doc_id:
        raise CommandError("give the document as COLLECTION/ID, e.g. images/PAN001_14d3bd_20180216T112430")
    try:
        data = runtime.documents(_settings()).get(collection, doc_id)
    except ValueError as error:
        raise CommandError(str(error)) from None
    if data is None:
        print(f"{args.path}: no such document", file=sys.stderr)
        return 1
    print(to_json(data))
    return 0


def command_ls(args) -> int:
    from panoptes_network import runtime

    settings = _settings()
    count = 0
    for info in runtime.bucket(args.bucket, settings).list(args.prefix or ""):
        updated = info.updated.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if info.updated else ""
        print(f"{info.size:>12}  {updated}  {info.name}")
        count += 1
    if count == 0:
        print(f"(gs://{args.bucket}/{args.prefix or ''} is empty)", file=sys.stderr)
    return 0


def command_status(args) -> int:
    from panoptes_network import deadletter, runtime
    from panoptes_network.pipeline.routing import QUARANTINE_PREFIX
    from panoptes_network.ports.documents import to_jsonable

    settings = _settings()
    print(f"backend: {settings.backend}" + (f" (data directory {settings.data_dir})" if settings.backend == "local" else
                                             f" (project {settings.project})"))
    _print_stack(settings)
    print("buckets:")
    for name in settings.buckets:
        objects = list(runtime.bucket(name, settings).list())
        print(f"  {name:24} {len(objects):>6} objects")
    documents = runtime.documents(settings)
    print("documents:")
    for collection in ("observations", "images", "units", deadletter.COLLECTION):
        print(f"  {collection:24} {documents.count(collection):>6}")
    if settings.backend == "local":
        counts = runtime.topics(settings).counts()
        print(f"queue: {counts.pending} pending, {counts.in_flight} in flight, {counts.done} delivered, "
              f"{counts.dead} gave up")
        for lease in runtime.topics(settings).leases():
            if lease.owner_gone:
                print(f"  {lease.deliveries} in flight held by process {lease.owner}, which is gone: "
                      "`up` or `drain` takes them back at once")
    letters = documents.query(deadletter.COLLECTION, order_by=[("time", "desc")], limit=args.limit)
    if letters:
        print("dead letters (newest first):")
        for letter in letters:
            print(f"  {to_jsonable(letter.data['time'])}  [{letter.data['service']}]  {letter.data['reason']}")
    quarantined = list(runtime.bucket(settings.temp_bucket, settings).list(QUARANTINE_PREFIX))
    if quarantined:
        print("quarantined:")
        for info in quarantined[: args.limit]:
            print(f"  gs://{settings.temp_bucket}/{info.name}: {info.metadata.get('quarantine_reason', '?')}")
    return 0


def _print_stack(settings) -> None:
    """Where the running stack serves and, on the gcp backend, where each push goes."""
    from panoptes_network.stack import running

    found = running.find(settings)
    if found:
        print(f"stack: up at {found.url} (pid {found.pid}, since {found.started})")
    elif _deployed(settings):
        print("stack: none on this machine (deployed, the services take the pushes)")
    else:
        print(f"stack: not running ({running.not_found_message(settings)})")
    if settings.backend != "gcp":
        return
    from panoptes_network.stack.gcp import current_push_endpoints, push_endpoints

    expected = push_endpoints(settings, found.push_url) if found else {}
    print("push subscriptions:")
    for name, endpoint in current_push_endpoints(settings).items():
        print(f"  {name:28} -> {endpoint or '(no push subscription)'}")
        if found and endpoint != expected[name]:
            print(f"  WARNING: {name} pushes to {endpoint or 'nowhere'}, not to the running stack "
                  f"({expected[name]}); restart `panoptes-network up` to point it back")


def command_reindex(args) -> int:
    from panoptes_network.pipeline.record import reindex_observations

    counts = reindex_observations(_settings())
    total = counts["observations"]
    print(f"{total} observation{'' if total == 1 else 's'}: {counts['updated']} given their sky index now, "
          f"{counts['without_position']} without a position (not searchable by cone)")
    return 0


def command_collect_dead_letters(args) -> int:
    settings = _settings()
    if settings.backend != "gcp":
        raise CommandError("the local backend records its dead letters itself; this is for Pub/Sub "
                           "(PANOPTES_BACKEND=gcp)")
    from google.api_core import exceptions as google_exceptions

    from panoptes_network import deadletter
    from panoptes_network.stack.gcp import collect_held_dead_letters

    try:
        moved = collect_held_dead_letters(settings)
    except google_exceptions.NotFound as error:
        raise CommandError(f"no dead-letter subscription to read ({error.message}); bin/deploy makes it") from None
    print(f"{moved} dead letter{'' if moved == 1 else 's'} moved from Pub/Sub into {deadletter.COLLECTION}")
    return 0


def command_redrive(args) -> int:
    from panoptes_network import redrive

    settings = _settings()
    try:
        since = redrive.parse_since(args.since) if args.since else None
    except ValueError as error:
        raise CommandError(str(error)) from None
    if settings.backend == "gcp":
        _collect_held(settings)
    outcomes = redrive.redrive(settings, service=args.service, since=since, dry_run=args.dry_run,
                               include_permanent=args.include_permanent, deployed=_deployed(settings))
    for outcome in outcomes:
        print(f"{outcome.action}: [{outcome.service}] {outcome.letter_id} {outcome.detail}",
              file=sys.stderr if outcome.action == redrive.SKIPPED else sys.stdout)
    sent = sum(outcome.action != redrive.SKIPPED for outcome in outcomes)
    verb = "would redrive" if args.dry_run else "redriven"
    print(f"redrive: {sent} dead letter{'' if sent == 1 else 's'} {verb}, "
          f"{len(outcomes) - sent} skipped")
    if sent and not args.dry_run and settings.backend == "local":
        print("`panoptes-network drain` (or a running `up`) delivers them")
    return 0


def _collect_held(settings) -> None:
    """What Pub/Sub still holds on the deployed dead-letter subscription, into dead_letters first."""
    from google.api_core import exceptions as google_exceptions

    from panoptes_network.stack.gcp import collect_held_dead_letters

    try:
        moved = collect_held_dead_letters(settings)
    except google_exceptions.NotFound:
        return  # no -held subscription: the local stack records dead letters as they come
    if moved:
        print(f"{moved} dead letter{'' if moved == 1 else 's'} collected from Pub/Sub first")


def command_reconcile(args) -> int:
    from datetime import timedelta

    from panoptes_network import reconcile

    settings = _settings()
    report = reconcile.reconcile(settings, fix=args.fix, min_age=timedelta(seconds=args.min_age))
    print(f"reconcile: checked {report.checked} objects and documents")
    for gap in report.gaps:
        print(f"  {gap.kind:18} {gap.subject}: {gap.detail}")
    for gap, outcome in report.fixed:
        print(f"  fixed {gap.kind:12} {gap.subject}: {outcome}")
    if not report.gaps:
        print("reconcile: no gaps")
        return 0
    kinds = ", ".join(f"{sum(gap.kind == kind for gap in report.gaps)} {kind}"
                      for kind in dict.fromkeys(gap.kind for gap in report.gaps))
    print(f"reconcile: {len(report.gaps)} gap{'' if len(report.gaps) == 1 else 's'} ({kinds})"
          + ("; fixed" if args.fix else "; `panoptes-network reconcile --fix` closes them"))
    if args.fix and settings.backend == "local":
        print("`panoptes-network drain` (or a running `up`) delivers the events it sent again")
    return 0 if args.fix else 1


def command_emulators(args) -> int:
    from panoptes_network.stack.emulators import EmulatorError, Emulators

    emulators = Emulators(project=args.project)
    try:
        environment = emulators.start()
    except EmulatorError as error:
        raise CommandError(str(error)) from None
    print("# The emulators are running. In another shell:")
    print("export PANOPTES_BACKEND=gcp")
    for key, value in environment.items():
        print(f"export {key}={value}")
    print("# then: panoptes-network up   (Ctrl-C here stops the emulators)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulators.stop()
    return 0


# --- parsing ----------------------------------------------------------------------------


def _draining(timeout: float) -> argparse.ArgumentParser:
    """The options of `drain`, and of `demo`, which drains after uploading: command_drain reads them all."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--timeout", type=float, default=timeout, help=f"give up after S seconds (default {timeout:g})")
    options.add_argument("--workers", type=int, help="delivery worker processes (default: one per core)")
    options.add_argument("--host", help="gcp backend: the stack's address (default: where `up` recorded it)")
    options.add_argument("--port", type=int, help="gcp backend: the stack's port (default: where `up` recorded it)")
    options.add_argument("--settle", type=float, default=1.0,
                         help="gcp backend: seconds with nothing pending that mean done (default 1)")
    return options


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="the local backend's data directory (default ./panoptes-data or "
                                           "$PANOPTES_DATA_DIR)")
    parser = argparse.ArgumentParser(prog="panoptes-network", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", parents=[common], help="serve every service and deliver messages")
    up.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: loopback only)")
    up.add_argument("--port", type=int, default=DEFAULT_PORT)
    up.add_argument("--workers", type=int, help="delivery worker processes (default: one per core)")
    up.add_argument("--public-url", help="gcp backend: the URL Pub/Sub pushes to (default http://HOST:PORT)")
    up.add_argument("--no-demo-prompt", action="store_true", help="never ask to generate demo data")
    up.add_argument("--log-format", choices=log.FORMATS,
                    help="one JSON line per event, or one short human line (default: text at a terminal, else json)")
    up.add_argument("--no-catalog", action="store_true", help="skip loading the bundled star catalog on a first start")
    up.set_defaults(run=command_up)

    demo = commands.add_parser("demo", parents=[common, _draining(timeout=900.0)], help="generate demo frames and run them through the pipeline")
    demo.add_argument("--nights", type=int, default=None,
                      help="nights of observing at each site (default 2)")
    demo.add_argument("--seed", type=int, help="for a different (but repeatable) demo data set")
    demo.add_argument("--no-drain", action="store_true", help="upload only; a running `up` delivers them")
    demo.add_argument("--transits", type=int, metavar="N",
                      help="sequences on hot-Jupiter hosts with their transit injected (default 1)")
    demo.add_argument("--full-size", action="store_true", help="whole 5208x3476 frames (36 MB each) instead of cut-outs")
    demo.add_argument("--frame-shape", type=_frame_shape, metavar="ROWSxCOLUMNS",
                      help="cut-outs of this many pixels (default 560x840, 2.4x1.6 deg)")
    demo.set_defaults(run=command_demo)

    upload = commands.add_parser("upload", parents=[common], help="put files into the raw bucket")
    upload.add_argument("files", nargs="+", metavar="FILE")
    upload.add_argument("--as", dest="as_path", metavar="BUCKET_PATH",
                        help="the bucket path, e.g. PAN001/14d3bd/20180216T110623/20180216T112430.fits")
    upload.set_defaults(run=command_upload)

    drain = commands.add_parser("drain", parents=[common, _draining(timeout=600.0)],
                                help="deliver everything queued, then report")
    drain.set_defaults(run=command_drain)

    doc = commands.add_parser("doc", parents=[common], help="print one document as JSON")
    doc.add_argument("path", metavar="COLLECTION/ID")
    doc.set_defaults(run=command_doc)

    status = commands.add_parser("status", parents=[common], help="what is where")
    status.add_argument("--limit", type=int, default=20, help="dead letters and quarantined files to list")
    status.set_defaults(run=command_status)

    ls = commands.add_parser("ls", parents=[common], help="list a bucket")
    ls.add_argument("bucket")
    ls.add_argument("prefix", nargs="?")
    ls.set_defaults(run=command_ls)

    reindex = commands.add_parser("reindex", parents=[common],
                                  help="give observations recorded before the sky index existed their index")
    reindex.set_defaults(run=command_reindex)

    collect = commands.add_parser("collect-dead-letters", parents=[common],
                                  help="gcp backend: move what Pub/Sub dead-lettered into the dead_letters collection")
    collect.set_defaults(run=command_collect_dead_letters)

    redrive = commands.add_parser("redrive", parents=[common],
                                  help="publish dead-lettered messages again, once their cause is fixed")
    redrive.add_argument("--service", help="only the dead letters of this service (or subscription)")
    redrive.add_argument("--since", help="only those recorded since: an ISO 8601 time or an age (90m, 2h, 1d)")
    redrive.add_argument("--dry-run", action="store_true", help="list what would be redriven, publish nothing")
    redrive.add_argument("--include-permanent", action="store_true",
                         help="also what a handler refused (not FITS, bad path), e.g. after fixing the handler")
    redrive.set_defaults(run=command_redrive)

    reconcile = commands.add_parser("reconcile", parents=[common],
                                    help="compare the raw bucket with the documents; --fix closes the gaps")
    reconcile.add_argument("--fix", action="store_true",
                           help="route the files again (compress, record) and recompute wrong counts")
    reconcile.add_argument("--min-age", type=float, default=900.0,
                           help="seconds: younger files may be in flight, not gaps (default 900)")
    reconcile.set_defaults(run=command_reconcile)
    catalog = commands.add_parser("catalog", help="the star catalog").add_subparsers(
        dest="catalog_command", required=True, metavar="COMMAND")
    catalog_load = catalog.add_parser("load", parents=[common], help="fill the stars collection (resumes a "
                                                                     "load that stopped)")
    catalog_load.add_argument("--tic", metavar="FILE.csv", help="a TIC export as MAST writes it (default: the "
                                                                "bundled Gaia DR3 catalog)")
    catalog_load.add_argument("--again", action="store_true", help="load it again even if it was loaded")
    catalog_load.set_defaults(run=command_catalog)

    process_ = commands.add_parser("process", parents=[common],
                                   help="process observations into lightcurves (process-observation)")
    process_.add_argument("sequence_ids", nargs="*", metavar="SEQUENCE_ID")
    process_.add_argument("--pending", action="store_true",
                          help="every observation ready: frames solved, quiet for --quiet minutes, new frames")
    process_.add_argument("--all", action="store_true", help="every observation (re-process the archive)")
    process_.add_argument("--quiet", type=float, default=60.0,
                          help="minutes since an observation's last image before --pending takes it (default 60)")
    process_.add_argument("--params", help="photometry parameters as a JSON object, e.g. '{\"min_frames\": 5}'")
    process_.set_defaults(run=command_process)

    emulators = commands.add_parser("emulators", help="start the Firestore, Pub/Sub and Storage emulators")
    emulators.add_argument("--project", default="panoptes-local")
    emulators.set_defaults(run=command_emulators)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "data_dir", None):
        os.environ["PANOPTES_DATA_DIR"] = str(Path(args.data_dir).expanduser().absolute())
    try:
        return args.run(args)
    except CommandError as error:
        print(f"panoptes-network {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
