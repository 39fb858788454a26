"""The open-loop add-chain load generator: one asyncio sender, helper processes for certificates and
SCT verification, every outcome classified, every phase under a deadline.

Latency is measured from the *intended* send time (so a slow log cannot hide queueing behind a
slowed-down client: coordinated omission corrected) and reported next to service time (from the
actual send). Both histograms hold OK responses of the measured window (after warmup) only.
"""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import gc
import math
import multiprocessing as mp
import os
import platform
import resource
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
import psutil

from scripts import ctverify
from scripts.errors import BadInput, RunFailed
from scripts.loadgen import classify as cls
from scripts.loadgen import stats
from scripts.loadgen.certs import ChainShape, CertPool, Issuer
from scripts.loadgen.schedule import ARRIVALS, Schedule, pace

RESULT_SCHEMA = "loadgen-result/1"
MAX_RATE = 100_000.0
MAX_DURATION_S = 24 * 3600.0
MAX_IN_FLIGHT = 100_000
MAX_BODY = 64 * 1024
VERIFY_BATCH = 256
VERIFY_FLUSH_S = 0.05
START_LEAD_S = 0.05
LAG_P99_LIMIT_MS = 10.0     # schedule lag p99 above this: the client could not keep the schedule
MAX_SAMPLES = 2000          # time-to-integration samples per run
HEADERS = {"Content-Type": "application/json"}

TreeSizeProbe = Callable[[], "int | Awaitable[int]"]


