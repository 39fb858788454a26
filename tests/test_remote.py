"""SSH target, the pure parts: host checks, bind address, state translation, joining the two hosts' records.

No sshd here (tests/test_remote_ssh.py runs the real one).
"""
from __future__ import annotations

import pytest

from scripts import config, remote, sshhost
from scripts.errors import BadInput, Interrupted, RunFailed

GOOD_PROBE = {"system": "Linux", "machine": "x86_64", "python": [3, 11, 2], "venv": True, "uid": 1000,
              "home": "/home/ops", "ssh_connection": "192.0.2.9 50000 192.0.2.10 22",
              "mariadb": {"server": "/usr/sbin/mariadbd", "install_db": "/usr/bin/mariadb-install-db",
                          "client": "/usr/bin/mariadb"},
              "tools": {"tar": True, "sha256sum": True}, "apt": True, "sudo": False}
NO_MARIADB = {**GOOD_PROBE, "mariadb": {"server": None, "install_db": None, "client": None}}


# --------------------------------------------------------------------------- host checks


def test_a_linux_host_with_everything_passes():
    assert remote.check_host(GOOD_PROBE, where="vm", need_mariadb=True, install_mariadb=False) is False


@pytest.mark.parametrize("probe, words", [
    ({"system": "Darwin"}, "not a Linux host (Darwin)"),
    ({"system": "no POSIX uname"}, "not a Linux host"),
    ({**GOOD_PROBE, "python": [3, 8, 10]}, "python3 3.8.10 is too old"),
    ({"system": "Linux", "python": []}, "python3 is not installed"),
    ({**GOOD_PROBE, "venv": False}, "install python3-venv"),
    ({**GOOD_PROBE, "tools": {"tar": False, "sha256sum": True}}, "missing tar"),
])
def test_a_host_that_cannot_run_the_harness_is_bad_input_before_any_change(probe, words):
    with pytest.raises(BadInput) as err:
        remote.check_host(probe, where="vm", need_mariadb=False, install_mariadb=False)
    assert words in str(err.value) and "vm" in str(err.value)


def test_binaries_built_here_must_match_the_hosts_architecture():
    assert remote.check_host(GOOD_PROBE, where="vm", need_mariadb=False, install_mariadb=False,
                             local_machine="AMD64") is False
    with pytest.raises(BadInput, match="vm is aarch64 but the binaries in bin/ are built for x86_64"):
        remote.check_host({**GOOD_PROBE, "machine": "arm64"}, where="vm", need_mariadb=False, install_mariadb=False,
                          local_machine="x86_64")


def test_mariadb_is_installed_only_with_the_explicit_flag():
    with pytest.raises(BadInput, match="--install-mariadb"):
        remote.check_host(NO_MARIADB, where="vm", need_mariadb=True, install_mariadb=False)
    # A load generator host needs no database.
    assert remote.check_host(NO_MARIADB, where="vm", need_mariadb=False, install_mariadb=False) is False


def test_installing_mariadb_needs_root_or_passwordless_sudo():
    with pytest.raises(BadInput, match="root or passwordless sudo"):
        remote.check_host(NO_MARIADB, where="vm", need_mariadb=True, install_mariadb=True)
    assert remote.check_host({**NO_MARIADB, "sudo": True}, where="vm", need_mariadb=True, install_mariadb=True)
    with pytest.raises(BadInput, match="no apt-get"):
        remote.check_host({**NO_MARIADB, "sudo": True, "apt": False}, where="vm", need_mariadb=True,
                          install_mariadb=True)


def test_install_flag_from_opts_or_environment(monkeypatch):
    monkeypatch.delenv("CTB_SSH_INSTALL_MARIADB", raising=False)
    assert not remote.install_mariadb_wanted({})
    assert remote.install_mariadb_wanted({"install_mariadb": True})
    monkeypatch.setenv("CTB_SSH_INSTALL_MARIADB", "yes")
    assert remote.install_mariadb_wanted({})


# --------------------------------------------------------------------------- bind address, workdir, requirements


def test_endpoints_bind_the_address_ssh_arrived_on():
    assert remote.bind_address(GOOD_PROBE) == "192.0.2.10"
    assert remote.bind_address({**GOOD_PROBE, "ssh_connection": "::ffff:10.0.0.1 1 ::ffff:10.0.0.2 22"}) == "10.0.0.2"
    assert remote.bind_address(GOOD_PROBE, "0.0.0.0") == "0.0.0.0"


