"""Deploy's pure parts: the CTFE config it generates, versions read from the pins."""
from __future__ import annotations

import re

from scripts import deploy


def test_textproto_bytes_round_trip():
    data = bytes(range(256))
    text = deploy.textproto_bytes(data)
    decoded = bytes(int(o, 8) for o in re.findall(r"\\(\d{3})", text))
    assert decoded == data and '"' not in text


def test_ctfe_config_is_a_log_config_set(tmp_path):
    text = deploy.ctfe_config(1234, tmp_path / "roots.pem", tmp_path / "k.pem", 'pa"ss', b"\x30\x59")
    assert text.startswith("config {") and "log_id: 1234" in text
    assert f'prefix: "{deploy.PREFIX}"' in text
    assert "[type.googleapis.com/keyspb.PEMKeyFile]" in text and 'password: "pa\\"ss"' in text
    assert 'der: "\\060\\131"' in text
    assert text.count("{") == text.count("}")


def test_upstream_versions_come_from_the_pins():
    versions = deploy.upstream_versions()
    assert versions["github.com/google/trillian"] == "v1.7.3"
    assert versions["github.com/google/certificate-transparency-go"] == "v1.3.3"
    assert versions["github.com/transparency-dev/tesseract"].startswith("v0.1.")


def test_knobs_that_decide_throughput_are_explicit():
    assert deploy.SIGNER_FLAGS == {"sequencer_interval": "100ms", "batch_size": "1000", "num_sequencers": "10"}
    assert deploy.TESSERACT_FLAGS["enable_publication_awaiter"] == "true"
    assert "rate_limit_old_not_before" in deploy.TESSERACT_FLAGS
    assert deploy.OTEL_OFF["OTEL_METRICS_EXPORTER"] == "none" and deploy.OTEL_OFF["OTEL_TRACES_EXPORTER"] == "none"
