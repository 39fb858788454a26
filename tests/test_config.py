"""Settings: defaults declared once, layered overrides, one-line BadInput for every bad value."""
from __future__ import annotations

import pytest

from scripts import config
from scripts.errors import BadInput


def test_defaults_are_the_declared_ones():
    s = config.settings()
    assert s.target == "local" and s.systems == ("trillian", "tesseract") and s.tier == "small"
    assert (s.qps, s.duration, s.warmup) == (config.DEFAULTS["qps"], config.DEFAULTS["duration"], config.DEFAULTS["warmup"])


def test_flags_override_config_which_overrides_defaults():
    s = config.settings({"qps": 300, "tier": "medium"}, qps="50", tier=None)
    assert s.qps == 50 and s.tier == "medium"


def test_systems_parsing_dedupes_and_keeps_order():
    assert config.parse_systems("tesseract, trillian,tesseract") == ("tesseract", "trillian")
    assert config.parse_systems(["TRILLIAN"]) == ("trillian",)


@pytest.mark.parametrize("kwargs, needle", [
    ({"target": "mars"}, "--target"),
    ({"systems": "trillian,etcd"}, "--systems"),
    ({"systems": " , "}, "--systems"),
    ({"tier": "huge"}, "--tier"),
    ({"qps": "0"}, "--qps"),
    ({"qps": "-5"}, "--qps"),
    ({"qps": "2e9"}, "--qps"),
    ({"qps": "abc"}, "--qps"),
    ({"qps": "nan"}, "--qps"),
    ({"qps": True}, "--qps"),
    ({"duration": "1"}, "--duration"),
    ({"duration": "inf"}, "--duration"),
    ({"warmup": "-1"}, "--warmup"),
    ({"max_in_flight": "1.5"}, "--max_in_flight"),
    ({"repeats": "0"}, "--repeats"),
    ({"loadgen": "wrk"}, "--loadgen"),
    ({"dry_run": "maybe"}, "--dry-run"),
])
def test_bad_values_name_the_flag(kwargs, needle):
    with pytest.raises(BadInput) as err:
        config.settings(**kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_unknown_config_key_is_rejected():
    with pytest.raises(BadInput, match="unknown setting 'qpss'"):
        config.settings({"qpss": 5})


def test_as_dict_is_json_friendly():
    d = config.settings().as_dict()
    assert d["systems"] == ["trillian", "tesseract"] and d["extra"] == {}


def test_qps_levels():
    assert config.settings(qps=100, qps_levels="auto").qps_levels == (50.0, 100.0, 200.0, 400.0)
    assert config.settings(qps_levels="300, 100,100").qps_levels == (100.0, 300.0)
    assert config.settings().qps_levels == ()
    for bad in ("5,abc", "0", ",", ",".join(str(i) for i in range(1, 30))):
        with pytest.raises(BadInput, match="--qps-levels"):
            config.settings(qps_levels=bad)
