"""Where a sweep runs: start or join Ray, check a trial fits, and stop cleanly on Ctrl-C / SIGTERM."""
from __future__ import annotations

import os
import signal
from pathlib import Path

from pipeline.config import Params
from pipeline.errors import ConfigError, UserError

PROJECT = Path(__file__).resolve().parents[2]  # the code: Ray workers import it from here


def connect(params: Params) -> str:
    """Start or join Ray; returns where. Workers import this project's code from PROJECT, or, inside
    a Ray job (pipeline.commands.submit), from the job's working directory on every node."""
    import ray

    address = params.cluster.address or os.environ.get("RAY_ADDRESS")
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:  # a job's entrypoint: keep the job's runtime_env
        ray.init(address=address or "auto")
        return f"the cluster of this Ray job ({address or 'auto'})"
    environment = {"PYTHONPATH": str(PROJECT)}
    for name in ("MLFLOW_TRACKING_URI", "BOTTLENECK_TEST_FAIL_TRIAL_ONCE"):
        if name in os.environ:
            environment[name] = os.environ[name]
    if address:
        try:
            ray.init(address=address, runtime_env={"env_vars": environment})
        except ConnectionError as error:
            raise UserError(f"cluster.address / RAY_ADDRESS {address!r}: cannot connect to Ray "
                            f"({str(error).splitlines()[0]})") from None
        return address
    # The dashboard (loopback) serves the state API that Ray Train uses to free the placement groups
    # of trials ASHA stopped; without it their CPUs stay reserved and later trials never start.
    # Inside a SLURM job: the CPUs SLURM gave this node, not every CPU the machine has.
    cpus = int(os.environ["SLURM_CPUS_ON_NODE"]) if "SLURM_CPUS_ON_NODE" in os.environ else None
    # "local": a new instance of our own. Without it ray.init joins the last `ray start` cluster on
    # this machine (/tmp/ray/ray_current_cluster), even a stale one, and then refuses num_cpus.
    ray.init(address="local", num_cpus=cpus, runtime_env={"env_vars": environment})
    return "local"


def check_resources(params: Params) -> None:
    """A trial that asks for more than the cluster has would wait forever: say so before any starts."""
    import ray

    resources = params.tune.resources_per_trial
    available = ray.cluster_resources()
    for name, per_worker in (("GPU", resources.gpus_per_worker), ("CPU", resources.cpus_per_worker)):
        needed = resources.workers * per_worker
        if needed > available.get(name, 0.0):
            raise ConfigError(f"params.yaml: tune.resources_per_trial: a trial needs {needed:g} {name}s "
                              f"({resources.workers} workers × {per_worker:g}) but the Ray cluster has "
                              f"{available.get(name, 0.0):g}")


class Interruption:
    """Ctrl-C or SIGTERM during ``Tuner.fit``: ask Tune to save its state and stop (its SIGUSR1
    handler), and remember that it happened. Tune's own SIGINT handler would stop it the same way
    but then return as if the sweep had finished."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def __enter__(self) -> "Interruption":
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        self.previous = {number: signal.signal(number, self.handle) for number in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, number: int, frame) -> None:
        self.signal = signal.Signals(number).name
        self.__exit__()  # a second Ctrl-C stops at once
        if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):  # Tune's loop has not started yet
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGUSR1)

    def __exit__(self, *exception) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
