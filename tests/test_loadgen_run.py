"""Short real runs of the load generator against tiny local servers (in a thread): one signing real
SCTs, one pushing back, one answering garbage, one never answering, one refusing connections."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from aiohttp import web

from scripts.errors import BadInput
from scripts.loadgen import LoadSpec, run
from scripts.loadgen.runner import RESULT_SCHEMA
from tests.test_loadgen import make_pki, signed_sct

CLASS_KEYS = {"ok", "pushback", "client_error", "server_error", "timeout", "transport_error", "bad_sct"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@contextlib.contextmanager
def serve(handler):
    """An aiohttp server on 127.0.0.1:<free port> in its own thread and loop; yields the add-chain URL."""
    ready = threading.Event()
    state: dict = {}

    def main():
        loop = asyncio.new_event_loop()
        state["loop"] = loop
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/log/ct/v1/add-chain", handler)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        state["port"] = site._server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{state['port']}/log/ct/v1/add-chain"
    finally:
        state["loop"].call_soon_threadsafe(state["loop"].stop)
        thread.join(10)


def spec(pki, url, **over) -> LoadSpec:
    paths = pki[0]
    base = dict(url=url, log_public_key=paths["log_public_key"], intermediate=paths["intermediate"],
                intermediate_key=paths["intermediate_key"], rate=200, duration_s=1.0, timeout_s=2.0,
                prefill_s=1.0, setup_deadline_s=60)
    return LoadSpec(**(base | over))


def leaf_of(body: bytes) -> bytes:
    return base64.b64decode(json.loads(body)["chain"][0])


def check_accounting(result: dict) -> None:
    assert result["schema"] == RESULT_SCHEMA and result["status"] == "completed"
    assert set(result["counts"]) == CLASS_KEYS
    assert result["scheduled"] == result["sent"] + result["skipped_in_flight_cap"] + result["skipped_no_cert"]
    answered = sum(result["counts"].values()) + sum(result["warmup_counts"].values())
    assert answered == result["sent"]
    json.dumps(result)  # JSON-serialisable


def test_good_log_every_response_ok(pki):
    log_key = pki[3]

    async def handler(request):
        return web.Response(body=signed_sct(log_key, leaf_of(await request.read())), content_type="application/json")

    with serve(handler) as url:
        result = run(spec(pki, url, rate=300, duration_s=1.5, warmup_s=0.5))
    check_accounting(result)
    assert result["offered_rate"] == 300
    assert result["scheduled"] == 450 and result["sent"] == 450
    assert result["counts"]["ok"] == 300 and result["warmup_counts"]["ok"] == 150
    assert result["error_rate"] == 0
    assert result["ok_qps"] == pytest.approx(300)
    assert sum(result["per_second_ok"]) == 450 and sum(result["per_second_sent"]) == 450
    lat, svc = result["latency_ms"], result["service_ms"]
    assert lat["count"] == svc["count"] == 300
    assert 0 < svc["p50"] <= lat["p50"] and lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]
    assert result["schedule_lag_ms"]["count"] == 450
    assert result["cpu"]["sender_s"] > 0 and result["cpu"]["helpers_s"] > 0
    assert result["status_codes"] == {"200": 450}
    assert result["spec"]["rate"] == 300 and result["integration"] is None


def test_wrong_log_key_is_bad_sct(pki, tmp_path):
    other = make_pki(tmp_path)[3]

    async def handler(request):
        return web.Response(body=signed_sct(other, leaf_of(await request.read())), content_type="application/json")

    with serve(handler) as url:
        result = run(spec(pki, url, verify_procs=0))
    check_accounting(result)
    assert result["counts"]["bad_sct"] == 200 and result["counts"]["ok"] == 0
    assert result["ok_qps"] == 0 and result["error_rate"] == 1
    assert any("log id" in r for r in result["bad_sct_reasons"])


def test_pushback_and_errors_classified(pki):
    answers = [(429, b""), (503, b""), (500, b"too many: pushback"), (500, b"boom"), (400, b"bad chain")]
    seen = {"n": 0}

    async def handler(request):
        await request.read()
        status, body = answers[seen["n"] % len(answers)]
        seen["n"] += 1
        return web.Response(status=status, body=body)

    with serve(handler) as url:
        result = run(spec(pki, url))
    check_accounting(result)
    c = result["counts"]
    assert c["pushback"] == 120 and c["server_error"] == 40 and c["client_error"] == 40 and c["ok"] == 0
    assert result["status_codes"] == {"400": 40, "429": 40, "500": 80, "503": 40}


def test_garbage_200_and_timeouts_do_not_hang(pki):
    seen = {"n": 0}

    async def handler(request):
        await request.read()
        seen["n"] += 1
        if seen["n"] % 2:
            return web.Response(body=b"\x00\xff garbage {")
        await asyncio.sleep(3)  # well past the 0.5 s client timeout
        return web.Response(body=b"too late")

    with serve(handler) as url:
        start = time.monotonic()
        result = run(spec(pki, url, rate=50, timeout_s=0.5))
        took = time.monotonic() - start
    check_accounting(result)
    assert result["counts"]["bad_sct"] == 25 and result["counts"]["timeout"] == 25
    assert "response body is not JSON" in result["bad_sct_reasons"]
    assert took < 15


def test_never_answering_endpoint_times_out(pki):
    # A listener that accepts and then says nothing at all.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1024)
    port = srv.getsockname()[1]
    try:
        start = time.monotonic()
        result = run(spec(pki, f"http://127.0.0.1:{port}/ct/v1/add-chain", rate=20, timeout_s=0.5))
        assert time.monotonic() - start < 15
    finally:
        srv.close()
    check_accounting(result)
    assert result["counts"]["timeout"] + result["counts"]["transport_error"] == 20
    assert result["counts"]["ok"] == 0


def test_refused_connections_are_transport_errors(pki):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run(spec(pki, f"http://127.0.0.1:{port}/ct/v1/add-chain", rate=20))
    check_accounting(result)
    assert result["counts"]["transport_error"] == 20
    assert result["transport_errors"]


def test_in_flight_cap_skips_are_counted(pki):
    log_key = pki[3]

    async def handler(request):
        body = await request.read()
        await asyncio.sleep(0.5)
        return web.Response(body=signed_sct(log_key, leaf_of(body)))

    with serve(handler) as url:
        result = run(spec(pki, url, rate=100, duration_s=1.0, max_in_flight=5))
    check_accounting(result)
    assert result["scheduled"] == 100
    assert result["max_in_flight_seen"] == 5
    assert 5 <= result["sent"] <= 20 and result["skipped_in_flight_cap"] == 100 - result["sent"]
    assert result["counts"]["ok"] == result["sent"]
    # Latency counts from the intended time, service time from the send: both ~0.5 s here.
    assert result["latency_ms"]["p50"] >= 500 and result["service_ms"]["p50"] >= 500


def test_retried_success_counted_once(pki):
    log_key = pki[3]
    tried: set[bytes] = set()

    async def handler(request):
        leaf = leaf_of(await request.read())
        if leaf not in tried:
            tried.add(leaf)
            return web.Response(status=503, body=b"busy")
        return web.Response(body=signed_sct(log_key, leaf))

    with serve(handler) as url:
        result = run(spec(pki, url, rate=50, retries=2, retry_backoff_s=0.05))
    check_accounting(result)
    assert result["counts"]["ok"] == 50 and result["counts"]["pushback"] == 0
    assert result["retries"] == 50 and result["retried_ok"] == 50
    assert result["status_codes"] == {"200": 50, "503": 50}


def test_time_to_integration_with_leaf_index(pki):
    log_key = pki[3]
    accepted = {"n": 0}

    async def handler(request):
        leaf = leaf_of(await request.read())
        index = accepted["n"]
        accepted["n"] += 1
        ext = b"\x00\x00\x05" + index.to_bytes(5, "big")
        return web.Response(body=signed_sct(log_key, leaf, ext))

    def probe() -> int:  # a tree that integrates everything accepted
        return accepted["n"]

    with serve(handler) as url:
        result = run(spec(pki, url, rate=100, duration_s=1.0, tree_size_probe=probe, probe_interval_s=0.1,
                          integration_wait_s=2))
    integ = result["integration"]
    assert integ["method"] == "leaf_index" and integ["start_tree_size"] == 0
    assert integ["samples"] > 0 and integ["integrated"] == integ["samples"]
    assert integ["time_to_integration_ms"]["max"] <= 1000
    assert integ["tree_sizes"][-1][1] == 100
    assert result["spec"]["tree_size_probe"] is True


def test_cli_writes_result_and_status_record(pki, tmp_path):
    paths = pki[0]
    log_key = pki[3]

    async def handler(request):
        return web.Response(body=signed_sct(log_key, leaf_of(await request.read())))

    out = tmp_path / "r.json"
    with serve(handler) as url:
        proc = subprocess.run([sys.executable, "-m", "scripts.loadgen", "--url", url, "--log-public-key",
                               paths["log_public_key"], "--intermediate", paths["intermediate"],
                               "--intermediate-key", paths["intermediate_key"], "--rate", "50", "--duration", "1",
                               "--out", str(out), "--label", "test"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["counts"]["ok"] == 50 and doc["label"] == "test"

    bad = subprocess.run([sys.executable, "-m", "scripts.loadgen", "--url", "http://127.0.0.1:9/x", "--log-public-key",
                          paths["log_public_key"], "--rate", "0", "--duration", "1", "--out", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: rate") and bad.stderr.count("\n") == 1
    assert json.loads(out.read_text())["status"] == "failed"


def test_bad_spec_dict():
    with pytest.raises(BadInput):
        run({"url": "http://x/", "rate": 1})


def test_hanging_and_failing_probes_never_block(pki):
    log_key = pki[3]

    async def handler(request):
        return web.Response(body=signed_sct(log_key, leaf_of(await request.read())))

    def hang() -> int:
        time.sleep(3600)
        return 0

    def fail() -> int:
        raise OSError("checkpoint unreachable")

    with serve(handler) as url:
        for probe, errors in ((hang, "TimeoutError"), (fail, "OSError")):
            start = time.monotonic()
            result = run(spec(pki, url, rate=20, tree_size_probe=probe, probe_interval_s=0.2, integration_wait_s=1))
            assert time.monotonic() - start < 20
            assert result["counts"]["ok"] == 20
            integ = result["integration"]
            assert integ["probe_errors"] >= 1 and integ["probe_last_error"].startswith(errors)
            assert integ["samples"] == 0 and integ["start_tree_size"] is None


def test_sender_pinning_is_undone_after_the_run(pki):
    log_key = pki[3]
    before = os.sched_getaffinity(0)

    async def handler(request):
        return web.Response(body=signed_sct(log_key, leaf_of(await request.read())))

    with serve(handler) as url:
        result = run(spec(pki, url, rate=50, sender_cpu=max(before)))
        assert result["counts"]["ok"] == 50 and result["spec"]["sender_cpu"] == max(before)
        assert os.sched_getaffinity(0) == before
        with pytest.raises(BadInput, match="sender CPU"):
            run(spec(pki, url, sender_cpu=max(before) + 64))
