"""A trial keeps one Ray Train checkpoint, not one per epoch."""
from pipeline.sweeps.trial import train_run_config


def test_a_trial_keeps_only_its_latest_checkpoint(tmp_path):
    config = train_run_config("sweep-trial", str(tmp_path), [])
    assert config.checkpoint_config.num_to_keep == 1
    assert config.name == "sweep-trial" and config.storage_path == str(tmp_path)
