"""GPU slot scheduling: a semaphore over device ids."""

import threading
import time

import pytest

from harness.evals.scheduler import GpuSlots, gpus_arg


def test_gpu_slots_never_exceed_limit_and_never_share_devices():
    slots = GpuSlots(gpus_per_task=2, max_gpu_tasks=2)
    in_use: set[int] = set()
    lock = threading.Lock()
    clashes = []

    def work():
        with slots.slot() as ids:
            assert len(ids) == 2
            with lock:
                if in_use & set(ids):
                    clashes.append(ids)
                in_use.update(ids)
            time.sleep(0.02)
            with lock:
                in_use.difference_update(ids)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not clashes
    assert slots.peak == 2
    assert sorted(slots._free) == [0, 1, 2, 3]


def test_gpu_slots_block_until_release():
    slots = GpuSlots(gpus_per_task=1, max_gpu_tasks=1, devices=[3])
    held = slots.acquire()
    assert held == (3,) and gpus_arg(held) == "device=3"
    with pytest.raises(TimeoutError):
        slots.acquire(timeout=0.05)
    slots.release(held)
    assert slots.acquire(timeout=0.05) == (3,)


def test_gpu_slots_disabled_and_bad_settings():
    off = GpuSlots(gpus_per_task=0, max_gpu_tasks=0)
    assert off.acquire() == () and gpus_arg(()) == "none"
    with pytest.raises(ValueError, match="max-gpu-tasks"):
        GpuSlots(gpus_per_task=1, max_gpu_tasks=0)
    with pytest.raises(ValueError, match="need 4 devices"):
        GpuSlots(gpus_per_task=2, max_gpu_tasks=2, devices=[0, 1])
