"""CT log benchmark: Trillian vs TesseraCT — invoke tasks.

Each task is a thin wrapper around one module in scripts/ (which also runs alone as `python -m
scripts.<name>`). Defaults live in scripts/config.py and are exposed here as the `bench` config
namespace, so invoke.yaml (`bench: {qps: 500}`), INVOKE_BENCH_QPS=500 and --qps 500 all work, in
that order of precedence. Exit codes: 0 ok, 1 a run or system failed, 2 bad input, 130 interrupted.
"""
from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from pathlib import Path

from invoke import Collection, Config, Exit, task
from invoke.exceptions import ParseError
from invoke.parser import Parser

from scripts import config
from scripts.errors import EXIT_BAD_INPUT, HarnessError, Interrupted, one_line

# Bad usage (unknown flag, missing value) is exit 2, like every other bad input.
_parse_argv = Parser.parse_argv


def _parse_argv_exit2(self, argv):
    try:
        return _parse_argv(self, argv)
    except ParseError as exc:
        raise Exit(f"error: {one_line(exc)}", code=EXIT_BAD_INPUT) from None


Parser.parse_argv = _parse_argv_exit2  # type: ignore[method-assign]


def _config_errors_exit2(method, source: str):
    """A malformed, missing or wrong-typed invoke config (runtime file `-f`, INVOKE_* env vars, merged
    config) is bad input: one line and exit 2, not invoke's traceback (or, for a missing `-f`, silence)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        path = getattr(self, "_runtime_path", None) if source == "runtime" else None
        if path and not os.path.isfile(path):
            raise Exit(f"error: invoke config file {path}: not found", code=EXIT_BAD_INPUT)
        try:
            return method(self, *args, **kwargs)
        except Exit:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever invoke or YAML raise while loading config
            where = {"runtime": f"invoke config file {path}",
                     "env": "environment " + ", ".join(f"{k}={v!r}" for k, v in sorted(os.environ.items())
                                                      if k.startswith("INVOKE_")),
                     "merge": "invoke config"}
            detail = ("a setting has the wrong type (`bench:` must be a mapping of setting names to values)"
                      if source == "merge" else one_line(exc)[:200])
            raise Exit(f"error: {where[source]}: {detail}", code=EXIT_BAD_INPUT) from None

    return wrapper


Config.load_runtime = _config_errors_exit2(Config.load_runtime, "runtime")  # type: ignore[method-assign]
Config.load_shell_env = _config_errors_exit2(Config.load_shell_env, "env")  # type: ignore[method-assign]
Config.load_collection = _config_errors_exit2(Config.load_collection, "merge")  # type: ignore[method-assign]

HELP = {
    "target": "where to run: local (default), gke or ssh",
    "systems": "comma-separated systems: trillian,tesseract (default both)",
    "tier": "cost/size tier from costs.json: small, medium or large",
    "tiers": "gke: several tiers one after another for a scaling table, e.g. small,medium,large",
    "qps": "offered write rate per system, entries/s",
    "duration": "measured window, seconds (warmup not included)",
    "warmup": "seconds of load before the window starts (not measured)",
    "loadgen": "native (upstream hammers) or uniform (the project's own open-loop generator)",
    "max_in_flight": "uniform generator: cap on outstanding requests",
    "repeats": "repeat the measurement N times (median and spread reported)",
    "host": "ssh target: user@host to deploy on",
    "loadgen_host": "ssh target: user@host that runs the load generator (default: this machine)",
    "project": "gke target: Google Cloud project id (default: $GOOGLE_CLOUD_PROJECT)",
    "region": "gke target: region",
    "dry_run": "print what would be done, change nothing",
    "install_mariadb": "ssh target: apt-get install MariaDB on the host when it is missing (needs root or sudo)",
    "results": "results JSON or run directory (default: results/latest)",
    "find_max": "raise the offered rate per system until the log stops keeping up; report the maximum sustainable QPS",
    "qps_levels": "sweep offered rates: e.g. 50,100,200, or auto (0.5x, 1x, 2x, 4x --qps)",
}


def _settings(c, **flags) -> config.Settings:
    return config.settings(dict(c.config.get("bench", {})), **flags)


def _sigterm(_signum, _frame):
    raise Interrupted("terminated (SIGTERM)")


def _before_any_task(signum, _frame):
    # Outside a task (still parsing, or between two chained tasks) nothing of this step is running:
    # leave at once with the interrupt code, not a KeyboardInterrupt traceback from invoke or a bare
    # death by SIGTERM (exit -15).
    print(f"error: interrupted ({signal.Signals(signum).name}) before a task started; nothing to stop",
          file=sys.stderr)
    raise SystemExit(130)


if Path(sys.argv[0]).name in ("inv", "invoke") or Path(sys.argv[0]).parent.name == "invoke":
    signal.signal(signal.SIGINT, _before_any_task)   # only under the CLI, never in an importing test run
    signal.signal(signal.SIGTERM, _before_any_task)


def harness(fn):
    """Turn HarnessError into one line + exit code; SIGINT/SIGTERM into exit 130 after cleanup."""

    @functools.wraps(fn)
    def wrapper(c, *args, **kwargs):
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        previous = signal.signal(signal.SIGTERM, _sigterm)
        previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt: cleanup runs
        try:
            return fn(c, *args, **kwargs)
        except HarnessError as exc:
            raise Exit(f"error: {one_line(exc)}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("error: interrupted; everything this step started was stopped", code=130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
            sys.stdout.flush()

    return wrapper


def step(name: str | None = None):
    """@task with help for every flag (from HELP) and the harness's error/interrupt handling."""

    def decorate(fn):
        import inspect
        params = [p for p in inspect.signature(fn).parameters if p != "c"]
        wrapped = harness(fn)
        options = {"help": {p: HELP[p] for p in params}, "auto_shortflags": False}
        return task(name=name, **options)(wrapped) if name else task(**options)(wrapped)

    return decorate


