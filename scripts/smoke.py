"""Smoke test: each deployed log accepts unique chains with verifiable SCTs and integrates them.

For each system: submit SMOKE_CHAINS fresh chains (in parallel: TesseraCT's publication awaiter holds
each response until a checkpoint covers it), require HTTP 200 and an SCT whose signature verifies with
the log's public key, then require the verified signed tree head to cover them within a deadline. A
failure names the likely cause and quotes the relevant component's log.
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from scripts import config, ctclient, ctverify, pki, proc, state
from scripts.errors import RunFailed, cli_entry

SMOKE_CHAINS = 3
ADD_TIMEOUT_S = 30
INTEGRATE_DEADLINE_S = 60

# Which component's log explains a failure of each kind, per system.
FRONT = {"trillian": "ct_server", "tesseract": "tesseract"}
INTEGRATOR = {"trillian": "trillian_log_signer", "tesseract": "tesseract"}


def diagnose(status: int | None, error: str = "") -> str:
    """The likely cause of a failed add-chain, from its HTTP status or transport error."""
    if status is None:
        low = error.lower()
        if "refused" in low:
            return "connection refused: the component is down"
        if "timed out" in low or "timeout" in low:
            return "timed out: the component is stalled or overloaded"
        return f"no HTTP response ({error})"
    if status == 404:
        return "HTTP 404: path prefix or origin mismatch between the client URL and the log's configuration"
    if status == 400:
        return "HTTP 400: chain not accepted (not issued under the log's roots, or malformed)"
    if status in (429, 503):
        return f"HTTP {status}: pushback or quota (the log is refusing load)"
    if 500 <= status < 600:
        return f"HTTP {status}: server error in the log or its storage"
    return f"unexpected HTTP {status}"


def _component_tail(st: dict, name: str) -> str:
    rec = st["components"].get(name)
    if not rec:
        return ""
    running = "running" if proc.alive(rec) else "NOT running"
    return f"; {name} ({running}) log {rec['log']}: {proc.log_tail(rec['log'], 3)}"


def check_running(st: dict, system: str) -> None:
    dead = [n for n in st["systems"][system]["components"] if not proc.alive(st["components"][n])]
    if dead:
        raise RunFailed(f"{system}: component(s) not running: {', '.join(dead)}"
                        + "".join(_component_tail(st, n) for n in dead))


def smoke_system(st: dict, system: str, *, log=print) -> dict[str, Any]:
    info = st["systems"][system]
    check_running(st, system)
    reader = ctclient.TreeReader(system, info)
    try:
        before = reader.read()
    except (requests.RequestException, RunFailed) as exc:
        raise RunFailed(f"smoke {system}: cannot read the signed tree head: {' '.join(str(exc).split())}"
                        + _component_tail(st, INTEGRATOR[system])) from None
    chains = pki.fresh_chains(pki.layout(Path(st["pki"]["dir"])), SMOKE_CHAINS)
    session = requests.Session()
    started = time.monotonic()

    def submit(chain: list[bytes]) -> tuple[list[bytes], ctclient.AddResult]:
        try:
            return chain, ctclient.add_chain(session, info["add_chain_url"], chain, timeout=ADD_TIMEOUT_S)
        except requests.RequestException as exc:
            return chain, ctclient.AddResult(status=0, body=b"", error=" ".join(str(exc).split()))

    # The first chain goes alone: TesseraCT v0.1.1's POSIX issuer storage races when the first
    # submissions create its issuer directory concurrently ("mkdir .../issuer: file exists", HTTP 500).
    results = [submit(chains[0])]
    with ThreadPoolExecutor(max_workers=SMOKE_CHAINS) as pool:
        results += list(pool.map(submit, chains[1:]))
    for chain, res in results:
        if res.status != 200 or res.sct is None:
            cause = diagnose(res.status or None, res.error)
            body = res.body[:160].decode(errors="replace").strip()
            raise RunFailed(f"smoke {system}: add-chain failed — {cause}"
                            f"{f' (body: {body})' if body else ''}" + _component_tail(st, FRONT[system]))
        try:
            ctverify.verify_sct(res.sct, chain, reader.pubkey)
        except ctverify.VerifyError as exc:
            raise RunFailed(f"smoke {system}: SCT does not verify with the log's public key: {exc}") from None
    want = before.size + SMOKE_CHAINS

    def covered():
        return reader.read().size >= want

    try:
        proc.wait_for(f"{system}'s signed tree to reach size {want}", covered, deadline_s=INTEGRATE_DEADLINE_S,
                      interval=0.25)
    except RunFailed as exc:
        raise RunFailed(f"smoke {system}: {exc}" + _component_tail(st, INTEGRATOR[system])) from None
    after = reader.last
    result = {"system": system, "chains": SMOKE_CHAINS, "scts_verified": SMOKE_CHAINS,
              "tree_before": before.size, "tree_after": after.size,
              "seconds": round(time.monotonic() - started, 2)}
    log(f"smoke {system}: {SMOKE_CHAINS} chains accepted, SCTs verified, signed tree {before.size} -> "
        f"{after.size} in {result['seconds']}s")
    return result


def systems_to_check(st: dict, requested: tuple[str, ...] | None) -> list[str]:
    deployed = [s for s in st.get("systems_requested", []) if s in st["systems"]] or sorted(st["systems"])
    if requested is None:
        return deployed
    missing = [s for s in requested if s not in deployed]
    if missing:
        raise RunFailed(f"not deployed: {', '.join(missing)} (deployed: {', '.join(deployed) or 'none'})")
    return list(requested)


def smoke(systems: tuple[str, ...] | None = None, *, log=print) -> dict[str, dict]:
    st = state.load()
    return {s: smoke_system(st, s, log=log) for s in systems_to_check(st, systems)}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.smoke", description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default=None, help="comma-separated subset of the deployed systems")
    args = parser.parse_args(argv)
    smoke(config.parse_systems(args.systems) if args.systems else None)
    return 0


if __name__ == "__main__":
    main()