def test_ipv6_or_unknown_arrival_address_asks_for_an_override():
    with pytest.raises(BadInput, match="CTB_SSH_BIND_ADDRESS"):
        remote.bind_address({**GOOD_PROBE, "ssh_connection": "2001:db8::1 5 2001:db8::2 22"})
    with pytest.raises(BadInput, match="CTB_SSH_BIND_ADDRESS"):
        remote.bind_address({**GOOD_PROBE, "ssh_connection": ""})


def test_workdir_is_under_the_remote_home_unless_absolute(monkeypatch):
    monkeypatch.delenv("CTB_SSH_WORKDIR", raising=False)
    assert remote.workdir(GOOD_PROBE) == "/home/ops/ct-bench"
    monkeypatch.setenv("CTB_SSH_WORKDIR", "bench2")
    assert remote.workdir(GOOD_PROBE) == "/home/ops/bench2"
    monkeypatch.setenv("CTB_SSH_WORKDIR", "/srv/ctb")
    assert remote.workdir(GOOD_PROBE) == "/srv/ctb"


def test_host_requirements_are_the_pinned_lines():
    text = "# comment\ninvoke==2.2.1\n\nrequests==2.34.2  # why\n"
    assert remote.host_requirements(text) == ["invoke==2.2.1", "requests==2.34.2"]


def test_settings_survive_the_trip_to_the_load_host():
    s = config.settings(systems="tesseract", qps=75, duration=20, warmup=2, target="ssh", host="vm")
    again = config.settings(remote.settings_values(s.as_dict()))
    assert again == s


def test_place_env_gives_each_role_its_own_dirs():
    place = remote.remote_place(sshhost.LocalRunner(), "/w", "stack", "10.0.0.2")
    env = place.env()
    assert env["CTB_STATE_DIR"] == "/w/stack/state" and env["CTB_PKI_DIR"] == "/w/stack/pki"
    assert env["CTB_BIN_DIR"] == "/w/bin" and env["CTB_BIND_ADDRESS"] == "10.0.0.2"
    assert env["CTB_TRILLIAN_SCHEMA"] == f"/w/harness/{remote.SCHEMA_NAME}"


# --------------------------------------------------------------------------- state as the load host sees it


def _stack_state(bind: str = "10.0.0.2") -> dict:
    return {
        "target": "local", "version": 1, "log_dir": "/w/stack/state/logs",
        "pki": {"dir": "/w/stack/pki", "roots": "/w/stack/pki/roots.pem"},
        "components": {n: {"pid": 10 + i, "seq": i} for i, n in enumerate(
            ["mariadb", "trillian_log_server", "trillian_log_signer", "ct_server", "tesseract", "tesseract_static"])},
        "systems": {
            "trillian": {"api": "rfc6962", "base_url": f"http://{bind}:7000/bench",
                         "add_chain_url": f"http://{bind}:7000/bench/ct/v1/add-chain",
                         "sth_url": f"http://{bind}:7000/bench/ct/v1/get-sth", "ctfe_host": f"{bind}:7000",
                         "public_key": "/w/stack/pki/logs/trillian.pub.pem", "log_config": "/w/stack/state/run/ctfe/x",
                         "accepted_counter": {"url": "http://127.0.0.1:7001/metrics"}, "tree_id": 5,
                         "components": ["mariadb", "trillian_log_server", "trillian_log_signer", "ct_server"]},
            "tesseract": {"api": "static-ct", "base_url": f"http://{bind}:7100/bench",
                          "add_chain_url": f"http://{bind}:7100/bench/ct/v1/add-chain",
                          "read_url": f"http://{bind}:7200", "checkpoint_url": f"http://{bind}:7200/checkpoint",
                          "public_key": "/w/stack/pki/logs/tesseract.pub.pem", "origin": "127.0.0.1/bench",
                          "components": ["tesseract", "tesseract_static"]},
        },
    }


