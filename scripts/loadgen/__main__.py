"""`python -m scripts.loadgen`: one open-loop add-chain run, result JSON to --out (or stdout)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from scripts import paths
from scripts.errors import HarnessError, cli_entry, one_line
from scripts.loadgen.certs import LEAF_KEY_TYPES
from scripts.loadgen.runner import RESULT_SCHEMA, LoadSpec, run
from scripts.loadgen.schedule import ARRIVALS


def parser() -> argparse.ArgumentParser:
    d = LoadSpec.__dataclass_fields__
    p = argparse.ArgumentParser(prog="python -m scripts.loadgen", description=__doc__)
    p.add_argument("--url", required=True, help="add-chain endpoint, e.g. http://127.0.0.1:6962/bench/ct/v1/add-chain")
    p.add_argument("--log-public-key", required=True, help="the log's public key file (PEM or DER SPKI)")
    p.add_argument("--intermediate", default=str(paths.PKI_DIR / "intermediate.pem"), help="intermediate certificate (PEM)")
    p.add_argument("--intermediate-key", default=str(paths.PKI_DIR / "intermediate.key.pem"),
                   help="intermediate private key (unencrypted PEM)")
    p.add_argument("--root", default=None, help="root certificate (PEM); needed for --chain-length 3")
    p.add_argument("--rate", type=float, required=True, help="offered add-chain requests per second")
    p.add_argument("--duration", type=float, required=True, help="schedule length in seconds, warmup included")
    p.add_argument("--warmup", type=float, default=d["warmup_s"].default, help="seconds sent but not measured")
    p.add_argument("--max-in-flight", type=int, default=d["max_in_flight"].default, help="cap on outstanding requests")
    p.add_argument("--arrival", choices=ARRIVALS, default=d["arrival"].default, help="arrival process")
    p.add_argument("--seed", type=int, default=d["seed"].default, help="seed for Poisson arrivals")
    p.add_argument("--timeout", type=float, default=d["timeout_s"].default, help="per-attempt request timeout (s)")
    p.add_argument("--retries", type=int, default=d["retries"].default, help="retries of pushback/timeout/transport errors")
    p.add_argument("--leaf-key", choices=LEAF_KEY_TYPES, default=d["leaf_key"].default, help="leaf key type")
    p.add_argument("--chain-length", type=int, choices=(2, 3), default=d["chain_length"].default,
                   help="2: leaf+intermediate, 3: +root")
    p.add_argument("--san-count", type=int, default=d["san_count"].default, help="DNS SANs per leaf (certificate size)")
    p.add_argument("--generator-procs", type=int, default=d["generator_procs"].default,
                   help="certificate generator processes")
    p.add_argument("--verify-procs", type=int, default=d["verify_procs"].default,
                   help="SCT verifier processes (0: in the sender)")
    p.add_argument("--client-bound-cpu", type=float, default=d["client_bound_cpu"].default,
                   help="sender CPU (cores) at or above which the run is labelled client-bound")
    p.add_argument("--client-bound-total-cpu", type=float, default=None,
                   help="same for sender + helper processes together (off unless given)")
    p.add_argument("--sender-cpu", type=int, default=None, help="pin the sending process to this CPU")
    p.add_argument("--label", default="", help="free-form label echoed in the result (e.g. the system name)")
    p.add_argument("--out", type=Path, help="write the result JSON here (default: stdout)")
    return p


def spec_from_args(a: argparse.Namespace) -> LoadSpec:
    return LoadSpec(url=a.url, log_public_key=a.log_public_key, intermediate=a.intermediate,
                    intermediate_key=a.intermediate_key, root=a.root, rate=a.rate, duration_s=a.duration,
                    warmup_s=a.warmup, max_in_flight=a.max_in_flight, arrival=a.arrival, seed=a.seed,
                    timeout_s=a.timeout, retries=a.retries, leaf_key=a.leaf_key, chain_length=a.chain_length,
                    san_count=a.san_count, generator_procs=a.generator_procs, verify_procs=a.verify_procs,
                    client_bound_cpu=a.client_bound_cpu, client_bound_total_cpu=a.client_bound_total_cpu,
                    sender_cpu=a.sender_cpu, label=a.label)


def _write(doc: dict, out: Path | None) -> None:
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result = run(spec_from_args(args))
    except HarnessError as exc:
        # A status record even when the run failed, so nothing downstream mistakes silence for success.
        _write({"schema": RESULT_SCHEMA, "status": "failed", "reason": one_line(exc), "label": args.label,
                "failed_unix": round(time.time(), 3)}, args.out)
        raise
    _write(result, args.out)
    return 0


if __name__ == "__main__":
    main()
