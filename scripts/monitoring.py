"""Cloud Monitoring time series through the REST API (v3 projects.timeSeries.list) with google-auth.

What a GKE run records per system (METHOD rule 5): CPU and memory of each workload container, the
database's CPU (Cloud SQL for Trillian, Spanner for TesseraCT) and the load generators' CPU, over
the measured window. Container CPU (`kubernetes.io/container/cpu/core_usage_time`) is a CUMULATIVE
counter of CPU-seconds: it is turned into an increase and a rate here, per series, with counter
resets (a restarted container starts a new series start time) handled — never averaged raw
(METHOD rule 9). Everything but `list_time_series` is pure and tested on recorded responses.
"""
from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from typing import Any, Iterable
from urllib.parse import urlencode

from scripts.errors import RunFailed

API = "https://monitoring.googleapis.com/v3"
TIMEOUT_S = 60
MAX_PAGES = 100

CONTAINER_CPU = "kubernetes.io/container/cpu/core_usage_time"
CONTAINER_MEMORY = "kubernetes.io/container/memory/used_bytes"
CLOUDSQL_CPU = "cloudsql.googleapis.com/database/cpu/utilization"
SPANNER_CPU = "spanner.googleapis.com/instance/cpu/utilization"

# Container names in k8s/*.yaml.j2, per system.
CONTAINERS = {"trillian": ("log-server", "signer", "ct-server"), "tesseract": ("tesseract",)}
LOADGEN_CONTAINER = "loadgen"
CLIENT_BOUND_SHARE = 0.9      # a load pod using >= 90% of its CPU limit is the bottleneck itself


# ---------------------------------------------------------------------------- requests (pure)