def _dispatch(settings: config.Settings):
    if settings.target == "gke":
        from scripts import gke
        return gke
    if settings.target == "ssh":
        from scripts import remote
        return remote
    return None


def _opts(settings: config.Settings, *, tiers: str | None = None, duration_given: bool = False,
          install_mariadb: bool = False) -> dict:
    """The plain dict the gke/ssh modules take."""
    from scripts import paths
    d = settings.as_dict()
    d["tiers"] = config.parse_tiers(tiers) if tiers else [settings.tier]
    d["run_dir"] = paths.RESULTS_DIR
    d["install_mariadb"] = install_mariadb
    d["duration_explicit"] = duration_given  # gke's default window is 900 s unless --duration was given
    return d


@step()
def bootstrap(c, target=None, dry_run=False):
    """Build the pinned upstream binaries, make sure MariaDB exists, generate the test PKI (idempotent)."""
    s = _settings(c, target=target, dry_run=dry_run)
    module = _dispatch(s)
    if module is not None:
        module.bootstrap(_opts(s))
        return
    from scripts import bootstrap as mod
    summary = mod.bootstrap()
    for name, what in summary["tools"].items():
        print(f"tools/{name}: {what}")
    print(f"bootstrap: go {summary['go']}, mariadb {summary['mariadb']}, PKI "
          f"{'generated' if summary['pki_regenerated'] else 'kept'} in {summary['pki']} ({summary['seconds']}s)")


@step()
def deploy(c, target=None, systems=None, tier=None, project=None, region=None, host=None, dry_run=False, tiers=None,
           install_mariadb=False):
    """Start both logs (local: MariaDB, Trillian, CTFE, TesseraCT on 127.0.0.1) and record their state."""
    s = _settings(c, target=target, systems=systems, tier=tier, project=project, region=region, host=host,
                  dry_run=dry_run)
    module = _dispatch(s)
    if module is not None:
        module.deploy(_opts(s, tiers=tiers, install_mariadb=install_mariadb))
        return
    from scripts import deploy as mod
    st = mod.deploy(s)
    print("\n".join(mod.describe(st)))
    print(f"deploy: up in {st['deploy_seconds']}s")


@step()
def smoke(c, target=None, systems=None, project=None, host=None, tiers=None):
    """Submit unique chains to each deployed log; require verified SCTs and signed-tree growth."""
    s = _settings(c, target=target, systems=systems, project=project, host=host)
    module = _dispatch(s)
    if module is not None:
        module.smoke(_opts(s, tiers=tiers))
        return
    from scripts import smoke as mod
    mod.smoke(s.systems if systems else None)


@step()
def hammer(c, target=None, systems=None, tier=None, qps=None, duration=None, warmup=None, loadgen=None,
           max_in_flight=None, repeats=None, project=None, host=None, find_max=False, qps_levels=None, tiers=None):
    """Load each deployed log in turn and measure integrated QPS (writes results/<run-id>/)."""
    s = _settings(c, target=target, systems=systems, tier=tier, qps=qps, duration=duration, warmup=warmup,
                  loadgen=loadgen, max_in_flight=max_in_flight, repeats=repeats, project=project, host=host,
                  find_max=find_max, qps_levels=qps_levels)
    module = _dispatch(s)
    if module is not None:
        module.bench(_opts(s, tiers=tiers, duration_given=duration is not None))
        return
    from scripts import bench as mod
    doc = mod.hammer_phase(s)
    c.config["_last_run"] = doc["run_id"]
    _fail_if_failed(doc)


