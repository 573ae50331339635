"""`scarlab dashboard` and `scarlab lab` never leave their server behind: SIGTERM / SIGINT to the command (or the
command being killed) stops Streamlit / JupyterLab and frees the port; a bad --port is one line before anything
starts; the dashboard listens where `server_settings` says (the Docker image's command: every interface)."""
from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith("linux")
pytestmark = pytest.mark.skipif(os.name != "posix", reason="process groups and signals are POSIX")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def _procs(*needles: str) -> list[int]:
    """Live (non-zombie) processes whose command line holds every needle (Linux /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and all(n in cmd for n in needles):
            found.append(int(d.name))
    return found


def _wait(pred, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def _start(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "scarlab", *args], cwd=REPO, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True)


def _cleanup(proc: subprocess.Popen, *needles: str) -> None:
    """Whatever a failed test left running: the command, and the server by its command line."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid in _procs(*needles):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _stops_with_command(proc, sig, port: int, needles: tuple[str, ...], log: Path) -> None:
    servers = _procs(*needles)
    assert servers, f"no server process found for {needles}: {log.read_text()[-2000:]}"
    t0 = time.monotonic()
    if sig == signal.SIGKILL:
        proc.kill()
    else:
        proc.send_signal(sig)
    proc.wait(30)
    if sig != signal.SIGKILL:
        assert proc.returncode == 0, log.read_text()[-2000:]
    assert _wait(lambda: _port_closed(port), 10), f"port {port} still answers 10 s after {sig.name}"
    assert _wait(lambda: not _procs(*needles), 10), f"server {needles} survived {sig.name}"
    print(f"{sig.name}: command and server gone after {time.monotonic() - t0:.1f} s")