def rfc3339(unix: float) -> str:
    return dt.datetime.fromtimestamp(unix, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def time_series_url(project: str, filter_: str, start_unix: float, end_unix: float,
                    page_token: str | None = None) -> str:
    params = {"filter": filter_, "interval.startTime": rfc3339(start_unix), "interval.endTime": rfc3339(end_unix),
              "view": "FULL"}
    if page_token:
        params["pageToken"] = page_token
    return f"{API}/projects/{project}/timeSeries?{urlencode(params)}"


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def container_filter(metric: str, *, project: str, cluster: str, namespace: str, containers: Iterable[str],
                     pod_prefix: str | None = None) -> str:
    parts = [f'metric.type = "{metric}"', 'resource.type = "k8s_container"',
             f'resource.labels.project_id = "{project}"', f'resource.labels.cluster_name = "{cluster}"',
             f'resource.labels.namespace_name = "{namespace}"',
             f"resource.labels.container_name = one_of({_quoted(containers)})"]
    if metric == CONTAINER_MEMORY:
        parts.append('metric.labels.memory_type = "non-evictable"')  # the working set, not page cache
    if pod_prefix:
        parts.append(f'resource.labels.pod_name = starts_with("{pod_prefix}")')
    return " AND ".join(parts)


def queries_for(system: str, *, project: str, cluster: str, namespace: str, cloudsql_instance: str,
                spanner_instance: str, loadgen_job: str) -> dict[str, dict[str, str]]:
    common = {"project": project, "cluster": cluster, "namespace": namespace}
    queries = {
        "cpu": {"filter": container_filter(CONTAINER_CPU, containers=CONTAINERS[system], **common),
                "what": "container CPU (cumulative core-seconds)"},
        "memory": {"filter": container_filter(CONTAINER_MEMORY, containers=CONTAINERS[system], **common),
                   "what": "container memory (non-evictable bytes)"},
        "loadgen_cpu": {"filter": container_filter(CONTAINER_CPU, containers=[LOADGEN_CONTAINER],
                                                   pod_prefix=loadgen_job, **common),
                        "what": "load generator CPU (cumulative core-seconds)"},
    }
    if system == "trillian":
        queries["database_cpu"] = {
            "filter": (f'metric.type = "{CLOUDSQL_CPU}" AND resource.type = "cloudsql_database" AND '
                       f'resource.labels.database_id = "{project}:{cloudsql_instance}"'),
            "what": "Cloud SQL CPU utilization"}
    else:
        queries["database_cpu"] = {
            "filter": (f'metric.type = "{SPANNER_CPU}" AND resource.type = "spanner_instance" AND '
                       f'resource.labels.instance_id = "{spanner_instance}"'),
            "what": "Spanner CPU utilization (of provisioned capacity)"}
    return queries


# ---------------------------------------------------------------------------- parsing (pure)


def _ts(text: str) -> float:
    # RFC 3339 with up to nanoseconds ("2026-12-04T06:10:00.123456789Z"): trim to microseconds.
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        frac, _, tz = rest.partition("+")
        text = f"{head}.{frac[:6]}+{tz}"
    return dt.datetime.fromisoformat(text).timestamp()


def point_value(value: dict[str, Any]) -> float:
    """A TypedValue: int64Value arrives as a JSON string; distributions contribute their mean."""
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "int64Value" in value:
        return float(int(value["int64Value"]))
    if "distributionValue" in value:
        return float(value["distributionValue"].get("mean", 0.0))
    if "boolValue" in value:
        return 1.0 if value["boolValue"] else 0.0
    raise RunFailed(f"Cloud Monitoring: unsupported point value {sorted(value)}")


def parse_series(series: dict[str, Any]) -> dict[str, Any]:
    """One TimeSeries: labels plus points sorted by end time (the API sends newest first)."""
    try:
        points = []
        for p in series.get("points", []):
            interval = p["interval"]
            end = _ts(interval["endTime"])
            start = _ts(interval["startTime"]) if "startTime" in interval else end
            points.append((start, end, point_value(p["value"])))
        points.sort(key=lambda t: t[1])
        return {"metric": series["metric"]["type"], "metric_labels": series["metric"].get("labels", {}),
                "resource": series["resource"]["type"], "labels": series["resource"].get("labels", {}),
                "kind": series.get("metricKind", ""), "value_type": series.get("valueType", ""),
                "points": points}
    except (KeyError, TypeError, ValueError) as exc:
        raise RunFailed(f"Cloud Monitoring: unexpected time series shape ({exc!r})") from None


def parse_page(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A ListTimeSeriesResponse page. No data in the interval = no `timeSeries` key at all."""
    if "executionErrors" in doc and doc["executionErrors"]:
        raise RunFailed(f"Cloud Monitoring: {doc['executionErrors'][0].get('message', 'execution error')}")
    return [parse_series(s) for s in doc.get("timeSeries", [])], doc.get("nextPageToken") or None


def cumulative_increase(points: list[tuple[float, float, float]], start: float, end: float) -> dict[str, Any]:
    """Increase and rate of a CUMULATIVE counter over [start, end].

    Between consecutive points of one series the increase is the difference of values; when the
    series start time changes or the value drops, the counter was reset and the new point's value
    is what accrued since its own start. The rate divides by the time between the first and last
    points used, not by the nominal window, so sparse sampling does not bias it.
    """
    use = [p for p in points if start <= p[1] <= end]
    if len(use) < 2:
        return {"increase": None, "rate": None, "seconds": 0.0, "points": len(use), "resets": 0}
    increase, resets = 0.0, 0
    for (s0, _e0, v0), (s1, _e1, v1) in zip(use, use[1:]):
        if s1 != s0 or v1 < v0:
            resets += 1
            increase += v1
        else:
            increase += v1 - v0
    seconds = use[-1][1] - use[0][1]
    return {"increase": increase, "rate": increase / seconds if seconds > 0 else None, "seconds": seconds,
            "points": len(use), "resets": resets}


def gauge_mean(points: list[tuple[float, float, float]], start: float, end: float) -> float | None:
    use = [v for (_s, e, v) in points if start <= e <= end]
    return math.fsum(use) / len(use) if use else None


def summed_gauge_mean(series: list[dict[str, Any]], start: float, end: float) -> float | None:
    """Mean over time of the sum across series at each instant: Spanner splits its CPU utilization
    by priority and system/user work, and the instance's load is the sum of those parts."""
    totals: dict[float, float] = defaultdict(float)
    for s in series:
        for (_s, e, v) in s["points"]:
            if start <= e <= end:
                totals[e] += v
    return math.fsum(totals.values()) / len(totals) if totals else None


def _cpu_by_container(series: list[dict[str, Any]], start: float, end: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"cpu_cores_mean": 0.0, "pods": 0, "resets": 0})
    for s in series:
        inc = cumulative_increase(s["points"], start, end)
        if inc["rate"] is None:
            continue
        c = out[s["labels"].get("container_name", "?")]
        c["cpu_cores_mean"] += inc["rate"]     # pods of one workload add up
        c["pods"] += 1
        c["resets"] += inc["resets"]
    window = end - start
    for c in out.values():
        c["cpu_seconds"] = c["cpu_cores_mean"] * window
    return dict(out)


def summarize(found: dict[str, list[dict[str, Any]]], start: float, end: float) -> dict[str, Any]:
    """Per-system usage from the parsed series of `queries_for`."""
    components = _cpu_by_container(found.get("cpu", []), start, end)
    for s in found.get("memory", []):
        mean = gauge_mean(s["points"], start, end)
        if mean is None:
            continue
        c = components.setdefault(s["labels"].get("container_name", "?"),
                                  {"cpu_cores_mean": 0.0, "cpu_seconds": 0.0, "pods": 0, "resets": 0})
        c["memory_bytes_mean"] = c.get("memory_bytes_mean", 0.0) + mean
    loadgen = _cpu_by_container(found.get("loadgen_cpu", []), start, end).get(LOADGEN_CONTAINER)
    return {"window": {"start_unix": start, "end_unix": end}, "components": components, "loadgen": loadgen,
            "database_cpu_utilization_mean": summed_gauge_mean(found.get("database_cpu", []), start, end)}


def _millicores(text: str) -> float:
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def resources_entry(usage: dict[str, Any], window_s: float, loadgen_resources: dict[str, Any]) -> dict[str, Any]:
    """The results' `resources` block: totals the cost arithmetic uses, and the client-bound label."""
    comps = usage.get("components", {})
    cpu = math.fsum(c.get("cpu_seconds", 0.0) for c in comps.values())
    ram_gib_s = math.fsum(c.get("memory_bytes_mean", 0.0) for c in comps.values()) / 2**30 * window_s
    labels: list[str] = []
    lg = usage.get("loadgen")
    if lg and lg.get("pods"):
        per_pod = lg["cpu_cores_mean"] / lg["pods"]
        limit = _millicores(loadgen_resources["cpu_limit"])
        if per_pod >= CLIENT_BOUND_SHARE * limit:
            labels.append("client-bound")
    return {"source": "Cloud Monitoring", "system_cpu_seconds": cpu, "system_ram_gib_seconds": ram_gib_s,
            "components": comps, "loadgen": lg, "database_cpu_utilization_mean": usage.get(
                "database_cpu_utilization_mean"), "labels": labels}


# ---------------------------------------------------------------------------- the call


def list_time_series(session, url: str) -> list[dict[str, Any]]:
    """GET every page of a timeSeries.list URL (from `time_series_url`)."""
    out: list[dict[str, Any]] = []
    page_url = url
    for _ in range(MAX_PAGES):
        resp = session.get(page_url, timeout=TIMEOUT_S)
        if resp.status_code != 200:
            raise RunFailed(f"Cloud Monitoring: HTTP {resp.status_code} {' '.join(resp.text.split())[:200]}")
        series, token = parse_page(resp.json())
        out.extend(series)
        if not token:
            return out
        page_url = f"{url}&{urlencode({'pageToken': token})}"
    raise RunFailed(f"Cloud Monitoring: more than {MAX_PAGES} pages")