@step()
def metrics(c, results=None, target=None, project=None, tiers=None):
    """Add per-component CPU/memory, generator load and costs to the latest run; print the summary."""
    s = _settings(c, target=target, project=project)
    module = _dispatch(s)
    if module is not None:
        module.metrics(_opts(s, tiers=tiers))
        return
    from scripts import bench as mod, results as res
    doc = mod.metrics_phase(res.load(results))
    _fail_if_failed(doc)


def _fail_if_failed(doc) -> None:
    from scripts import bench as mod
    mod.check_status(doc)


@step()
def bench(c, target=None, systems=None, tier=None, qps=None, duration=None, warmup=None, loadgen=None,
          max_in_flight=None, repeats=None, project=None, host=None, loadgen_host=None, find_max=False,
          qps_levels=None, tiers=None):
    """smoke -> hammer -> metrics: one measured run per system, results in results/<run-id>/."""
    s = _settings(c, target=target, systems=systems, tier=tier, qps=qps, duration=duration, warmup=warmup,
                  loadgen=loadgen, max_in_flight=max_in_flight, repeats=repeats, project=project, host=host,
                  loadgen_host=loadgen_host, find_max=find_max, qps_levels=qps_levels)
    module = _dispatch(s)
    if module is not None:
        module.bench(_opts(s, tiers=tiers, duration_given=duration is not None))
        return
    from scripts import bench as mod
    doc = mod.bench(s)
    _fail_if_failed(doc)


@step(name="update-readme")
def update_readme(c, results=None):
    """Render the results table into README.md between its BENCHMARK-RESULTS markers."""
    from scripts import results as res, update_readme as mod
    print(f"README updated: {mod.update_readme(res.load(results))}")


@step()
def report(c, results=None):
    """update-readme plus the pull-request body (results/<run-id>/pr_body.md), from the results JSON."""
    from scripts import update_readme as mod
    mod.report(results_path=results)


@step()
def down(c, target=None, tier=None, project=None, host=None, dry_run=False, tiers=None):
    """Stop everything this project started (by pid); keeps results and logs; safe to repeat."""
    s = _settings(c, target=target, tier=tier, project=project, host=host, dry_run=dry_run)
    module = _dispatch(s)
    if module is not None:
        module.down(_opts(s, tiers=tiers))
        return
    from scripts import down as mod
    mod.down()


@step()
def ci(c, target=None, systems=None, tier=None, qps=None, duration=None, warmup=None, loadgen=None,
       max_in_flight=None, repeats=None, project=None, host=None, loadgen_host=None, dry_run=False, find_max=False,
       qps_levels=None, tiers=None, install_mariadb=False):
    """deploy -> bench -> report, with down always run; non-zero exit when any system failed."""
    s = _settings(c, target=target, systems=systems, tier=tier, qps=qps, duration=duration, warmup=warmup,
                  loadgen=loadgen, max_in_flight=max_in_flight, repeats=repeats, project=project, host=host,
                  loadgen_host=loadgen_host, dry_run=dry_run, find_max=find_max, qps_levels=qps_levels)
    module = _dispatch(s)
    if module is not None and hasattr(module, "ci"):
        module.ci(_opts(s, tiers=tiers, duration_given=duration is not None, install_mariadb=install_mariadb))
        return
    from scripts import bench as bench_mod, deploy as deploy_mod, down as down_mod, update_readme as report_mod
    from scripts import results as results_mod
    from scripts.errors import RunFailed
    doc, cleanup_error = None, None
    try:
        st = deploy_mod.deploy(s)
        print(f"deploy: up in {st['deploy_seconds']}s")
        doc = bench_mod.bench(s)
    finally:
        # Teardown before publishing, so a rendering error cannot leave processes running. A teardown that
        # fails must neither hide the run's own error nor lose its results: down marks them instead.
        try:
            down_mod.down()
        except RunFailed as exc:
            cleanup_error = exc
            print(f"error: {one_line(exc)}", file=sys.stderr)
    if cleanup_error is not None:
        doc = results_mod.load(results_mod.run_dir(doc))  # now `cleanup failed`, listing what still runs
    report_mod.report(doc)
    _fail_if_failed(doc)
    if cleanup_error is not None:
        raise cleanup_error


ns = Collection(bootstrap, deploy, smoke, hammer, metrics, bench, update_readme, report, down, ci)
ns.configure({"bench": dict(config.DEFAULTS)})