@dataclass
class LoadSpec:
    """Everything that defines a load run; all of it (except the probe) is echoed in the result."""

    url: str                               # the add-chain endpoint, e.g. http://127.0.0.1:6962/x/ct/v1/add-chain
    log_public_key: str                    # path to the log's public key (PEM or DER SPKI)
    intermediate: str                      # path: intermediate certificate (PEM)
    intermediate_key: str                  # path: its private key (unencrypted PEM, PKCS#8 or SEC1)
    rate: float                            # offered add-chain requests per second
    duration_s: float                      # schedule length, warmup included
    root: str | None = None                # path: root certificate (PEM), needed for chain_length 3
    warmup_s: float = 0.0                  # arrivals before this offset are sent but not measured
    max_in_flight: int = 1000              # cap on outstanding requests; arrivals over it are skipped
    arrival: str = "constant"              # "constant" or "poisson"
    seed: int = 0
    timeout_s: float = 30.0                # per request attempt
    retries: int = 0                       # retries of pushback/timeout/transport errors
    retry_backoff_s: float = 0.5           # doubled per retry
    leaf_key: str = "ec-p256"
    chain_length: int = 2
    san_count: int = 1
    leaf_keys: int = 16
    generator_procs: int = 1
    verify_procs: int = 1                  # 0: verify inside the sender process
    prefill_s: float = 2.0                 # seconds of arrivals generated before the clock starts
    setup_deadline_s: float = 120.0
    client_bound_cpu: float = 0.9          # sender CPU (cores) at or above this marks the run client-bound
    client_bound_total_cpu: float | None = None  # same for sender + helpers together (issue 4 suggests 0.5)
    sender_cpu: int | None = None          # pin the sender process to this CPU; helpers then avoid it
    probe_interval_s: float = 1.0
    integration_wait_s: float = 10.0       # after the last response, keep probing this long at most
    label: str = ""
    tree_size_probe: TreeSizeProbe | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, doc: dict) -> "LoadSpec":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise BadInput(f"unknown load spec keys: {', '.join(unknown)}")
        try:
            return cls(**doc)
        except TypeError as exc:
            raise BadInput(f"load spec: {exc}") from None

    @property
    def shape(self) -> ChainShape:
        return ChainShape(self.leaf_key, self.chain_length, self.san_count, self.leaf_keys)

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise BadInput(msg)

        parts = urlsplit(self.url)
        need(parts.scheme in ("http", "https") and bool(parts.netloc), f"url {self.url!r}: need http(s)://host/…/add-chain")
        for name in ("rate", "duration_s", "warmup_s", "timeout_s", "retry_backoff_s", "prefill_s",
                     "setup_deadline_s", "client_bound_cpu", "probe_interval_s", "integration_wait_s"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                 f"{name} {value!r}: need a finite number")
        need(0 < self.rate <= MAX_RATE, f"rate {self.rate}: need 0 < rate <= {MAX_RATE:.0f}/s")
        need(0 < self.duration_s <= MAX_DURATION_S, f"duration {self.duration_s}s: need 0 < duration <= {MAX_DURATION_S:.0f}s")
        need(self.rate * self.duration_s >= 1, f"rate × duration = {self.rate * self.duration_s:g}: fewer than one request")
        need(0 <= self.warmup_s < self.duration_s, f"warmup {self.warmup_s}s: need 0 <= warmup < duration")
        need(isinstance(self.max_in_flight, int) and 1 <= self.max_in_flight <= MAX_IN_FLIGHT,
             f"max in flight {self.max_in_flight!r}: need 1..{MAX_IN_FLIGHT}")
        need(self.arrival in ARRIVALS, f"arrival {self.arrival!r}: one of {', '.join(ARRIVALS)}")
        need(0 < self.timeout_s <= 600, f"timeout {self.timeout_s}s: need 0 < timeout <= 600")
        need(isinstance(self.retries, int) and 0 <= self.retries <= 10, f"retries {self.retries!r}: need 0..10")
        need(isinstance(self.generator_procs, int) and 1 <= self.generator_procs <= 64,
             f"generator processes {self.generator_procs!r}: need 1..64")
        need(isinstance(self.verify_procs, int) and 0 <= self.verify_procs <= 64,
             f"verify processes {self.verify_procs!r}: need 0..64")
        need(self.probe_interval_s > 0, "probe interval must be positive")
        need(self.client_bound_total_cpu is None or (isinstance(self.client_bound_total_cpu, (int, float))
                                                      and self.client_bound_total_cpu > 0),
             f"client-bound total CPU {self.client_bound_total_cpu!r}: a positive number of cores")
        if self.sender_cpu is not None:
            cpus = sorted(os.sched_getaffinity(0))
            need(self.sender_cpu in cpus, f"sender CPU {self.sender_cpu!r}: not one of the usable CPUs {cpus}")
        self.shape.validate()

    def public(self) -> dict:
        doc = asdict(self)
        doc.pop("tree_size_probe", None)
        doc["tree_size_probe"] = self.tree_size_probe is not None
        return doc


@dataclass
class _Window:
    """Counters for one part of the run (warmup or measured window)."""

    counts: dict[str, int] = field(default_factory=lambda: {c: 0 for c in cls.CLASSES})
    latency: Any = field(default_factory=stats.new_histogram)
    service: Any = field(default_factory=stats.new_histogram)


