"""release_process_group ends a gloo group after its last collective, and is a no-op without one."""
import torch
import torch.distributed as dist

from pipeline.training.process_group import release_process_group


def test_a_gloo_group_is_destroyed_once_and_can_start_again(tmp_path):
    assert not dist.is_initialized()
    assert release_process_group() is False  # single-process training: nothing to do
    try:
        for attempt in range(2):  # a later init in the same process starts afresh
            dist.init_process_group("gloo", init_method=f"file://{tmp_path / f'store{attempt}'}", rank=0, world_size=1)
            total = torch.ones(3)
            dist.all_reduce(total)
            assert total.tolist() == [1.0, 1.0, 1.0]
            assert release_process_group() is True
            assert not dist.is_initialized()
            assert release_process_group() is False
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
