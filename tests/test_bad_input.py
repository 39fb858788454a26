"""Bad input (issue 5 §4): every CLI flag and input file, malformed, missing, wrong-typed, out of range.

Every case runs the real `inv` command line in private dirs and requires: exit code 2 (not 1, which
means a run failed), exactly one line on stderr that starts with `error:` and names the problem, no
traceback, and nothing overwritten — the README copy, the results tree and the state file are
byte-identical afterwards. The table of cases and the messages they produced is written to
docs/bad_input_cases.md when the whole module has run and passed (`pytest tests/test_bad_input.py`).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from tests import faultkit as fk

REPO = fk.REPO
GOOD_RESULTS = REPO / "tests" / "data" / "results" / "ok_native.json"
TABLE = REPO / "docs" / "bad_input_cases.md"


@dataclass
class Case:
    id: str
    input: str                  # what is bad: a flag, a file
    value: str                  # how it is bad, as shown in the table
    args: list[str]             # inv argv
    expect: str                 # a fragment the one-line message must contain (regex)
    setup: Callable[[Path, dict], None] | None = None   # prepares files; may change env
    env: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- flags

FLAG_CASES: list[Case] = []


def _flag(task: str, flag: str, value: str | None, expect: str, label: str) -> None:
    args = [task, f"--{flag}"] + ([value] if value is not None else [])
    FLAG_CASES.append(Case(f"{task}-{flag}-{label}", f"`inv {task} --{flag}`",
                           "(no value)" if value is None else repr(value), args, expect))


for task in ("hammer", "bench", "ci"):
    _flag(task, "qps", "abc", r"--qps: expected a number", "text")
    _flag(task, "qps", "0", r"--qps: '0' is out of range", "zero")
_flag("hammer", "qps", "-5", r"--qps: '-5' is out of range", "negative")
_flag("hammer", "qps", "2e9", r"--qps: '2e9' is out of range", "huge")
_flag("hammer", "qps", "nan", r"--qps: expected a finite number", "nan")
_flag("hammer", "qps", "inf", r"--qps: expected a finite number", "inf")
_flag("hammer", "qps", None, r"qps.*needed value", "missing")
_flag("hammer", "duration", "4", r"--duration: '4' is out of range \(5\.\.86400\)", "below-minimum")
_flag("hammer", "duration", "-1", r"--duration: '-1' is out of range", "negative")
_flag("hammer", "duration", "1m", r"--duration: expected a number", "unit")
_flag("hammer", "warmup", "-1", r"--warmup: '-1' is out of range", "negative")
_flag("hammer", "warmup", "soon", r"--warmup: expected a number", "text")
_flag("hammer", "systems", "foo", r"--systems: unknown system 'foo'", "unknown")
_flag("hammer", "systems", "trillian,foo", r"--systems: unknown system 'foo'", "one-unknown")
_flag("hammer", "systems", ",", r"--systems: no system named", "empty")
_flag("deploy", "systems", "mysql", r"--systems: unknown system 'mysql'", "unknown")
_flag("hammer", "target", "mars", r"--target: unknown value 'mars'", "unknown")
_flag("deploy", "target", "", r"--target: unknown value ''", "empty")
_flag("hammer", "tier", "huge", r"--tier: unknown value 'huge'", "unknown")
_flag("hammer", "loadgen", "fast", r"--loadgen: unknown value 'fast'", "unknown")
_flag("hammer", "max-in-flight", "0", r"--max_in_flight: '0' is out of range|--max-in-flight", "zero")
_flag("hammer", "max-in-flight", "1.5", r"whole number", "fraction")
_flag("hammer", "repeats", "0", r"--repeats: '0' is out of range", "zero")
_flag("hammer", "repeats", "2.5", r"--repeats: expected a whole number", "fraction")
_flag("hammer", "repeats", "101", r"--repeats: '101' is out of range", "too-many")
_flag("report", "results", None, r"results.*needed value", "missing")
FLAG_CASES.append(Case("unknown-flag", "`inv hammer --bogus`", "unknown flag", ["hammer", "--bogus", "1"],
                       r"No idea what '--bogus' is|bogus"))
FLAG_CASES.append(Case("unknown-task", "`inv nosuchtask`", "unknown task", ["nosuchtask"], r"nosuchtask"))


# ------------------------------------------------------------------------------ invoke config / env


def _yaml(text: str) -> Callable[[Path, dict], None]:
    def setup(tmp: Path, env: dict) -> None:
        (tmp / "bad.yaml").write_text(text)
    return setup


CONFIG_CASES = [
    Case("config-qps-text", "invoke config file (`-f`)", "bench: {qps: abc}", ["-f", "{tmp}/bad.yaml", "hammer"],
         r"--qps: expected a number", _yaml("bench: {qps: abc}\n")),
    Case("config-duration-range", "invoke config file (`-f`)", "bench: {duration: 0}",
         ["-f", "{tmp}/bad.yaml", "hammer"], r"--duration: '?0'? is out of range", _yaml("bench: {duration: 0}\n")),
    Case("config-unknown-key", "invoke config file (`-f`)", "bench: {qsp: 5} (typo)", ["-f", "{tmp}/bad.yaml", "hammer"],
         r"unknown setting 'qsp'", _yaml("bench: {qsp: 5}\n")),
    Case("config-wrong-type", "invoke config file (`-f`)", "bench: [1, 2] (not a mapping)",
         ["-f", "{tmp}/bad.yaml", "hammer"], r"`bench:` must be a mapping", _yaml("bench: [1, 2]\n")),
    Case("config-malformed", "invoke config file (`-f`)", "not YAML (`bench: {qps: [`)",
         ["-f", "{tmp}/bad.yaml", "hammer"], r"bad\.yaml", _yaml("bench: {qps: [\n")),
    Case("config-missing", "invoke config file (`-f`)", "file does not exist", ["-f", "{tmp}/none.yaml", "hammer"],
         r"none\.yaml"),
    Case("env-qps-text", "`INVOKE_BENCH_QPS`", "'abc'", ["hammer"], r"INVOKE_BENCH_QPS|qps", env={"INVOKE_BENCH_QPS": "abc"}),
    Case("env-duration-range", "`INVOKE_BENCH_DURATION`", "'-1'", ["hammer"], r"--duration: '?-1'? is out of range",
         env={"INVOKE_BENCH_DURATION": "-1"}),
    Case("env-systems", "`INVOKE_BENCH_SYSTEMS`", "'etcd'", ["hammer"], r"unknown system 'etcd'",
         env={"INVOKE_BENCH_SYSTEMS": "etcd"}),
]


# -------------------------------------------------------------------------------------- state file


def _state(text: str | None) -> Callable[[Path, dict], None]:
    def setup(tmp: Path, env: dict) -> None:
        if text is None:
            return
        d = tmp / "state"
        d.mkdir(mode=0o700, exist_ok=True)
        (d / "state.json").write_text(text)
    return setup


GOOD_STATE = {"version": 1, "target": "local", "components": {"mariadb": {"pid": 1, "create_time": 1.0}},
              "systems": {}}


def _st(**over: Any) -> str:
    doc = copy.deepcopy(GOOD_STATE)
    doc.update(over)
    return json.dumps(doc)


STATE_CASES = []
for task in ("smoke", "hammer", "down"):
    STATE_CASES += [
        Case(f"state-not-json-{task}", f"state file (`inv {task}`)", "truncated JSON", [task],
             r"state file .* not JSON" + (r".*down cannot tell what to stop" if task == "down" else r".*run `inv down`"),
             _state('{"version": 1, "target": "lo')),
    ]
for task, text, value, expect in [
    ("smoke", None, "missing (nothing deployed)", r"nothing is deployed"),
    ("smoke", "[]", "a JSON array", r"expected a JSON object"),
    ("smoke", _st(version=99), "version 99", r"unsupported version 99"),
    ("smoke", _st(components=[]), "components is a list", r"'components' missing or not a dict"),
    ("hammer", _st(components={"mariadb": {"pid": "abc"}}), "pid 'abc'", r"component 'mariadb' has no integer pid"),
    ("smoke", json.dumps({k: v for k, v in GOOD_STATE.items() if k != "systems"}), "no systems",
     r"'systems' missing"),
    ("down", _st(version=0), "version 0", r"unsupported version 0 .*down cannot tell what to stop"),
]:
    STATE_CASES.append(Case(f"state-{value.split()[0].strip(chr(39))}-{task}", f"state file (`inv {task}`)", value,
                            [task], expect, _state(text)))


# ----------------------------------------------------------------------------------- results JSON


def _results(mutate: Callable[[dict], Any] | None = None, raw: str | bytes | None = None, name: str = "r.json"
             ) -> Callable[[Path, dict], None]:
    def setup(tmp: Path, env: dict) -> None:
        path = tmp / name
        if raw is not None:
            path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
            return
        doc = json.loads(GOOD_RESULTS.read_text())
        out = mutate(doc) if mutate else None
        path.write_text(json.dumps(doc if out is None else out))
    return setup


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        keys = path.split(".")
        node = doc
        for k in keys[:-1]:
            node = node[k]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return mutate


_DELETE = object()
RESULTS_CASES = []
for label, setup, expect in [
    ("file does not exist", None, r"r\.json: file not found"),
    ("empty file", _results(raw=""), r"not readable JSON"),
    ("not JSON", _results(raw="{'run_id': 1,"), r"not readable JSON"),
    ("binary garbage", _results(raw=b"\x89PNG\r\n\x1a\n\x00\xff"), r"not readable JSON"),
    ("a JSON array", _results(raw="[1, 2]"), r"is not of type 'object'"),
    ("schema_version 2", _results(_set("schema_version", 2)), r"schema_version 2 is not supported"),
    ("run_id missing", _results(_set("run_id", _DELETE)), r"'run_id' is a required property"),
    ("status 'great'", _results(_set("status", "great")), r"status: 'great' is not one of"),
    ("failed system with qps 137", _results(lambda d: d["systems"]["trillian"].update(status="failed", reason="x", qps=137.0)),
     r"systems/trillian/qps: None was expected"),
    ("qps 'fast' (wrong type)", _results(_set("systems.trillian.qps", "fast")), r"systems/trillian/qps: 'fast' is not of type"),
    ("qps -5 (out of range)", _results(_set("systems.trillian.qps", -5)), r"systems/trillian/qps: -5 is less than or equal to"),
    ("entries_integrated -1", _results(_set("systems.trillian.entries_integrated", -1)), r"entries_integrated: -1 is less than"),
    ("settings.qps 0", _results(_set("settings.qps", 0)), r"settings/qps: 0 is less than or equal to"),
    ("tier 'huge'", _results(_set("tier", "huge")), r"tier: 'huge' is not one of"),
    ("unknown system 'etcd'", _results(lambda d: d["systems"].update(etcd=d["systems"]["trillian"])), r"etcd"),
    ("ok system without its tree sizes", _results(_set("systems.trillian.tree_size_window_start", _DELETE)),
     r"tree_size_window_start"),
    ("ok system with resources of the wrong type", _results(_set("systems.trillian.resources", {"x": 1})),
     r"resources|system_cpu_seconds"),
    ("machine.cpus 'many'", _results(_set("machine.cpus", "many")), r"machine/cpus: 'many' is not of type"),
]:
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    RESULTS_CASES.append(Case(f"results-{slug}", "results JSON (`inv report --results`)", label,
                              ["report", "--results", "{tmp}/r.json"], expect, setup))
RESULTS_CASES += [
    Case("results-dir-without-results", "results JSON (`inv report --results`)", "a directory with no results.json",
         ["report", "--results", "{tmp}"], r"results\.json: file not found"),
    Case("results-update-readme-bad", "results JSON (`inv update-readme --results`)", "status 'great'",
         ["update-readme", "--results", "{tmp}/r.json"], r"status: 'great' is not one of",
         _results(_set("status", "great"))),
    Case("results-metrics-bad", "results JSON (`inv metrics --results`)", "failed system with qps 137",
         ["metrics", "--results", "{tmp}/r.json"], r"None was expected",
         _results(lambda d: d["systems"]["tesseract"].update(status="failed", reason="x", qps=137.0))),
    Case("results-none-yet", "results dir (`inv report`)", "no run yet", ["report"], r"no results yet"),
]


def _readme(text: str | None) -> Callable[[Path, dict], None]:
    def setup(tmp: Path, env: dict) -> None:
        _results()(tmp, env)
        if text is None:
            env["CTB_README"] = str(tmp / "no-README.md")
        else:
            Path(env["CTB_README"]).write_text(text)
    return setup


README_CASES = [
    Case("readme-no-markers", "README.md (`inv report`)", "results markers missing",
         ["report", "--results", "{tmp}/r.json"], r"must contain exactly one", _readme("# no markers here\n")),
    Case("readme-markers-twice", "README.md (`inv report`)", "markers twice",
         ["report", "--results", "{tmp}/r.json"], r"must contain exactly one",
         _readme("<!-- BENCHMARK-RESULTS-START -->\n<!-- BENCHMARK-RESULTS-END -->\n" * 2)),
    Case("readme-missing", "README.md (`inv report`)", "file does not exist", ["report", "--results", "{tmp}/r.json"],
         r"cannot read .*no-README\.md", _readme(None)),
]


# ------------------------------------------------------------------------------------- costs.json


def _costs(mutate: Callable[[dict], Any] | None = None, raw: str | None = None) -> Callable[[Path, dict], None]:
    def setup(tmp: Path, env: dict) -> None:
        _results()(tmp, env)
        path = tmp / "costs.json"
        if raw is not None:
            path.write_text(raw)
        elif mutate is not None:
            doc = json.loads((REPO / "costs.json").read_text())
            mutate(doc)
            path.write_text(json.dumps(doc))
        env["CTB_COSTS_FILE"] = str(path)
    return setup


COSTS_CASES = []
for label, setup, expect in [
    ("file does not exist", _costs(), r"costs\.json: file not found|not found"),
    ("not JSON", _costs(raw="{prices: }"), r"costs\.json"),
    ("a rate as text", _costs(_set("prices.e2_vcpu_hour.usd", "cheap")), r"prices.*e2_vcpu_hour.*usd"),
    ("a negative rate", _costs(_set("prices.e2_vcpu_hour.usd", -1)), r"e2_vcpu_hour"),
    ("tiers missing", _costs(_set("tiers", _DELETE)), r"'tiers' is a required property"),
    ("a tier naming an unknown machine type",
     _costs(_set("tiers.small.gke.node_pools.trillian.machine_type", "n9-mega-1")), r"n9-mega-1"),
]:
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    COSTS_CASES.append(Case(f"costs-{slug}", "costs.json (`inv metrics`)", label,
                            ["metrics", "--results", "{tmp}/r.json"], expect, setup))

ALL = FLAG_CASES + CONFIG_CASES + STATE_CASES + RESULTS_CASES + README_CASES + COSTS_CASES
OUTCOMES: dict[str, str] = {}


# ------------------------------------------------------------------------------------------ checks


def _snapshot(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(case: Case, tmp_path):
    env = fk.make_env(tmp_path, **case.env)
    if case.setup is not None:
        case.setup(tmp_path, env)
    results_dir = Path(env["CTB_RESULTS_DIR"])
    if case.id != "results-none-yet":
        # An earlier good run in the results dir must survive untouched.
        run = results_dir / "20260101T000000Z-beef"
        run.mkdir(parents=True)
        shutil.copyfile(GOOD_RESULTS, run / "results.json")
        (results_dir / "latest").symlink_to(run.name)
    watched = [Path(env["CTB_README"]), results_dir, Path(env["CTB_STATE_DIR"]), tmp_path]
    before = _snapshot(watched)
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    done = fk.inv(env, *args, timeout=60)
    err = done.stderr.strip()
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    assert done.returncode == 2, f"exit {done.returncode}: {err[-2000:]}"
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert re.search(case.expect, err), f"{case.expect!r} not in {err!r}"
    assert _snapshot(watched) == before, "an input or output file changed"
    assert not fk.leaked(env)
    OUTCOMES[case.id] = err.replace(str(tmp_path), "<tmp>")


def test_write_the_table_of_cases():
    """docs/bad_input_cases.md: the cases above and the line each produced (only after a full pass)."""
    if set(OUTCOMES) != {c.id for c in ALL}:
        pytest.skip("the table is written only when every case ran and passed")
    lines = ["# Bad input: cases and messages", "",
             "Generated by `tests/test_bad_input.py` (issue 5 §4); do not edit by hand. Every case exits with "
             "code 2, prints exactly this one line on stderr, shows no traceback and leaves the README, the "
             "results and the state file byte-identical.", "",
             f"{len(ALL)} cases.", "",
             "| # | input | bad value | command | message |", "|---:|---|---|---|---|"]
    for i, case in enumerate(ALL, 1):
        cmd = "inv " + " ".join(a.replace("{tmp}", "<tmp>") for a in case.args)
        env = " ".join(f"{k}={v}" for k, v in case.env.items())
        cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
        lines.append(f"| {i} | {cell(case.input)} | {cell(case.value)} | `{cell((env + ' ' + cmd).strip())}` | "
                     f"{cell(OUTCOMES[case.id])} |")
    text = "\n".join(lines) + "\n"
    TABLE.parent.mkdir(exist_ok=True)
    if not TABLE.exists() or TABLE.read_text() != text:
        TABLE.write_text(text)