def test_loadgen_state_points_at_its_own_pki_copy_and_watches_no_components():
    st = _stack_state()
    out = remote.loadgen_state(st, pki_dir="/l/loadgen/pki", log_config="/l/cfg", address="vm.example")
    assert out["pki"] == {"dir": "/l/loadgen/pki", "roots": "/l/loadgen/pki/roots.pem"}
    assert out["components"] == {}
    tri, tes = out["systems"]["trillian"], out["systems"]["tesseract"]
    assert tri["components"] == [] and tes["components"] == []
    assert tri["public_key"] == "/l/loadgen/pki/logs/trillian.pub.pem" and tri["log_config"] == "/l/cfg"
    assert "accepted_counter" not in tri  # loopback-only on the stack: the sampler there reads it
    assert tri["add_chain_url"] == "http://10.0.0.2:7000/bench/ct/v1/add-chain"  # a real address is kept
    assert tes["origin"] == "127.0.0.1/bench"  # the log's identity, not an address
    assert st["systems"]["trillian"]["components"]  # the input is not modified


def test_a_wildcard_bind_is_replaced_by_the_hosts_address():
    out = remote.loadgen_state(_stack_state("0.0.0.0"), pki_dir="/p", log_config="/c", address="vm.example")
    tri, tes = out["systems"]["trillian"], out["systems"]["tesseract"]
    assert tri["sth_url"] == "http://vm.example:7000/bench/ct/v1/get-sth" and tri["ctfe_host"] == "vm.example:7000"
    assert tes["checkpoint_url"] == "http://vm.example:7200/checkpoint"


def test_a_key_outside_the_pki_dir_is_refused():
    st = _stack_state()
    st["systems"]["tesseract"]["public_key"] = "/elsewhere/key.pem"
    with pytest.raises(RunFailed, match="not under the stack's PKI dir"):
        remote.loadgen_state(st, pki_dir="/p", log_config="/c", address="vm")


# --------------------------------------------------------------------------- joining the two records


SETTINGS = config.settings(qps=50, duration=20, warmup=2, systems="trillian", target="ssh")
COMPONENTS = ["mariadb", "trillian_log_server", "trillian_log_signer", "ct_server"]


def _load_obs(*, offset: float = 1000.0, gen_busy: float = 0.1) -> dict:
    """What hammer.measure on the load host returns (its clock: monotonic 100..125, window 102..122)."""
    ts = [100.0 + i for i in range(26)]
    return {
        "system": "trillian", "offered_qps": 50, "duration_s": 20, "warmup_s": 2, "status": "ok", "reason": "",
        "window_start": 102.0, "window_end": 122.0, "window_s": 20.0, "entries_integrated": 1000, "qps": 50.0,
        "tree_size_window_start": 100, "tree_size_window_end": 1100, "backlog_at_window_end": 0,
        "generator": {"kind": "uniform", "offered_qps": 50},
        "samples": {"series": {"loadgen_trillian": [[t, 0.5 * (t - 100), 100 << 20] for t in ts]},
                    "machine": [[t, gen_busy * 2 * (t - 100), 2.0 * (t - 100)] for t in ts], "cores": 2},
        "clock_offset": offset,
    }


def _stack_record(*, offset: float = 500.0, died=None, stalled=None, accepted=None) -> dict:
    """The stack sampler's record; its monotonic clock is 500 s ahead of the load host's (same wall clock)."""
    ts = [600.0 + i for i in range(26)]  # = load host 100..125
    return {"samples": {"series": {n: [[t, 0.25 * (t - 600), 50 << 20] for t in ts] for n in COMPONENTS},
                        "machine": [[t, 0.5 * (t - 600), 4.0 * (t - 600)] for t in ts], "cores": 4},
            "died": died or {}, "stalled": stalled or {}, "accepted": accepted or [], "clock_offset": offset}


def test_components_on_the_stack_are_measured_over_the_window_on_one_clock():
    out = remote.combine(_load_obs(), _stack_record(), SETTINGS, COMPONENTS)
    assert out["status"] == "ok" and out["qps"] == 50.0
    res = out["resources"]
    assert set(res["components"]) == set(COMPONENTS)
    assert res["components"]["mariadb"]["cores"] == pytest.approx(0.25)
    assert res["components"]["mariadb"]["cpu_seconds"] == pytest.approx(5.0)  # 20 s window, not 25 s of samples
    assert res["generator"]["cores"] == pytest.approx(0.5)
    assert res["machine_cpu_share"] == pytest.approx(0.125) and res["cores"] == 4
    assert res["loadgen_machine_cpu_share"] == pytest.approx(0.1) and res["loadgen_cores"] == 2
    assert out["limited_by"].startswith("offered rate")


