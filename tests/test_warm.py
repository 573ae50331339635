"""Warm kernels (scarlab.pipeline.warm): stage kernels forked from a zygote that imported torch & co. once — a real
stage runs in one, a zygote that died or went stale is replaced, and nothing is left behind."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scarlab.pipeline import warm
from scarlab.pipeline.warm import WarmKernels


def _split_spec(tmp_path):
    from scarlab.pipeline import PipelineConfig, plan

    cfg = PipelineConfig(dataset="digits", forget_classes=[0], methods=["scar"], epochs=1, device="cpu",
                         out=str(tmp_path / "p"), evaluate=False)
    return next(s for s in plan(cfg) if s.kind == "split")


def _private(monkeypatch, key: str) -> None:
    """A zygote of this test's own (the process's shared one is left alone: other tests fork from it) that imports
    only what a kernel needs to start: the tests of its mechanics need no torch."""
    unique = (key, os.getpid(), time.time())  # never a zygote another test or checkout left running
    monkeypatch.setattr(warm, "_ZYGOTE", None)
    monkeypatch.setattr(warm, "_key", lambda: unique)
    monkeypatch.setattr(warm, "PRELOAD", ("ipykernel.kernelapp",))


def test_a_stage_runs_in_a_kernel_forked_from_the_zygote(tmp_path):
    from scarlab.pipeline import execute_stage

    with WarmKernels() as pool:
        zygote = warm.zygote()
        taken = []
        real_take = pool.take
        pool.take = lambda: taken.append(real_take()) or taken[-1]
        run = execute_stage(_split_spec(tmp_path), warm=pool, say=lambda _: None)
        kernel = taken[0]
        assert kernel is not None and kernel.started and kernel.zygote is zygote
        assert kernel.process.wait(timeout=60) == 0  # it shut down with its stage; the zygote reaped it
        assert not kernel.log.exists()  # a stage that succeeded keeps no kernel log
        folder = pool._dir
    assert run.status == "complete" and run.file("split.npz").is_file() and run.file("notebook.ipynb").is_file()
    assert not folder.exists()
    assert zygote.alive()  # it stays: the next pipeline forks from it too


def test_an_unused_kernel_leaves_nothing_and_a_dead_or_stale_zygote_is_replaced(monkeypatch):
    _private(monkeypatch, "a zygote this test kills")
    with WarmKernels() as pool:
        k = pool.take()
        assert k is not None and not k.started and k.log.exists()
        k.discard()
        assert not k.log.exists()
        first = warm.zygote()
        os.kill(first.pid, signal.SIGKILL)
        first.process.wait()
        again = pool.take()  # its zygote died (killed, or idle while the pipeline waited): a successor, not a hang
        assert again is not None and again.zygote is not first
        again.discard()
    second = warm.zygote()
    assert second is again.zygote and second is not first and second.alive() and second.wait_ready()
    monkeypatch.setattr(warm, "_key", lambda: ("another interpreter or edited sources", os.getpid(), time.time()))
    third = warm.zygote()
    assert third is not second and not second.alive() and third.alive()
    assert second.process.wait(timeout=10) is not None  # the stale zygote was asked to exit, and did
    third.close(stop=True)


def test_forking_is_off_with_the_switch_and_outside_linux(monkeypatch):
    monkeypatch.setattr(warm.sys, "platform", "linux")
    monkeypatch.delenv("SCARLAB_WARM_KERNELS", raising=False)
    assert warm.enabled()
    monkeypatch.setenv("SCARLAB_WARM_KERNELS", "0")
    assert not warm.enabled()
    monkeypatch.delenv("SCARLAB_WARM_KERNELS")
    monkeypatch.setattr(warm.sys, "platform", "darwin")
    assert not warm.enabled()


def test_an_idle_zygote_exits_and_the_next_pipeline_starts_another(monkeypatch):
    monkeypatch.setattr(warm, "IDLE_S", 1)
    _private(monkeypatch, "a zygote of this test")
    idle = warm.zygote()
    assert idle.wait_ready()
    deadline = time.monotonic() + 30
    while idle.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not idle.alive()  # no request, no kernel: it let its memory go
    with WarmKernels() as pool:  # the next pipeline: a new zygote (this one, too, may exit after a second idle)
        assert pool._zygote is not None and pool._zygote is not idle


def test_pipelines_in_other_processes_fork_from_the_running_zygote(tmp_path, monkeypatch):
    """One zygote per user and key on the machine: a second process (another `scarlab pipeline`, a job of the Run
    page) connects to the running one instead of importing torch & co. again, and its kernel's exit is told to it."""
    _private(monkeypatch, "a zygote two processes share")
    mine = warm.zygote()
    assert mine.wait_ready() and mine.process is not None  # this process started it
    other = subprocess.run([sys.executable, "-c", f"KEY = {warm._key()!r}" + """
import json, os, sys, tempfile
from scarlab.pipeline import warm
warm._key = lambda: KEY
warm.PRELOAD = ("ipykernel.kernelapp",)
z = warm.zygote()
assert z.wait_ready()
k = z.fork(os.path.abspath("kernel.json"), os.path.abspath("kernel.log"), os.getcwd(), dict(os.environ))
k.terminate()
print(json.dumps({"zygote": z.pid, "started": z.process is not None, "kernel": k.pid, "exit": k.wait(60)}))
"""], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert other.returncode == 0, other.stderr[-2000:]
    seen = json.loads(other.stdout)
    assert seen["zygote"] == mine.pid and not seen["started"]  # it found this one running
    assert seen["exit"] == -signal.SIGTERM  # the kernel's end reached the process that asked for it
    mine.close(stop=True)
    assert mine.process.wait(timeout=10) is not None


def test_the_zygotes_socket_is_in_a_folder_only_the_user_may_open(monkeypatch, request):
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(dir="/tmp"))  # short: a socket's path holds about 100 bytes
    request.addfinalizer(lambda: shutil.rmtree(tmp))
    monkeypatch.setattr(warm.tempfile, "gettempdir", lambda: str(tmp))
    path = warm._socket_path(("a key",))
    folder = tmp / f"scarlab-{os.getuid()}"
    assert path.parent == folder and folder.stat().st_mode & 0o777 == 0o700
    assert warm._socket_path(("a key",)) == path and warm._socket_path(("another",)) != path
    folder.chmod(0o755)  # opened to others (by whoever made it): not used, nothing is shared
    private = warm._socket_path(("a key",))
    assert private.parent != folder and private.parent.stat().st_mode & 0o777 == 0o700


