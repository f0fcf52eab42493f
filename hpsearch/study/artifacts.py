"""Trial artifacts: where a study's files live, and each trial's learning-curve PNG.

The files go through Optuna's artifact API (a FileSystemArtifactStore), so optuna-dashboard shows
them on the trial's page when it serves the same folder (`python -m hpsearch.dashboard`). The
folder follows from the storage, so the study and the dashboard agree without being told:

    sqlite:///hpsearch.db        ->  hpsearch-artifacts/
    sqlite:////data/runs/x.db    ->  /data/runs/x-artifacts/
    anything else                ->  $HPSEARCH_ARTIFACTS (or --artifacts), else no artifacts
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import optuna
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from hpsearch.study import storage as stores
from hpsearch.errors import UsageError

ENV = "HPSEARCH_ARTIFACTS"


def artifact_dir(url: str, given: Path | None = None) -> Path | None:
    """GIVEN, else $HPSEARCH_ARTIFACTS, else NAME-artifacts/ beside a SQLite file NAME.db.
    None for a server database: a folder on one machine is no place for the files of workers
    on many; name a shared folder in $HPSEARCH_ARTIFACTS instead."""
    if given is not None:
        return Path(given)
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    db = stores.sqlite_file(url)
    return None if db is None else db.with_name(db.stem + "-artifacts")


def open_store(url: str, given: Path | None = None) -> FileSystemArtifactStore | None:
    """The artifact store for the storage URL (see artifact_dir), its folder created."""
    folder = artifact_dir(url, given)
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create the artifact folder {folder} ({err.strerror}); "
                         f"name another with {ENV}") from None
    return FileSystemArtifactStore(folder)


def learning_curve(attrs: dict, title: str) -> Figure:
    """Loss and accuracy per epoch, train and validation, from a trial's user attrs."""
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
        for split, style in (("train", "-o"), ("val", "-s")):
            # A diverged epoch's loss is stored as null (JSON has no NaN); NaN leaves a gap.
            values = [float("nan") if v is None else v for v in attrs[f"{split}_{metric}"]]
            ax.plot(range(1, len(values) + 1), values, style, label=split)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("accuracy" if metric == "acc" else "cross-entropy loss")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return fig


def trial_title(number: int, attrs: dict) -> str:
    cfg = attrs["config"]
    title = (f"trial {number}: {cfg['model']} {cfg['optimizer']} lr {cfg['lr']:.4g}, "
             f"batch {cfg['batch_size']}, {attrs['status']}")
    return f"{title}\n{attrs['reason']}" if attrs["reason"] else title


def upload_learning_curve(trial: optuna.Trial, store: FileSystemArtifactStore) -> str:
    """Draw TRIAL's learning curve from its stored user attrs and attach it as an artifact;
    returns the artifact id."""
    attrs = trial.user_attrs
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"learning-curve-trial-{trial.number}.png"
        learning_curve(attrs, trial_title(trial.number, attrs)).savefig(path, dpi=90)
        return upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial)
