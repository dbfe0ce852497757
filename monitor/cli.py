"""`crisiswatch` command line: run, check-config, backtest, sentiment, oncall.

Exit codes: 0 ok, 1 runtime failure (one line on stderr; ``-v`` adds the traceback), 2 bad
usage or bad config (one line on stderr naming the config path and value), 130 interrupted,
141 stdout closed early (``crisiswatch sentiment < big.txt | head -1``), quietly, as a shell
reports a filter that SIGPIPE ended.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import math
import os
import resource
import signal
import sys
from pathlib import Path
from typing import TextIO

from monitor.config import Config, load_config
from monitor.config.detection import DetectionConfig
from monitor.errors import ConfigError, CrisiswatchError

DEFAULT_CONFIG = Path("config") / "default.yaml"
EXIT_SIGPIPE = 128 + signal.SIGPIPE

log = logging.getLogger(__name__)


def default_config() -> Path | None:
    """``config/default.yaml`` of the working directory, else of the checkout this package
    runs from, so a command gives the same results from any directory; None for neither."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (base / DEFAULT_CONFIG).is_file():
            return base / DEFAULT_CONFIG
    return None


def _load(arg: str | None) -> Config:
    path = arg or default_config()
    if path is None:
        raise ConfigError(str(DEFAULT_CONFIG), "not found here or in the checkout; pass --config")
    return load_config(path)


def clock_speed(config: Config, override: float | None) -> float:
    """How much faster than the wall clock the service's clock runs: ``--speed``, else the
    demo's ``speed`` while the demo is on, else 1 (real time).

    A disabled demo's speed must not apply: real mentions, dated by the real clock, would all
    arrive as late to a service that runs ahead of it.

    >>> from monitor.config import parse_config
    >>> demo = {"topics": [], "sources": {"demo": {"enabled": True, "speed": 10.0}}}
    >>> off = {"topics": [], "sources": {"demo": {"enabled": False, "speed": 10.0}}}
    >>> clock_speed(parse_config(demo), None), clock_speed(parse_config(off), None)
    (10.0, 1.0)
    >>> clock_speed(parse_config(off), 60.0)
    60.0
    """
    if override is not None:
        return override
    return config.sources.demo.speed if config.sources.demo.enabled else 1.0


def live_sources(config: Config) -> list[str]:
    """The enabled sections whose mentions are dated by the real clock (not demo or replay)."""
    s = config.sources
    enabled = {"mqtt": s.mqtt.enabled, "http": s.http.enabled, "meta": s.meta.enabled,
               "jetstream": s.jetstream.enabled, "mastodon": s.mastodon.enabled,
               "rss": s.rss.enabled}  # fmt: skip
    return [name for name, on in enabled.items() if on]


def _std(name: str) -> TextIO:
    """``sys.stdin`` or ``sys.stdout``; Python makes them None when the shell started the
    command with them closed (``<&-``, ``>&-``), which is how it was called: bad usage."""
    stream: TextIO | None = getattr(sys, name)
    if stream is None:
        raise ConfigError(name, "closed; give this command a file or a pipe there")
    return stream


def version() -> str:
    try:
        return importlib.metadata.version("crisiswatch")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        return "unknown (not installed)"


