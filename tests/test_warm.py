"""Warm kernels (scarlab.pipeline.warm): the pool hands out live waiting processes, replaces what it hands out,
skips one that died while waiting, and leaves no process or file behind when it closes."""
from __future__ import annotations

import time

from scarlab.pipeline.warm import WarmKernels


def test_pool_hands_out_live_kernels_and_leaves_nothing_behind():
    with WarmKernels(1) as pool:
        first = pool.take()
        assert first is not None and first.alive() and not first.started
        second = pool.take()  # the replacement started when the first was taken
        assert second is not None and second is not first and second.alive()
        for k in (first, second):
            k.discard()
            assert not k.alive() and not k.log.exists()
        third = pool._ready[0] if pool._ready else None
        deadline = time.monotonic() + 60
        while third is None and time.monotonic() < deadline:  # the next replacement, still starting
            time.sleep(0.1)
            third = pool._ready[0] if pool._ready else None
        assert third is not None
        third.process.kill()
        third.process.wait()
        got = pool.take()  # the dead one is discarded and replaced (waited for: it is ahead of a cold start)
        assert got is None or (got is not third and got.alive())
        assert got is not None or pool._starting or pool._ready  # a replacement is on its way
        if got is not None:
            got.discard()
        folder, waiting = pool._dir, list(pool._ready)
    assert all(not k.alive() for k in waiting)
    assert not folder.exists()
