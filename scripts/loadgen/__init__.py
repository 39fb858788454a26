"""Uniform open-loop add-chain load generator (issue 4): the same work for every CT log.

    from scripts.loadgen import LoadSpec, run
    result = run(LoadSpec(url=..., log_public_key=..., intermediate=..., intermediate_key=...,
                          rate=500, duration_s=60))

or `python -m scripts.loadgen --help`. The result is a JSON-serialisable dict (schema
"loadgen-result/1"); integrated throughput is measured by the orchestrator from the signed tree.
"""
from scripts.loadgen.certs import ChainShape, CertPool, Issuer, LeafFactory
from scripts.loadgen.classify import CLASSES, classify_status
from scripts.loadgen.runner import RESULT_SCHEMA, LoadSpec, run
from scripts.loadgen.schedule import Schedule, pace

__all__ = ["CLASSES", "RESULT_SCHEMA", "CertPool", "ChainShape", "Issuer", "LeafFactory", "LoadSpec",
           "Schedule", "classify_status", "pace", "run"]
