"""Cloud Monitoring parsing on recorded timeSeries.list responses (tests/data/gke/, REST v3 format).

The numbers in the recorded files are chosen so every expected value here can be redone by hand:
the window is 06:00:00-06:15:00 UTC (900 s), points every 60 s.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from scripts import monitoring as mon
from scripts.errors import RunFailed

DATA = Path(__file__).parent / "data" / "gke"
START = dt.datetime(2026, 12, 4, 6, 0, tzinfo=dt.timezone.utc).timestamp()
END = START + 900


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


class FakeResponse:
    def __init__(self, doc, status: int = 200):
        self.status_code = status
        self._doc = doc
        self.text = json.dumps(doc)

    def json(self):
        return self._doc


class FakeSession:
    """Answers GETs from recorded pages, in order, and keeps the URLs it was asked for."""

    def __init__(self, *pages, status: int = 200):
        self.pages = list(pages)
        self.urls: list[str] = []
        self.status = status

    def get(self, url, timeout):
        self.urls.append(url)
        return FakeResponse(self.pages.pop(0), self.status)


def cpu_series() -> list[dict]:
    return (mon.parse_page(load("monitoring_container_cpu_page1.json"))[0]
            + mon.parse_page(load("monitoring_container_cpu_page2.json"))[0])


def by_pod(series: list[dict], pod: str) -> dict:
    return next(s for s in series if s["labels"]["pod_name"] == pod)


def test_pages_are_followed_with_the_page_token():
    session = FakeSession(load("monitoring_container_cpu_page1.json"), load("monitoring_container_cpu_page2.json"))
    url = mon.time_series_url("ctbench-offline", 'metric.type = "x"', START, END)
    series = mon.list_time_series(session, url)
    assert len(series) == 4
    assert "pageToken" not in parse_qs(urlparse(session.urls[0]).query)
    assert parse_qs(urlparse(session.urls[1]).query)["pageToken"] == ["CiAKGGN0YmVuY2gtb2ZmbGluZS1wYWdlLTIQARgB"]


def test_points_are_sorted_oldest_first_and_nanoseconds_parse():
    s = cpu_series()[0]
    ends = [p[1] for p in s["points"]]
    assert ends == sorted(ends)                          # the API sends newest first
    assert s["kind"] == "CUMULATIVE" and s["value_type"] == "DOUBLE"
    assert mon._ts("2026-12-04T06:02:00.123456789Z") == pytest.approx(START + 120.123456)


def test_cumulative_counter_becomes_a_rate_and_ignores_points_outside_the_window():
    s = by_pod(cpu_series(), "trillian-log-server-7d9f8b6c5d-x2k4p")
    # 1000.0 at 06:00 -> 1450.0 at 06:15 (the 05:59 point, 970.0, is outside the window)
    inc = mon.cumulative_increase(s["points"], START, END)
    assert inc["increase"] == pytest.approx(450.0)
    assert inc["rate"] == pytest.approx(0.5)
    assert inc["resets"] == 0 and inc["points"] == 16


def test_counter_reset_counts_what_the_new_container_accrued():
    s = by_pod(cpu_series(), "trillian-log-server-7d9f8b6c5d-q8m2z")
    # 200 -> 290 until 06:06 (90), restart at 06:06:30: 7.5 at 06:07 counted from the new start,
    # then 7.5 -> 127.5 (120). 90 + 7.5 + 120 = 217.5 CPU-s over 900 s.
    inc = mon.cumulative_increase(s["points"], START, END)
    assert inc["resets"] == 1
    assert inc["increase"] == pytest.approx(217.5)
    assert inc["rate"] == pytest.approx(217.5 / 900)


def test_averaging_the_raw_counter_would_be_the_seed_bug():
    s = by_pod(cpu_series(), "trillian-log-server-7d9f8b6c5d-x2k4p")
    raw_mean = mon.gauge_mean(s["points"], START, END)      # what a naive reader would report as "cores"
    assert raw_mean == pytest.approx(1225.0)
    assert mon.cumulative_increase(s["points"], START, END)["rate"] == pytest.approx(0.5)


def test_a_single_point_gives_no_rate():
    s = by_pod(cpu_series(), "trillian-signer-5f6c7b8d9-hh7kq")
    inc = mon.cumulative_increase(s["points"], START, START + 30)
    assert inc == {"increase": None, "rate": None, "seconds": 0.0, "points": 1, "resets": 0}


def test_summary_per_container_with_memory_and_database():
    found = {
        "cpu": cpu_series(),
        "memory": mon.parse_page(load("monitoring_container_memory.json"))[0],
        "database_cpu": mon.parse_page(load("monitoring_cloudsql_cpu.json"))[0],
        "loadgen_cpu": mon.parse_page(load("monitoring_loadgen_cpu.json"))[0],
    }
    usage = mon.summarize(found, START, END)
    comps = usage["components"]
    assert comps["log-server"]["pods"] == 2
    assert comps["log-server"]["cpu_cores_mean"] == pytest.approx(0.5 + 217.5 / 900)
    assert comps["log-server"]["cpu_seconds"] == pytest.approx(450 + 217.5)
    assert comps["signer"]["cpu_cores_mean"] == pytest.approx(0.1)
    assert comps["ct-server"]["cpu_seconds"] == pytest.approx(270.0)
    # int64Value arrives as a string: 256 MiB + 128 MiB for the two log servers
    assert comps["log-server"]["memory_bytes_mean"] == pytest.approx(384 * 2**20)
    assert comps["signer"]["memory_bytes_mean"] == pytest.approx(64 * 2**20)
    # Cloud SQL: 0.4, 0.5, 0.6 five times, then 0.5 -> mean 0.5
    assert usage["database_cpu_utilization_mean"] == pytest.approx(0.5)
    assert usage["loadgen"]["cpu_cores_mean"] == pytest.approx(0.9)


def test_spanner_utilization_sums_its_parts():
    series = mon.parse_page(load("monitoring_spanner_cpu.json"))[0]
    assert len(series) == 2                        # user/high and system/low
    assert mon.summarize({"database_cpu": series}, START, END)["database_cpu_utilization_mean"] == pytest.approx(0.25)


def test_no_data_is_an_empty_page_not_an_error():
    assert mon.parse_page(load("monitoring_empty.json")) == ([], None)
    usage = mon.summarize({}, START, END)
    assert usage["components"] == {} and usage["loadgen"] is None and usage["database_cpu_utilization_mean"] is None


def test_resources_entry_feeds_the_cost_arithmetic_and_flags_a_client_bound_run():
    from scripts import costs
    from scripts import gke_spec as spec
    found = {"cpu": cpu_series(), "memory": mon.parse_page(load("monitoring_container_memory.json"))[0],
             "loadgen_cpu": mon.parse_page(load("monitoring_loadgen_cpu.json"))[0]}
    usage = mon.summarize(found, START, END)
    price_book = costs.load_costs()
    small = spec.workload_resources(price_book, "small")["loadgen"]
    large = spec.workload_resources(price_book, "large")["loadgen"]
    entry = mon.resources_entry(usage, 900, small)
    assert entry["system_cpu_seconds"] == pytest.approx(450 + 217.5 + 90 + 270)
    mib = 384 + 64 + 100
    assert entry["system_ram_gib_seconds"] == pytest.approx(mib / 1024 * 900)
    # 0.9 cores on one pod whose limit is small's 930m: at least 90% of the limit -> client-bound
    assert small["cpu_limit"] == "930m"
    assert entry["labels"] == ["client-bound"]
    assert mon.resources_entry(usage, 900, large)["labels"] == []


def test_values_and_errors():
    assert mon.point_value({"int64Value": "42"}) == 42.0
    assert mon.point_value({"doubleValue": 0.25}) == 0.25
    assert mon.point_value({"distributionValue": {"count": "3", "mean": 2.5}}) == 2.5
    with pytest.raises(RunFailed, match="unsupported point value"):
        mon.point_value({"stringValue": "x"})
    with pytest.raises(RunFailed, match="quota"):
        mon.parse_page({"executionErrors": [{"code": 8, "message": "quota exceeded"}]})
    with pytest.raises(RunFailed, match="unexpected time series shape"):
        mon.parse_series({"points": []})
    with pytest.raises(RunFailed, match="HTTP 403"):
        mon.list_time_series(FakeSession({"error": {"code": 403}}, status=403), "https://x/?a=b")


def test_queries_name_the_right_resources():
    q = mon.queries_for("trillian", project="p", cluster="ctb-small-gke", namespace="ctbench",
                        cloudsql_instance="ctb-small-mysql", spanner_instance="ctb-small-spanner",
                        loadgen_job="load-trillian-r1")
    assert 'one_of("log-server", "signer", "ct-server")' in q["cpu"]["filter"]
    assert 'metric.labels.memory_type = "non-evictable"' in q["memory"]["filter"]
    assert 'starts_with("load-trillian-r1")' in q["loadgen_cpu"]["filter"]
    assert 'database_id = "p:ctb-small-mysql"' in q["database_cpu"]["filter"]
    t = mon.queries_for("tesseract", project="p", cluster="c", namespace="ctbench", cloudsql_instance="m",
                        spanner_instance="ctb-small-spanner", loadgen_job="j")
    assert 'instance_id = "ctb-small-spanner"' in t["database_cpu"]["filter"]
    url = mon.time_series_url("p", t["cpu"]["filter"], START, END)
    query = parse_qs(urlparse(url).query)
    assert query["interval.startTime"] == ["2026-12-04T06:00:00.000000Z"]
    assert query["interval.endTime"] == ["2026-12-04T06:15:00.000000Z"]
    assert query["filter"] == [t["cpu"]["filter"]] and query["view"] == ["FULL"]
    assert not math.isnan(START)