class _Run:
    def __init__(self, spec: LoadSpec, pubkey_der: bytes, issuer: Issuer):
        self.spec = spec
        self.pubkey_der = pubkey_der
        self.issuer = issuer
        self.clock = time.perf_counter
        self.t0 = 0.0
        self.in_flight = 0
        self.scheduled = 0
        self.sent = 0
        self.skipped_in_flight = 0
        self.skipped_no_cert = 0
        self.retries = 0
        self.retried_ok = 0
        self.max_in_flight_seen = 0
        self.windows = {"warmup": _Window(), "measured": _Window()}
        self.lag = stats.new_histogram()
        self.status_codes: dict[str, int] = {}
        self.bad_reasons: dict[str, int] = {}
        self.transport_reasons: dict[str, int] = {}
        self.per_second_ok = stats.PerSecond()
        self.per_second_sent = stats.PerSecond()
        self.tasks: set[asyncio.Task] = set()
        self.pending: list[tuple[bytes, bytes]] = []
        self.pending_meta: list[tuple[float, float, float, bool, int]] = []
        self.verify_futures: set[asyncio.Future] = set()
        self.ok_seq = 0
        # time to integration
        self.samples: list[tuple[float, int]] = []        # (ack time offset, target size or index)
        self.sample_method: str | None = None
        self.sample_every = max(1, int(spec.rate * spec.duration_s / MAX_SAMPLES))
        self.tree_sizes: list[tuple[float, int]] = []
        self.probe_errors = 0
        self.probe_last_error: str | None = None
        self.start_tree_size: int | None = None
        self.runqueue_wait = 0.0

    # --- sending ------------------------------------------------------------------------------------

    def dispatch(self, intended: float, lag: float) -> None:
        self.scheduled += 1
        stats.record_s(self.lag, lag)
        if self.in_flight >= self.spec.max_in_flight:
            self.skipped_in_flight += 1
            return
        item = self.pool.take()
        if item is None:
            self.skipped_no_cert += 1
            return
        self.in_flight += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
        self.sent += 1
        self.per_second_sent.add(intended)
        task = asyncio.get_running_loop().create_task(self.request(intended, item))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        if resp.content_length is not None and resp.content_length <= MAX_BODY:
            return await resp.read()  # the common case: one call
        chunks: list[bytes] = []
        size = 0
        while size < MAX_BODY:
            chunk = await resp.content.read(MAX_BODY - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    async def request(self, intended: float, item: tuple[bytes, bytes]) -> None:
        leaf, body = item
        measured = intended >= self.spec.warmup_s
        attempts = 0
        try:
            while True:
                t_send = self.clock() - self.t0
                kind: str | None = None
                data = b""
                try:
                    async with self.session.post(self.spec.url, data=body, headers=HEADERS) as resp:
                        status = resp.status
                        data = await self._read_body(resp)
                    key = str(status)
                    self.status_codes[key] = self.status_codes.get(key, 0) + 1
                    kind = cls.classify_status(status, data)
                except TimeoutError:
                    kind = cls.TIMEOUT
                except (aiohttp.ClientError, OSError, ValueError) as exc:
                    kind = cls.TRANSPORT_ERROR
                    reason = type(exc).__name__
                    self.transport_reasons[reason] = self.transport_reasons.get(reason, 0) + 1
                t_done = self.clock() - self.t0
                if kind in cls.RETRYABLE and attempts < self.spec.retries:
                    attempts += 1
                    self.retries += 1
                    await asyncio.sleep(self.spec.retry_backoff_s * 2 ** (attempts - 1))
                    continue
                break
        finally:
            self.in_flight -= 1
        if kind is None:  # HTTP 200: the SCT decides
            self.pending.append((data, leaf))
            self.pending_meta.append((intended, t_send, t_done, measured, attempts))
            if len(self.pending) >= VERIFY_BATCH:
                self.flush_verify()
        else:
            self.record(kind, intended, t_send, t_done, measured)

    def record(self, kind: str, intended: float, t_send: float, t_done: float, measured: bool,
               attempts: int = 0) -> None:
        win = self.windows["measured" if measured else "warmup"]
        win.counts[kind] += 1
        if kind == cls.OK:
            stats.record_s(win.latency, t_done - intended)
            stats.record_s(win.service, t_done - t_send)
            self.per_second_ok.add(t_done)
            if attempts:
                self.retried_ok += 1

    # --- verification -------------------------------------------------------------------------------

    def flush_verify(self) -> None:
        if not self.pending:
            return
        items, meta = self.pending, self.pending_meta
        self.pending, self.pending_meta = [], []
        if self.verifier is None:
            self.apply_verdicts(cls.verify_batch(items), meta)
            return
        fut = asyncio.get_running_loop().run_in_executor(self.verifier, cls.verify_batch, items)
        self.verify_futures.add(fut)

        def done(f: asyncio.Future) -> None:
            self.verify_futures.discard(f)
            if f.cancelled():
                return
            if f.exception() is not None:
                self.verify_failure = f"SCT verifier failed: {f.exception()!r}"
                return
            self.apply_verdicts(f.result(), meta)

        fut.add_done_callback(done)

    def apply_verdicts(self, verdicts: list[cls.Verdict], meta: list[tuple[float, float, float, bool, int]]) -> None:
        for verdict, (intended, t_send, t_done, measured, attempts) in zip(verdicts, meta):
            if verdict.reason is None:
                self.record(cls.OK, intended, t_send, t_done, measured, attempts)
                self.ok_seq += 1
                self.maybe_sample(t_done, verdict.leaf_index)
            else:
                reason = verdict.reason[:120]
                self.bad_reasons[reason] = self.bad_reasons.get(reason, 0) + 1
                self.record(cls.BAD_SCT, intended, t_send, t_done, measured)

    async def verify_flusher(self) -> None:
        while True:
            await asyncio.sleep(VERIFY_FLUSH_S)
            self.flush_verify()

    # --- time to integration ------------------------------------------------------------------------

    def maybe_sample(self, t_done: float, leaf_index: int | None) -> None:
        if self.spec.tree_size_probe is None or self.ok_seq % self.sample_every:
            return
        if leaf_index is not None:
            self.sample_method = self.sample_method or "leaf_index"
            self.samples.append((t_done, leaf_index + 1))
        elif self.start_tree_size is not None and self.sample_method != "leaf_index":
            # No index in the SCT (RFC 6962): assume first-acknowledged, first-integrated. An estimate,
            # valid only while this generator is the log's only writer; labelled as such.
            self.sample_method = "fifo_estimate"
            self.samples.append((t_done, self.start_tree_size + self.ok_seq))

    async def probe_once(self, initial: bool = False) -> None:
        probe = self.spec.tree_size_probe
        assert probe is not None
        try:
            async with asyncio.timeout(max(1.0, self.spec.probe_interval_s * 5)):
                if asyncio.iscoroutinefunction(probe):
                    size = await probe()
                else:
                    size = await in_daemon_thread(probe)
            if initial:
                self.start_tree_size = int(size)
            else:
                self.tree_sizes.append((round(self.clock() - self.t0, 3), int(size)))
        except Exception as exc:  # noqa: BLE001 - a failed probe is counted, never fatal to sending
            self.probe_errors += 1
            self.probe_last_error = f"{type(exc).__name__}: {exc}"[:200]

    async def prober(self) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(self.spec.probe_interval_s)

    def integration_pending(self) -> bool:
        if not self.samples:
            return False
        top = self.tree_sizes[-1][1] if self.tree_sizes else -1
        return max(target for _, target in self.samples) > top

    def integration_result(self) -> dict | None:
        if self.spec.tree_size_probe is None:
            return None
        tti = stats.new_histogram()
        integrated = 0
        for t_ack, target in self.samples:
            when = next((t for t, size in self.tree_sizes if size >= target and t >= t_ack - self.spec.probe_interval_s), None)
            if when is not None:
                integrated += 1
                stats.record_s(tti, max(0.0, when - t_ack))
        return {
            "method": self.sample_method,
            "probe_interval_s": self.spec.probe_interval_s,
            "samples": len(self.samples),
            "integrated": integrated,
            "time_to_integration_ms": stats.summary_ms(tti),
            "start_tree_size": self.start_tree_size,
            "tree_sizes": [list(p) for p in self.tree_sizes],
            "probe_errors": self.probe_errors,
            "probe_last_error": self.probe_last_error,
        }

    # --- the run ------------------------------------------------------------------------------------

    def _expected_arrivals(self) -> int:
        n = self.spec.rate * self.spec.duration_s
        if self.spec.arrival == "poisson":
            n += 6 * math.sqrt(n)
        return int(math.ceil(n)) + 1

    async def main(self) -> dict:
        spec = self.spec
        raise_nofile(spec.max_in_flight + 256)
        me = psutil.Process()
        self.pool = CertPool(self.issuer, spec.shape, self._expected_arrivals(), spec.generator_procs,
                             ahead=max(4096, int(spec.rate * max(spec.prefill_s, 2.0))))
        self.verifier: cf.ProcessPoolExecutor | None = None
        self.verify_failure: str | None = None
        background: list[asyncio.Task] = []
        started_unix = None
        affinity = os.sched_getaffinity(0)  # restored at the end: pinning must not outlive the run
        try:
            self.pool.start()
            setup_end = time.monotonic() + spec.setup_deadline_s
            await asyncio.to_thread(self.pool.fill, int(spec.rate * spec.prefill_s) + 1, spec.setup_deadline_s)
            if spec.verify_procs > 0:
                self.verifier = cf.ProcessPoolExecutor(
                    spec.verify_procs, mp_context=mp.get_context("spawn"), initializer=cls.init_verifier,
                    initargs=(self.pubkey_der, self.pool_tail()))
                try:
                    async with asyncio.timeout(max(1.0, setup_end - time.monotonic())):
                        await asyncio.gather(*[asyncio.get_running_loop().run_in_executor(
                            self.verifier, cls.verify_batch, []) for _ in range(spec.verify_procs)])
                except TimeoutError:
                    raise RunFailed("SCT verifier processes did not start before the setup deadline") from None
            else:
                cls.init_verifier(self.pubkey_der, self.pool_tail())

            connector = aiohttp.TCPConnector(limit=spec.max_in_flight, limit_per_host=0, force_close=False,
                                             enable_cleanup_closed=True)
            timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout, raise_for_status=False,
                                             auto_decompress=False) as self.session:
                if spec.tree_size_probe is not None:
                    await self.probe_once(initial=True)  # the start size, before any of our entries
                background.append(asyncio.create_task(self.verify_flusher()))
                if spec.sender_cpu is not None:
                    pin_sender(me, self.helper_pids(), spec.sender_cpu)
                gc.collect()
                gc.freeze()  # long-lived setup objects out of the collector's way: fewer, shorter pauses
                cpu_start = me.cpu_times()
                wait_start = runqueue_wait_s()
                helpers_start = helper_cpu(self.helper_pids())
                self.t0 = self.clock() + START_LEAD_S
                started_unix = time.time() + START_LEAD_S
                if spec.tree_size_probe is not None:
                    background.append(asyncio.create_task(self.prober()))
                await pace(Schedule(spec.rate, spec.arrival, spec.seed), spec.duration_s,
                           lambda: self.clock() - self.t0, asyncio.sleep, self.dispatch)
                send_end = self.clock() - self.t0
                # Drain: every request has its own timeout; this deadline is the backstop.
                drain_s = spec.timeout_s * (spec.retries + 1) + spec.retry_backoff_s * (2 ** spec.retries) + 5.0
                abandoned = 0
                if self.tasks:
                    done, pending = await asyncio.wait(set(self.tasks), timeout=drain_s)
                    for task in pending:
                        task.cancel()
                    abandoned = len(pending)
                    if pending:
                        await asyncio.wait(pending, timeout=5.0)
                self.flush_verify()
                if self.verify_futures:
                    verify_deadline = 30.0 + len(self.verify_futures) * 0.5
                    _, still = await asyncio.wait(set(self.verify_futures), timeout=verify_deadline)
                    if still:
                        raise RunFailed(f"SCT verification did not finish within {verify_deadline:.0f}s")
                if self.verify_failure:
                    raise RunFailed(self.verify_failure)
                if self.pool.error:
                    raise RunFailed(self.pool.error)
                last_response = self.clock() - self.t0
                cpu_end = me.cpu_times()
                self.runqueue_wait = runqueue_wait_s() - wait_start
                helpers_end = helper_cpu(self.helper_pids())
                if spec.tree_size_probe is not None:
                    wait_end = self.clock() + spec.integration_wait_s
                    while self.integration_pending() and self.clock() < wait_end:
                        await asyncio.sleep(min(spec.probe_interval_s, 0.5))
                    await self.probe_once()
        finally:
            for thread in me.threads():
                try:
                    os.sched_setaffinity(thread.id, affinity)
                except OSError:
                    continue
            gc.unfreeze()
            for task in background:
                task.cancel()
            if background:
                await asyncio.gather(*background, return_exceptions=True)
            self.pool.close()
            if self.verifier is not None:
                self.verifier.shutdown(wait=False, cancel_futures=True)
        # Requests cancelled by the drain backstop never answered: timeouts (counted in the window).
        if abandoned:
            self.windows["measured"].counts[cls.TIMEOUT] += abandoned
        return self.result(started_unix, send_end, last_response, cpu_start, cpu_end, helpers_start,
                           helpers_end, abandoned)

    def helper_pids(self) -> list[int]:
        """This run's helper processes only (certificate generators, SCT verifiers): never other
        children of a process that imports the generator."""
        pids = list(self.pool.pids)
        if self.verifier is not None:
            pids += list(getattr(self.verifier, "_processes", None) or {})
        return pids

    def pool_tail(self) -> list[bytes]:
        tail = [self.issuer.intermediate_der]
        if self.spec.chain_length == 3 and self.issuer.root_der is not None:
            tail.append(self.issuer.root_der)
        return tail

    def result(self, started_unix, send_end, last_response, cpu_start, cpu_end, helpers_start, helpers_end,
               abandoned) -> dict:
        spec = self.spec
        measured = self.windows["measured"]
        warm = self.windows["warmup"]
        window_s = spec.duration_s - spec.warmup_s
        sender_cpu = (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system)
        busy_s = max(last_response, 1e-9)
        sender_cores = sender_cpu / busy_s
        helpers_cpu = sum(helpers_end.get(pid, 0.0) - helpers_start.get(pid, 0.0) for pid in helpers_end)
        lag = stats.summary_ms(self.lag)
        answered = sum(measured.counts.values())
        errors = answered - measured.counts[cls.OK]
        reasons = []
        if sender_cores >= spec.client_bound_cpu:
            reasons.append(f"sender used {sender_cores:.2f} of a core (limit {spec.client_bound_cpu})")
        if lag["p99"] is not None and lag["p99"] > LAG_P99_LIMIT_MS:
            reasons.append(f"schedule lag p99 {lag['p99']:.1f} ms > {LAG_P99_LIMIT_MS} ms")
        total_cores = (sender_cpu + helpers_cpu) / busy_s
        if spec.client_bound_total_cpu is not None and total_cores >= spec.client_bound_total_cpu:
            reasons.append(f"generator processes used {total_cores:.2f} cores (limit {spec.client_bound_total_cpu})")
        # The run-queue wait is reported, not judged: what matters is whether the schedule held (lag).
        if self.skipped_no_cert:
            reasons.append(f"certificate pool ran dry {self.skipped_no_cert} times")
        seconds = int(math.ceil(spec.duration_s))
        return {
            "schema": RESULT_SCHEMA,
            "status": "completed",
            "label": spec.label,
            "spec": spec.public(),
            "start_unix": round(started_unix, 3) if started_unix else None,
            "send_s": round(send_end, 3),
            "elapsed_s": round(last_response, 3),
            "window_s": window_s,
            "offered_rate": spec.rate,
            "scheduled": self.scheduled,
            "sent": self.sent,
            "skipped_in_flight_cap": self.skipped_in_flight,
            "skipped_no_cert": self.skipped_no_cert,
            "abandoned": abandoned,
            "max_in_flight_seen": self.max_in_flight_seen,
            "counts": dict(measured.counts),
            "warmup_counts": dict(warm.counts),
            "retries": self.retries,
            "retried_ok": self.retried_ok,
            "ok_qps": stats.rate(measured.counts[cls.OK], window_s),
            "error_rate": round(errors / answered, 6) if answered else None,
            "status_codes": dict(sorted(self.status_codes.items())),
            "bad_sct_reasons": dict(sorted(self.bad_reasons.items(), key=lambda kv: -kv[1])[:10]),
            "transport_errors": dict(self.transport_reasons),
            "latency_ms": stats.summary_ms(measured.latency),
            "service_ms": stats.summary_ms(measured.service),
            "schedule_lag_ms": lag,
            "per_second_ok": self.per_second_ok.series(seconds),
            "per_second_sent": self.per_second_sent.series(seconds),
            "cpu": {
                "sender_s": round(sender_cpu, 3),
                "sender_cores": round(sender_cores, 3),
                "helpers_s": round(helpers_cpu, 3),
                "total_cores": round(total_cores, 3),
                # Time the sender was runnable but waiting for a CPU (other processes had it): high values
                # mean the machine, not this code, delayed the schedule.
                "sender_runqueue_wait_s": round(self.runqueue_wait, 3),
                "cpus_available": len(os.sched_getaffinity(0)),
            },
            "client_bound": bool(reasons),
            "client_bound_reasons": reasons,
            "integration": self.integration_result(),
            "versions": {"python": platform.python_version(), "aiohttp": aiohttp.__version__},
        }