# ----------------------------------------------------------------------------- --port
@pytest.mark.parametrize("command", ["dashboard", "lab"])
@pytest.mark.parametrize("port", ["70000", "0", "-1", "65536", "abc", "80.5", ""])
def test_bad_port_is_one_line_error_before_anything_starts(command, port, tmp_path, capsys, monkeypatch):
    from scarlab.cli import main

    def no(*a, **k):
        raise AssertionError("something was started")

    monkeypatch.setattr(subprocess, "Popen", no)
    monkeypatch.setattr("scarlab.pipeline.ensure_kernel", no)
    extra = ["--runs", str(tmp_path)] if command == "dashboard" else ["--notebooks", str(tmp_path)]
    assert main([command, *extra, "--port", port]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scarlab: error: --port"), err
    assert "1 to 65535" in lines[0] and not out


def test_bad_port_from_the_shell(tmp_path):
    for args in (["dashboard", "--runs", str(tmp_path), "--port", "70000"], ["lab", "--port", "-1"]):
        r = subprocess.run([sys.executable, "-m", "scarlab", *args], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "1 to 65535" in r.stderr, r.stderr


# ----------------------------------------------------------------------------- where the dashboard listens
def test_server_settings_order():
    from scarlab.commands.dashboard import server_settings
    from scarlab.errors import ScarlabError

    docker = {"STREAMLIT_SERVER_ADDRESS": "0.0.0.0"}
    assert server_settings(None, None, {}) == ("127.0.0.1", 8501)  # outside a container: loopback
    assert server_settings(None, None, docker) == ("0.0.0.0", 8501)
    assert server_settings("127.0.0.1", "8600", docker) == ("127.0.0.1", 8600)  # --address and --port win
    assert server_settings(None, None, {"STREAMLIT_SERVER_PORT": "8700"}) == ("127.0.0.1", 8700)
    with pytest.raises(ScarlabError, match=r"\$STREAMLIT_SERVER_PORT must be a whole number"):
        server_settings(None, None, {"STREAMLIT_SERVER_PORT": "http"})


def _dockerfile() -> tuple[dict, list[str]]:
    """The environment the image sets (``ENV``) and its command (``CMD``, JSON form), read from the Dockerfile."""
    env, cmd = {}, None
    for line in (REPO / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "ENV":
            parts = shlex.split(rest)
            if parts and "=" not in parts[0]:  # the legacy form: ENV KEY value
                env[parts[0]] = " ".join(parts[1:])
            else:
                env.update(part.split("=", 1) for part in parts)
        elif word.upper() == "CMD":
            cmd = json.loads(rest)
    return env, cmd


@pytest.mark.parametrize("in_image", [True, False], ids=["image-env", "no-env"])
def test_docker_image_command_listens_on_every_interface(in_image, tmp_path, monkeypatch, capsys):
    """No container engine runs here: the Dockerfile's CMD is run as the image would run it (its ENV set, the
    pipeline and the server stubbed), and the Streamlit line it starts must bind 0.0.0.0:8501 — the only address a
    published port reaches — while the same command without the image's ENV stays on 127.0.0.1."""
    from scarlab.cli import build_parser, main
    from scarlab.commands import dashboard

    env, cmd = _dockerfile()
    streamlit_env = {k: v for k, v in env.items() if k.startswith("STREAMLIT_")}
    if not in_image:
        streamlit_env.pop("STREAMLIT_SERVER_ADDRESS")
    expected = ("0.0.0.0" if in_image else "127.0.0.1", 8501)
    assert cmd[0] == "scarlab"
    args = build_parser(cmd[1:]).parse_args(cmd[1:])
    given = vars(args)  # options not given on the command line are absent (their config-file or default value)
    assert dashboard.server_settings(given.get("address"), given.get("port"), streamlit_env) == expected

    for k in ("STREAMLIT_SERVER_ADDRESS", "STREAMLIT_SERVER_PORT"):
        monkeypatch.delenv(k, raising=False)
    for k, v in streamlit_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo").mkdir(parents=True)  # where `scarlab demo` writes by default
    started = []
    monkeypatch.setattr("scarlab.pipeline.run_pipeline", lambda cfg, progress=True: None)
    monkeypatch.setattr("scarlab.commands._common.report", lambda *a, **k: None)
    monkeypatch.setattr(dashboard, "check_listen", lambda address, port: None)
    monkeypatch.setattr(dashboard, "supervise", lambda line, env=None: started.append(line) or 0)
    assert main(cmd[1:]) == 0
    (line,) = started
    assert (line[line.index("--server.address") + 1], int(line[line.index("--server.port") + 1])) == expected
    assert f"http://{expected[0]}:8501" in capsys.readouterr().out  # the printed URL names the real address


# ----------------------------------------------------------------------------- scarlab dashboard
@pytest.mark.skipif(not LINUX, reason="finds the server through /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_dashboard_server_stops_with_the_command(sig, tmp_path):
    """SIGKILL: the command cannot clean up; the server learns of it through PR_SET_PDEATHSIG (Linux)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    port = _free_port()
    log = tmp_path / "dashboard.log"
    needles = ("streamlit", "--server.port", str(port))
    proc = _start(["dashboard", "--runs", str(runs), "--port", str(port)], log)
    try:
        assert _wait(lambda: _answers(f"http://127.0.0.1:{port}/_stcore/health") or proc.poll() is not None, 120), \
            log.read_text()[-2000:]
        assert proc.poll() is None, log.read_text()[-2000:]
        _stops_with_command(proc, sig, port, needles, log)
    finally:
        _cleanup(proc, *needles)


def test_serve_nonblocking_stop_frees_the_port(tmp_path):
    from scarlab.commands.dashboard import serve

    with serve(tmp_path, 0, block=False, quiet=True, timeout=120) as srv:
        port = int(srv.url.rsplit(":", 1)[1])
        assert _answers(srv.url + "/_stcore/health")
    assert srv.process.poll() is not None
    assert _wait(lambda: _port_closed(port), 10)


# ----------------------------------------------------------------------------- scarlab lab
@pytest.mark.skipif(not LINUX, reason="finds the server through /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_lab_server_and_its_kernels_stop_with_the_command(sig, tmp_path):
    """JupyterLab with a running kernel (kernels live in their own session): the command's signal reaches
    JupyterLab as SIGTERM, which shuts its kernels down; none is left behind."""
    pytest.importorskip("jupyterlab")
    import json

    nb = tmp_path / "notebooks"
    nb.mkdir()
    port = _free_port()
    log = tmp_path / "lab.log"
    runtime = tmp_path / "runtime"
    needles = ("jupyterlab", f"--port={port}")
    kernel = ("ipykernel", str(runtime))  # the kernel's connection file lies in this test's runtime dir
    token = "scarlab-test-token"
    env = {"JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws"),
           "JUPYTER_TOKEN": token}
    proc = _start(["lab", "--notebooks", str(nb), "--port", str(port)], log, env)
    try:
        assert _wait(lambda: _answers(f"http://127.0.0.1:{port}/api") or proc.poll() is not None, 180), \
            log.read_text()[-2000:]
        assert proc.poll() is None, log.read_text()[-2000:]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/kernels", data=json.dumps({}).encode(),
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 201
        assert _wait(lambda: bool(_procs(*kernel)), 60), "the kernel did not start: " + log.read_text()[-2000:]
        _stops_with_command(proc, sig, port, needles, log)
        assert _wait(lambda: not _procs(*kernel), 10), f"a kernel survived {sig.name}"
    finally:
        _cleanup(proc, *needles)
        _cleanup(proc, *kernel)