def open_files_limit() -> int:
    """Raise the soft limit of open files to the hard one, and return it: every wall, webhook
    client and ingest connection holds a descriptor, and at the usual soft 1,024 a flood of
    connections that never finish their request took the whole service down (QA; put a
    reverse proxy with timeouts in front of a public endpoint, docs/collectors.md)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # a container that forbids it: keep what we have
            return soft
        return hard
    return soft


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.app import serve
    from monitor.clock import Clock, ScaledClock, SystemClock

    config = _load(args.config)
    if args.speed is not None and not (math.isfinite(args.speed) and args.speed > 0):
        raise ConfigError("--speed", "must be a positive number", args.speed)
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ConfigError("--port", "must be in 0..65535", args.port)
    speed = clock_speed(config, args.speed)
    if speed != 1 and (live := live_sources(config)):
        log.warning(
            "the clock runs %gx faster than real time: mentions from %s, dated by the real "
            "clock, will arrive as late (run live sources at --speed 1)",
            speed,
            ", ".join(f"sources.{name}" for name in live),
        )
    if args.port is not None:
        config = config.model_copy(
            update={"server": config.server.model_copy(update={"port": args.port})}
        )
    clock: Clock = SystemClock() if speed == 1 else ScaledClock(SystemClock(), speed)
    open_files_limit()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, clock, stop)

    asyncio.run(main())
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.path)
    if args.secrets:
        from monitor.config.receivers import secret, secret_refs
        from monitor.config.sources import source_secret_refs

        # what `run` resolves at start-up (delivery: required) and what the enabled sources
        # need to work (`run` starts without them, the feature off); off by default, since
        # the file is often checked where the secrets are not (CI, a laptop). Every missing
        # one, not the first: a pre-flight check is run to fix them all at once
        problems: list[str] = []
        for path, name in [*secret_refs(config.delivery), *source_secret_refs(config.sources)]:
            try:
                secret(os.environ, name, path)
            except ConfigError as exc:
                problems.append(f"error: {exc}")
        if problems:
            print(*problems, sep="\n", file=sys.stderr)
            return 2
    from monitor.collectors.registry import lateness_warnings

    agg = config.aggregation
    for warning in lateness_warnings(config.sources, agg.watermark_seconds, agg.bucket_seconds):
        print(f"warning: {warning}", file=sys.stderr)  # valid, but it will lose data
    n = len(config.topics)
    print(f"{args.path}: ok ({n} topic{'' if n == 1 else 's'})")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from detectors.backtest import run_backtest

    if args.config is None:
        # the frozen default, whatever the working directory: config/default.yaml tunes the
        # demo (a 1 h warm-up for its 3 h backfill, 2 h of calm), which would make a backtest
        # of someone else's series a statement about the demo, not about the detectors
        detection = DetectionConfig()
        print(
            "config: the built-in frozen detection default (--config for a file's)", file=sys.stderr
        )
    else:
        detection = load_config(args.config).detection
        print(f"config: {args.config}", file=sys.stderr)
    labels = Path(args.labels) if args.labels else None
    if labels is not None:
        _std("stdout")  # where the scores go: fail before the work, not lose it silently
    out = Path(args.out)
    inputs: list[Path] = []
    # DIR/<same basename>: two inputs of one name would overwrite each other's result, and
    # `--out` the inputs' own folder would overwrite the data itself
    seen: dict[str, Path] = {}
    for p in map(Path, args.series):
        if p.name in seen:
            if seen[p.name].resolve() == p.resolve():
                # scored twice, one file would weigh double in the NAB totals
                print(f"note: {p}: given twice, scored once", file=sys.stderr)
                continue
            print(f"error: {p}: same file name as {seen[p.name]}; both results would be"
                  f" {out / p.name}", file=sys.stderr)  # fmt: skip
            return 2
        seen[p.name] = p
        if (out / p.name).resolve() == p.resolve():
            print(f"error: {p}: --out {out} would overwrite this input", file=sys.stderr)
            return 2
        inputs.append(p)
    return run_backtest(inputs, out, detection, labels, sys.stderr)


def cmd_sentiment(args: argparse.Namespace) -> int:
    from monitor.enrich.cli import run_sentiment

    return run_sentiment(args.lang, _std("stdin"), _std("stdout"))


def cmd_oncall(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from alerting.oncall import parse_at, run_oncall

    config = _load(args.config)
    at = None
    if args.at is not None:
        try:
            at = parse_at(args.at, ZoneInfo(config.alerting.timezone))
        except ValueError as exc:
            reason = str(exc) if str(exc).startswith("year") else "expected an ISO 8601 time"
            raise ConfigError("--at", reason, args.at) from None
    return run_oncall(config.alerting, at, _std("stdout"))


EXIT_CODES = """exit codes: 0 ok; 1 a runtime failure (one line on stderr; -v adds the traceback);
2 bad usage, config or input (one line naming the path and value); 130 interrupted"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="crisiswatch", description=__doc__.splitlines()[0], epilog=EXIT_CODES
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging and tracebacks")
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    # -v after the command too (`crisiswatch check-config -v x.yaml` was "unrecognized"); SUPPRESS
    # keeps a command's own default from undoing a -v given before it
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, what: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=what, parents=[verbose], epilog=EXIT_CODES)

    r = command("run", "run the service")
    r.add_argument("--config", help="default: config/default.yaml")
    r.add_argument(
        "--speed",
        type=float,
        help="speed of the service's clock, live sources included (default: the demo's"
        " sources.demo.speed when the demo is on, else 1 = real time)",
    )
    r.add_argument("--port", type=int, help="override server.port")
    r.set_defaults(fn=cmd_run)

    c = command("check-config", "validate a config file")
    c.add_argument("path", help="the YAML config to check")
    c.add_argument(
        "--secrets",
        action="store_true",
        help="also resolve the secrets (*_env) of delivery and of the enabled sources",
    )
    c.set_defaults(fn=cmd_check_config)

    b = command("backtest", "run the live detector stack over NAB-format CSVs")
    b.add_argument("series", nargs="+", metavar="SERIES.csv", help="timestamp,value per row")
    b.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="where DIR/<same basename> gets timestamp,value,anomaly_score,alert",
    )
    b.add_argument(
        "--config",
        help="a config whose detection: block to use (default: the built-in frozen default)",
    )
    b.add_argument(
        "--labels",
        metavar="WINDOWS.json",
        help="NAB label windows (keys dir/file.csv): also print the NAB scores",
    )
    b.set_defaults(fn=cmd_backtest)

    s = command("sentiment", "label texts from stdin, one per line")
    s.add_argument("--lang", choices=["auto", "en", "de"], default="auto")
    s.set_defaults(fn=cmd_sentiment)

    o = command("oncall", "print who is on call")
    o.add_argument("--config", help="default: config/default.yaml")
    o.add_argument("--at", help="ISO 8601 time, local to alerting.timezone without offset")
    o.set_defaults(fn=cmd_oncall)
    return p


def main(argv: list[str] | None = None) -> int:
    # The service scores small batches; a multi-threaded BLAS only adds contention on small
    # machines (measured ~10x slower on 2 cores). Commands import numpy lazily, after this.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code = int(args.fn(args))
        if sys.stdout is not None:
            sys.stdout.flush()  # here, not at exit, so that a closed pipe is seen below
        return code
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): the output is not wanted, which is no error to
        # report. Python flushes stdout once more at exit; point it at /dev/null so that
        # flush cannot fail again ("Exception ignored ... BrokenPipeError").
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # stdout without a descriptor (embedded, tests)
            pass
        return EXIT_SIGPIPE
    except (CrisiswatchError, OSError) as exc:
        # raised on purpose with a message that says what is wrong (a missing sentiment
        # model), or the system refused (a port in use, a full disk): no traceback needed
        log.debug("traceback", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
