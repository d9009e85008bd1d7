"""The end of a DDP run: its process group destroyed while the interpreter is still whole."""
from __future__ import annotations

import torch.distributed as dist


def release_process_group() -> bool:
    """Destroy the default process group, if one is up; True if it was.

    Lightning destroys the group at exit only for NCCL. A gloo group (DDP on CPUs) left to the
    interpreter's teardown aborts now and then a run that finished, with SIGABRT ("terminate called
    without an active exception"; 2 of 52 two-rank test fits here): gloo's threads still hold work
    whose tensors need the GIL that teardown is taking away (pytorch/pytorch#190489). Call it only
    after the run's last collective, on the way out of a fit that succeeded (a rank that failed
    mid-collective would wait forever); a later ``init_process_group`` starts afresh.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return False
    dist.destroy_process_group()
    return True