def in_daemon_thread(fn: Callable[[], Any]) -> asyncio.Future:
    """Run a blocking call in a daemon thread: if it hangs, the timeout abandons it and nothing (not
    even interpreter exit) waits for it, unlike an executor's worker threads."""
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def settle(value: Any, exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)

    def target() -> None:
        try:
            value, exc = fn(), None
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting coroutine
            value, exc = None, e
        try:
            loop.call_soon_threadsafe(settle, value, exc)
        except RuntimeError:
            pass  # the loop is gone: nobody is waiting any more

    threading.Thread(target=target, name="loadgen-probe", daemon=True).start()
    return fut


def helper_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each helper process (certificate generators, SCT verifiers)."""
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            continue
    return out


def runqueue_wait_s() -> float:
    """Seconds the sender's main thread spent runnable but not running (Linux schedstat), else 0."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def pin_sender(me: psutil.Process, helper_pids: list[int], cpu: int) -> None:
    """Give the sender process `cpu` and move the helper processes (all their threads) to the other
    CPUs. The sender's own helper threads stay with it: a thread that holds the GIL must not be
    preempted on a busy CPU while the event loop waits for it."""
    others = set(os.sched_getaffinity(0)) - {cpu}
    if others:
        for pid in helper_pids:
            try:
                tids = [t.id for t in psutil.Process(pid).threads()]
            except psutil.Error:
                continue
            for tid in tids:
                try:
                    os.sched_setaffinity(tid, others)
                except OSError:
                    continue
    for thread in me.threads():
        try:
            os.sched_setaffinity(thread.id, {cpu})
        except OSError:
            continue


def raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def load_inputs(spec: LoadSpec) -> tuple[bytes, Issuer]:
    try:
        key_bytes = Path(spec.log_public_key).read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read log public key: {exc}") from None
    try:
        pubkey = ctverify.load_public_key(key_bytes)
    except ctverify.VerifyError as exc:
        raise BadInput(f"log public key {spec.log_public_key}: {exc}") from None
    issuer = Issuer.from_files(Path(spec.intermediate), Path(spec.intermediate_key),
                              Path(spec.root) if spec.root else None)
    return ctverify.spki_der(pubkey), issuer


def run(spec: LoadSpec | dict) -> dict:
    """Run one load phase and return its JSON-serialisable result. Raises BadInput / RunFailed."""
    if isinstance(spec, dict):
        spec = LoadSpec.from_dict(spec)
    spec.validate()
    pubkey_der, issuer = load_inputs(spec)
    runner = _Run(spec, pubkey_der, issuer)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - pinned in requirements
        return asyncio.run(runner.main())
    return uvloop.run(runner.main())
