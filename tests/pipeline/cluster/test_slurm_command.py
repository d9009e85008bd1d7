"""`make slurm`'s batch script (--dry-run) and its one-line errors for what a user gets wrong: no
sbatch, no remote, an unreachable one, uncommitted work, a node count the allocation cannot hold,
a partition SLURM does not have; `make results` for an experiment that was never pushed."""
import os
import sys

import pytest

from tests.pipeline.cluster.projects import make_project
from tests.pipeline.helpers import assert_one_line_error

SETTINGS = {"cluster": {"slurm": {"nodes": 2, "partition": "gpu", "gpus_per_node": 4, "time_limit": "1-00:00:00",
                                  "account": "lab", "extra_sbatch": ["--mem=64G"]}},
            "train": {"devices": 4, "num_nodes": 2, "accelerator": "gpu"}}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("slurm-command"), SETTINGS)


def test_dry_run_prints_the_batch_script_in_lightnings_convention(project):
    result = project.command("slurm", "--dry-run", "--stage", "train@lm-gru")
    assert result.returncode == 0, result.stderr
    script = result.stdout
    commit = project.run("git", "rev-parse", "HEAD").stdout.strip()
    for line in ["#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=1", "#SBATCH --time=1-00:00:00", "#SBATCH --partition=gpu",
                 "#SBATCH --account=lab", "#SBATCH --signal=SIGUSR1@90", "#SBATCH --requeue", "#SBATCH --mem=64G",
                 f"git -C \"$WORK.partial\" checkout --quiet --detach {commit}", "BOTTLENECK_SRUN=1",
                 "python -m dvc repro --pull train@lm-gru", "python -m dvc exp save --name slurm-$SLURM_JOB_ID",
                 "python -m dvc exp push --remote storage"]:
        assert line in script, line
    assert f"export MLFLOW_TRACKING_URI=sqlite:///{project.path / 'mlflow.db'}" in script
    assert not (project.path / "slurm-logs").exists()  # nothing submitted


def test_no_sbatch_on_path_says_where_to_run(project):
    result = project.__class__(project.path, dict(project.environment, PATH=os.path.dirname(sys.executable))).command("slurm")
    assert_one_line_error(result, "sbatch is not on PATH", "login node", "--dry-run")


def test_more_training_nodes_than_the_allocation_is_a_config_error(project):
    result = project.command("slurm", "--dry-run")
    assert result.returncode == 0
    (project.path / "params.yaml").write_text((project.path / "params.yaml").read_text().replace(
        "num_nodes: 2", "num_nodes: 3"))
    try:
        result = project.command("slurm", "--dry-run")
        assert_one_line_error(result, "train.num_nodes=3", "cluster.slurm.nodes=2", exit_code=2)
    finally:
        project.run("git", "checkout", "params.yaml")


def test_uncommitted_work_is_refused(project):
    (project.path / "README.md").write_text("changed\n")
    try:
        assert_one_line_error(project.command("slurm", "--dry-run"), "uncommitted changes to README.md", "commit")
    finally:
        project.run("git", "checkout", "README.md")


def test_missing_or_unreachable_remotes_are_one_line_errors(tmp_path):
    bare = make_project(tmp_path / "bare", SETTINGS, remotes=False)
    assert_one_line_error(bare.command("slurm", "--dry-run"), "cluster.results.git_remote 'origin'",
                          "git remote add origin")
    bare.run("git", "remote", "add", "origin", str(tmp_path / "nowhere.git"))
    assert_one_line_error(bare.command("slurm", "--dry-run"), "cannot be reached", "git remote set-url origin")
    bare.run("git", "init", "-q", "--bare", str(tmp_path / "server.git"))
    bare.run("git", "remote", "set-url", "origin", str(tmp_path / "server.git"))
    assert_one_line_error(bare.command("slurm", "--dry-run"), "no DVC remote", "dvc remote add -d")
    bare.dvc("remote", "add", "-d", "--local", "storage", str(tmp_path / "no-such-store"))
    assert_one_line_error(bare.command("slurm", "--dry-run"), "DVC remote 'storage'", "cannot be reached")


def test_a_partition_slurm_does_not_have_is_one_line(clean_queue, tmp_path):
    project = make_project(tmp_path, {"cluster": {"slurm": {"partition": "no-such-partition"}}},
                           environment=clean_queue.environment())
    result = project.command("slurm")
    assert_one_line_error(result, "sbatch refused the job: Batch job submission failed: Invalid partition",
                          "cluster.slurm")


def test_results_of_an_experiment_never_pushed(project):
    result = project.command("results", "slurm-999999")
    assert_one_line_error(result, "slurm-999999", "is not on git remote 'origin'")