def test_a_pipeline_that_imported_sklearn_forks_from_the_same_zygote():
    """scikit-learn sets KMP_* variables when imported (the zygote imports it too): whether a pipeline process
    imported it before asking for its zygote does not make the zygote another one."""
    out = subprocess.run([sys.executable, "-c", """
import os
for k in ("KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK"):
    os.environ.pop(k, None)
from scarlab.pipeline import warm
before = warm._key()
import sklearn
assert "KMP_INIT_AT_FORK" in os.environ
print(before == warm._key())
"""], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "True", out.stderr[-2000:]


def test_stage_kernels_write_nothing_to_the_users_ipython_history(tmp_path, monkeypatch):
    """A stage's kernel, forked or started cold, keeps no IPython history (nbclient starts kernels with an in-memory
    one): each forked kernel used to add a session of its cells to the user's ~/.ipython history database (3,935
    sessions, 35 MB here after two days of tests and demos)."""
    from scarlab.pipeline import NOTEBOOKS, run_notebook

    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    with WarmKernels() as pool:
        for i, kernel in enumerate((pool.take(), None)):  # forked, then cold
            assert (kernel is None) == (i == 1)
            run_notebook(NOTEBOOKS / "02_split.ipynb", tmp_path / f"split{i}.ipynb",
                         {"dataset": "digits", "out_dir": str(tmp_path / f"split{i}")}, kernel)
            assert (tmp_path / f"split{i}" / "split.npz").is_file()
    assert not list((tmp_path / "ipython").rglob("history.sqlite"))


class _Kernel:
    """A kernel's shell and IOPub channels as a stage's client sees them: each kernel_info request is answered on
    shell; on IOPub its busy and idle statuses follow (after the welcome a new subscriber gets), unless the round is
    in ``lost`` (the subscription not yet through: jupyter_client's reason to check IOPub at all)."""

    def __init__(self, lost=(), answers=True):
        self.sent, self.iopub, self.waited, self.lost, self.answers = [], [], [], set(lost), answers
        self.shell, self.io = self._Channel(self, "shell"), self._Channel(self, "iopub")
        self.iopub.append({"msg_type": "iopub_welcome", "content": {}, "parent_header": {}})

    class _Channel:
        def __init__(self, kernel, name):
            self.kernel, self.name = kernel, name

        def send(self, msg):
            self.kernel.sent.append(msg["header"]["msg_id"])

        async def get_msg(self, timeout=None):
            from queue import Empty

            k = self.kernel
            if self.name == "shell":
                if not k.answers:
                    raise Empty
                msg_id = k.sent[-1]
                if len(k.sent) not in k.lost:
                    k.iopub += [{"msg_type": "status", "content": {"execution_state": state},
                                 "parent_header": {"msg_id": msg_id}} for state in ("busy", "idle")]
                return {"msg_type": "kernel_info_reply", "parent_header": {"msg_id": msg_id},
                        "content": {"protocol_version": "5.4"}}
            if k.iopub:
                return k.iopub.pop(0)
            k.waited.append(timeout)
            raise Empty


def _client(kernel, alive=True):
    from scarlab.pipeline.stage import _ready_client

    client = _ready_client()()
    client._shell_channel, client._iopub_channel = kernel.shell, kernel.io

    async def is_alive():
        return alive
    client._async_is_alive = is_alive
    return client


def test_a_ready_kernel_is_used_without_jupyter_clients_fixed_waits(monkeypatch):
    """jupyter_client drains IOPub after the kernel_info reply until 0.2 s pass with nothing, and checks a stopped
    kernel's exit every 0.1 s: ~0.2-0.3 s of each stage (02_split on digits: median 0.705 -> 0.473 s,
    bench/bench_kernel_waits.py). The stage's client stops at the idle status of the request the kernel answered,
    asks again when that status was lost, and still reports a kernel that died."""
    import asyncio

    import pytest

    from scarlab.pipeline.stage import EXIT_POLL_S, _kernel_manager

    ready = _Kernel()
    asyncio.run(_client(ready).wait_for_ready(timeout=5))
    assert len(ready.sent) == 1 and ready.iopub == [] and ready.waited == [0]  # nothing waited for

    late = _Kernel(lost={1})  # the first round's statuses never reach the client: it asks a second time
    asyncio.run(_client(late).wait_for_ready(timeout=5))
    assert len(late.sent) == 2 and late.iopub == [] and late.waited[-1] == 0

    with pytest.raises(RuntimeError, match="Kernel died before replying"):
        asyncio.run(_client(_Kernel(answers=False), alive=False).wait_for_ready(timeout=5))

    polls, slept = [], []

    async def is_alive(self):  # a kernel that takes three polls to exit
        polls.append(1)
        return len(polls) < 3

    async def sleep(s):
        slept.append(s)
    manager = _kernel_manager(Path(os.devnull))
    monkeypatch.setattr(manager, "_async_is_alive", is_alive)
    monkeypatch.setattr(asyncio, "sleep", sleep)
    asyncio.run(manager()._async_finish_shutdown(waittime=4))
    assert slept[:2] == [EXIT_POLL_S, EXIT_POLL_S] and set(slept) == {EXIT_POLL_S} and EXIT_POLL_S <= 0.01
