"""Opt-in experiment tracking: `--tracking tensorboard|mlflow|wandb` maps to Ray Tune's own integrations.

Every trial of a stage (search, stage 2, final) is logged as Tune logs it: its
configuration and one entry per reported epoch. Where it goes:

- ``tensorboard``: `ray.tune.logger.TBXLoggerCallback`, an event file in each trial's
  folder of the experiment (``tensorboard --logdir EXPERIMENT``).
- ``mlflow``: `ray.air.integrations.mlflow.MLflowLoggerCallback`, one MLflow run per
  trial in the experiment named as the study, tagged with its stage; in
  ``MLFLOW_TRACKING_URI`` when set, else a SQLite store ``EXPERIMENT/mlflow.db``
  (MLflow 3 refuses its old file store unless told to).
- ``wandb``: `ray.air.integrations.wandb.WandbLoggerCallback`, one W&B run per trial in
  the project named as the study, grouped by stage, its local files in
  ``EXPERIMENT/wandb``; ``WANDB_MODE=offline`` logs without an account (``wandb sync``
  uploads later).

Each is an optional extra of the package (pyproject.toml), imported only when asked
for: without tracking the driver imports none of them (tensorboardX would bring
PyTorch into it). For a remote experiment the local files go to the driver's folder
beside its journals (`tracking_dir`).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from study.vocabulary.errors import UserError
from study.vocabulary.tables import is_uri

# tracker -> (the module it imports, the package extra that installs it)
TRACKERS = {
    "tensorboard": ("tensorboardX", "tensorboard"),
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
}
TRACKING_HELP = ("log every trial to TOOL through Ray Tune's integration (repeatable: --tracking mlflow --tracking "
                 "wandb); each needs its extra, e.g. pip install 'bn-dropout-study[mlflow]'")
# The callbacks `tracker_callbacks` makes, by class name: a restored Tuner's are replaced, not doubled.
CALLBACK_CLASSES = frozenset({"TBXLoggerCallback", "MLflowLoggerCallback", "WandbLoggerCallback"})


class TrackingError(UserError):
    """A tracker was asked for that cannot run here; the message says what to install or set."""


def check_trackers(names: tuple[str, ...]) -> None:
    """Before Ray starts: every tracker named is known, installed and (W&B) able to log."""
    for name in names:
        if name not in TRACKERS:
            raise TrackingError(f"--tracking {name!r} is not one of {', '.join(TRACKERS)}")
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise TrackingError(
                f"--tracking {name} needs the {module} package, which is not installed: install the extra with "
                f"pip install 'bn-dropout-study[{extra}]' (or in this checkout: pip install -e '.[{extra}]'), "
                f"or leave out --tracking {name}"
            )
    if "mlflow" in names:
        check_mlflow_server(os.environ.get("MLFLOW_TRACKING_URI", ""))
    if "wandb" in names and not _wandb_can_log():
        raise TrackingError(
            "--tracking wandb needs a W&B account or offline mode: run `wandb login`, set WANDB_API_KEY, or set "
            "WANDB_MODE=offline to keep the runs on this machine (upload them later with `wandb sync`)"
        )


SERVER_TIMEOUT_S = 10.0  # a tracking server answers in well under a second; MLflow's client retries for minutes


def check_mlflow_server(uri: str, timeout_s: float = SERVER_TIMEOUT_S) -> None:
    """An http(s) MLFLOW_TRACKING_URI answers (any HTTP answer will do), else `TrackingError` within `timeout_s`.

    MLflow's client retries a server that does not answer with back-off for minutes (about 250 s), and each
    trial's logger would do so again; one request here, with a time limit, finds out before Ray starts."""
    if not uri.startswith(("http://", "https://")):
        return  # a local store (sqlite:, file:) or a Databricks profile: nothing to reach
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # the server answered (a proxy's 404, an auth challenge): MLflow reports those itself
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"--tracking mlflow: the tracking server MLFLOW_TRACKING_URI={uri} does not answer ({reason}; waited at "
            f"most {timeout_s:.0f} s); start it (`mlflow server`), correct the URI, or unset MLFLOW_TRACKING_URI to "
            "log to EXPERIMENT/mlflow.db"
        ) from None


def _wandb_can_log() -> bool:
    if os.environ.get("WANDB_MODE") in {"offline", "disabled"} or os.environ.get("WANDB_API_KEY"):
        return True
    import wandb

    return bool(wandb.api.api_key)  # `wandb login` wrote a key


def tracking_dir(experiment: str) -> Path:
    """Where the trackers' local files go: the experiment directory, or for a remote experiment a
    folder of this machine named after it."""
    if not is_uri(experiment):
        return Path(experiment)
    return Path(tempfile.gettempdir()) / "bn-dropout-study" / _study_name(experiment)


def _study_name(experiment: str) -> str:
    """The experiment's last path part: the study's name, as MLflow and W&B show it."""
    return experiment.rstrip("/").rsplit("/", 1)[-1]


def tracker_callbacks(names: tuple[str, ...], experiment: str, stage: str) -> list:
    """Ray Tune callbacks that log `stage`'s trials of `experiment` to each tracker in `names`."""
    study_name = _study_name(experiment)
    folder = tracking_dir(experiment)
    callbacks = []
    if "tensorboard" in names:
        from ray.tune.logger import TBXLoggerCallback

        callbacks.append(TBXLoggerCallback())
    if "mlflow" in names:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        folder.mkdir(parents=True, exist_ok=True)
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{folder.resolve()}/mlflow.db"
        callbacks.append(MLflowLoggerCallback(tracking_uri=uri, experiment_name=study_name, tags={"stage": stage},
                                              save_artifact=False))
    if "wandb" in names:
        from ray.air.integrations.wandb import WandbLoggerCallback

        folder.mkdir(parents=True, exist_ok=True)
        # W&B puts its files in DIR/wandb; `silent` keeps its summary of every run off the console. The
        # logging actors run in Ray workers, which Tune gives WANDB_API_KEY but not WANDB_MODE: passed here.
        mode = {"mode": os.environ["WANDB_MODE"]} if os.environ.get("WANDB_MODE") else {}
        callbacks.append(WandbLoggerCallback(project=study_name, group=stage, dir=str(folder.resolve()),
                                             settings={"silent": True}, **mode))
    return callbacks


def is_tracker(callback) -> bool:
    return type(callback).__name__ in CALLBACK_CLASSES