def test_a_component_that_died_on_the_stack_during_the_window_fails_the_run():
    out = remote.combine({**_load_obs(), "error": "cannot read trillian's signed tree head"},
                         _stack_record(died={"trillian_log_signer": 610.0}), SETTINGS, COMPONENTS)
    assert out["status"] == "failed" and out["qps"] is None
    assert out["reason"] == "component died during the run: trillian_log_signer"
    assert "resources" not in out and "limited_by" not in out


def test_a_component_that_died_after_the_window_does_not_fail_it():
    out = remote.combine(_load_obs(), _stack_record(died={"ct_server": 623.5}), SETTINGS, COMPONENTS)
    assert out["status"] == "ok"


def test_a_stalled_component_fails_the_run():
    out = remote.combine(_load_obs(), _stack_record(stalled={"mariadb": 615.0}), SETTINGS, COMPONENTS)
    assert out["status"] == "failed" and "stalled" in out["reason"] and "mariadb" in out["reason"]


def test_accepted_scts_in_the_window_come_from_the_stacks_counter():
    accepted = [[600.0 + i, 10.0 + 60 * i] for i in range(26)]  # 60 SCTs/s vs 50 integrated/s
    out = remote.combine(_load_obs(), _stack_record(accepted=accepted), SETTINGS, COMPONENTS)
    assert out["accepted_in_window"] == 1200
    assert out["sustainable"] is False  # 200 accepted but not integrated > 10 % of 1000


def test_a_saturated_load_generator_machine_makes_the_run_client_bound():
    obs = _load_obs(gen_busy=0.95)
    obs["qps"], obs["entries_integrated"], obs["tree_size_window_end"] = 30.0, 600, 700
    out = remote.combine(obs, _stack_record(), SETTINGS, COMPONENTS)
    labels = out["resources"]["labels"]
    assert "client-bound" in labels and "load generator machine CPU saturated" in labels
    assert out["limited_by"] == "load generator (client-bound)"


def test_a_failed_load_host_run_stays_failed():
    obs = {**_load_obs(), "generator_exited": True, "generator_exit_codes": {"loadgen_trillian": 1}}
    out = remote.combine(obs, _stack_record(), SETTINGS, COMPONENTS)
    assert out["status"] == "failed" and "load generator exited" in out["reason"]


# --------------------------------------------------------------------------- sshhost: pure helpers


def test_command_line_quotes_everything():
    line = sshhost.command_line(["python", "-m", "x", "a b"], env={"K": "v w"}, cwd="/h d")
    assert line == "cd '/h d' && exec env 'K=v w' python -m x 'a b'"


def test_step_errors_keep_their_exit_code_meaning():
    bad = sshhost.Result(2, "", "Traceback...\nerror: --qps: expected a number\n")
    with pytest.raises(BadInput, match="vm: python -m scripts.deploy: --qps: expected a number"):
        sshhost.raise_for(bad, "python -m scripts.deploy", "vm")
    with pytest.raises(RunFailed, match="exit 1"):
        sshhost.raise_for(sshhost.Result(1, "", ""), "x", "vm")
    with pytest.raises(Interrupted):
        sshhost.raise_for(sshhost.Result(130, "", "error: interrupted"), "x", "vm")
    assert sshhost.raise_for(sshhost.Result(0, "ok", ""), "x", "vm").stdout == "ok"


def test_known_hosts_come_from_the_ssh_config_or_openssh_defaults(tmp_path):
    files = sshhost.known_hosts_files({"userknownhostsfile": f"{tmp_path}/a {tmp_path}/b"})
    assert [str(f) for f in files[:2]] == [f"{tmp_path}/a", f"{tmp_path}/b"]
    assert str(files[2]) == "/etc/ssh/ssh_known_hosts"
    defaults = sshhost.known_hosts_files({})
    assert defaults[0].name == "known_hosts" and defaults[0].is_absolute()


def test_host_keys_are_checked_unless_the_ssh_config_opts_out():
    assert sshhost.host_key_checking({})
    assert sshhost.host_key_checking({"stricthostkeychecking": "accept-new"})
    assert not sshhost.host_key_checking({"stricthostkeychecking": "no"})


def test_no_host_is_bad_input():
    with pytest.raises(BadInput, match="--host is required"):
        sshhost.connect("")
