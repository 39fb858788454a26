"""charts: files written from plain dicts, deterministic SVG, bad input refused with BadInput."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from scripts import charts
from scripts.errors import BadInput

STEPS = {
    "trillian": [
        {"offered": 100, "integrated_qps": 99.0, "sustained": True, "latency_ms": {"p50": 8.0, "p90": 12.0, "p99": 30.0}},
        {"offered": 200, "integrated_qps": 197.0, "sustained": True, "latency_ms": {"p50": 9.0, "p90": 14.0, "p99": 35.0}},
        {"offered": 400, "integrated_qps": 310.0, "sustained": False, "latency_ms": {"p50": 90.0, "p90": 400.0, "p99": 900.0}},
    ],
    "tesseract": [
        {"offered": 100, "integrated_qps": 100.0, "sustained": True, "latency_ms": {"p50": 1400.0, "p90": 2600.0, "p99": 2900.0}},
        {"offered": 400, "integrated_qps": 399.0, "sustained": True, "latency_ms": {"p50": 1500.0, "p90": 2700.0, "p99": 3000.0}},
        {"offered": 800, "integrated_qps": 792.0, "sustained": True, "latency_ms": {"p50": None, "p90": None, "p99": None}},
    ],
}
COSTS = [
    {"system": "trillian", "tier": "small", "qps": 200.0, "usd_per_million": 0.40},
    {"system": "trillian", "tier": "large", "qps": 450.0, "usd_per_million": 0.90},
    {"system": "tesseract", "tier": "small", "qps": 800.0, "usd_per_million": 0.05},
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_files(paths, names):
    assert [p.suffix for p in paths] == [".png", ".svg"]
    png, svg = paths
    assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 5000
    root = ET.fromstring(svg.read_text())
    assert root.tag.endswith("svg")
    text = svg.read_text()
    for name in names:
        assert name in text


def test_qps_vs_offered(tmp_path):
    paths = charts.qps_vs_offered(STEPS, tmp_path, maxima={"trillian": 197.0, "tesseract": 792.0})
    check_files(paths, ["trillian", "tesseract", "integrated = offered", "trillian max 197/s"])


def test_latency_vs_offered_skips_missing_points(tmp_path):
    paths = charts.latency_vs_offered(STEPS, tmp_path)
    check_files(paths, ["trillian p50", "tesseract p99"])


def test_cost_vs_throughput(tmp_path):
    check_files(charts.cost_vs_throughput(COSTS, tmp_path), ["trillian", "tesseract", "small", "large"])


def test_svg_is_deterministic(tmp_path):
    a = charts.qps_vs_offered(STEPS, tmp_path / "a")[1].read_bytes()
    b = charts.qps_vs_offered(STEPS, tmp_path / "b")[1].read_bytes()
    assert a == b


def test_render_all(tmp_path):
    out = charts.render_all(tmp_path, steps=STEPS, maxima={"trillian": 197.0}, costs=COSTS)
    assert out == {"qps_vs_offered": ["qps_vs_offered.png", "qps_vs_offered.svg"],
                   "latency_vs_offered": ["latency_vs_offered.png", "latency_vs_offered.svg"],
                   "cost_vs_throughput": ["cost_vs_throughput.png", "cost_vs_throughput.svg"]}
    assert all((tmp_path / f).exists() for files in out.values() for f in files)
    no_latency = {"x": [{"offered": 1, "integrated_qps": 1}]}
    assert list(charts.render_all(tmp_path / "n", steps=no_latency)) == ["qps_vs_offered"]
    assert charts.render_all(tmp_path / "e") == {}


@pytest.mark.parametrize("steps", [{}, {"trillian": "nope"}, {"trillian": [{"integrated_qps": 1}]},
                                   {"trillian": [{"offered": "100", "integrated_qps": 1}]},
                                   {"trillian": [{"offered": 100, "integrated_qps": float("nan")}]},
                                   {"trillian": [{"offered": 100, "integrated_qps": None}]}])
def test_qps_bad_input(tmp_path, steps):
    with pytest.raises(BadInput):
        charts.qps_vs_offered(steps, tmp_path)


def test_latency_bad_input(tmp_path):
    with pytest.raises(BadInput, match="no latency"):
        charts.latency_vs_offered({"x": [{"offered": 1, "latency_ms": {"p50": None}}]}, tmp_path)
    with pytest.raises(BadInput, match="mapping"):
        charts.latency_vs_offered({"x": [{"offered": 1, "latency_ms": [1, 2]}]}, tmp_path)


def test_cost_bad_input(tmp_path):
    with pytest.raises(BadInput):
        charts.cost_vs_throughput([], tmp_path)
    with pytest.raises(BadInput, match="no \\(qps"):
        charts.cost_vs_throughput([{"system": "x", "qps": None, "usd_per_million": 1}], tmp_path)
