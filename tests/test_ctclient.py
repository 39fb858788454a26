"""Reading server-side counters from Prometheus text (recorded CTFE output), never by grepping."""
from __future__ import annotations

from scripts import ctclient

CTFE_METRICS = """# HELP http_rsps Number of responses
# TYPE http_rsps counter
http_rsps{ep="AddChain",logid="8945735107960455265",rc="200"} 1234
http_rsps{ep="AddChain",logid="8945735107960455265",rc="429"} 7
http_rsps{ep="GetSTH",logid="8945735107960455265",rc="200"} 99
# HELP http_reqs Number of requests
# TYPE http_reqs counter
http_reqs{ep="AddChain",logid="8945735107960455265"} 1241
"""


def test_counter_value_matches_labels():
    assert ctclient.counter_value(CTFE_METRICS, "http_rsps", {"ep": "AddChain", "rc": "200"}) == 1234
    assert ctclient.counter_value(CTFE_METRICS, "http_rsps", {"ep": "AddChain"}) == 1241
    assert ctclient.counter_value(CTFE_METRICS, "http_reqs", {"ep": "AddChain"}) == 1241
    assert ctclient.counter_value(CTFE_METRICS, "http_rsps", {"ep": "AddPreChain"}) == 0


def test_unreachable_counter_is_none():
    assert ctclient.read_counter({"url": "http://127.0.0.1:9/metrics", "metric": "x", "labels": {}}, timeout=0.5) is None
