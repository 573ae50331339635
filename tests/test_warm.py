"""Warm kernels (scarlab.pipeline.warm): stage kernels forked from a zygote that imported torch & co. once — a real
stage runs in one, a zygote that died or went stale is replaced, and nothing is left behind."""
from __future__ import annotations

import signal

from scarlab.pipeline import warm
from scarlab.pipeline.warm import WarmKernels


def _split_spec(tmp_path):
    from scarlab.pipeline import PipelineConfig, plan

    cfg = PipelineConfig(dataset="digits", forget_classes=[0], methods=["scar"], epochs=1, device="cpu",
                         out=str(tmp_path / "p"), evaluate=False)
    return next(s for s in plan(cfg) if s.kind == "split")


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
    assert zygote.alive()  # one per pipeline process: the next pipeline forks from it too


def test_an_unused_kernel_leaves_nothing_and_a_dead_or_stale_zygote_is_replaced(monkeypatch):
    with WarmKernels() as pool:
        k = pool.take()
        assert k is not None and not k.started and k.log.exists()
        k.discard()
        assert not k.log.exists()
        first = warm.zygote()
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        again = pool.take()  # its zygote died (killed, or idle while the pipeline waited): a successor, not a hang
        assert again is not None and again.zygote is not first
        again.discard()
    second = warm.zygote()
    assert second is again.zygote and second is not first and second.alive() and second.wait_ready()
    monkeypatch.setattr(warm, "_key", lambda: ("another interpreter or edited sources",))
    third = warm.zygote()
    assert third is not second and not second.alive() and third.alive()


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
    import time

    monkeypatch.setattr(warm, "IDLE_S", 1)
    monkeypatch.setattr(warm, "_key", lambda: ("a zygote of this test",))
    idle = warm.zygote()
    assert idle.wait_ready()
    deadline = time.monotonic() + 30
    while idle.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not idle.alive()  # no request, no kernel: it let its memory go
    with WarmKernels() as pool:  # the next pipeline: a new zygote (this one, too, may exit after a second idle)
        assert pool._zygote is not None and pool._zygote is not idle
