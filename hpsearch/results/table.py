"""The lab-style table of a study's trials, one row per trial, as Markdown and CSV.

Columns: optimizer, lr, epochs, batch size, workers (where any trial used DataLoader workers),
total loss and total accuracy (the lab's example-weighted means over every batch), val accuracy,
run time, state. A trial that was pruned, diverged, failed or sat at chance accuracy says so in
capitals in its state, so a stuck run is never read as a finding.

A lab study (one whose trials carry `lab_row`) gets the lab's own column order, and its rows in
the lab's order: the baseline, then each one-factor-at-a-time change.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from hpsearch.engine import config
from hpsearch.study.output import COPIED, WARM_START

LAB_COLUMNS = ("optimizer", "lr", "epochs", "batch size", "workers", "total loss",
               "total accuracy", "run time (s)")
# Config fields shown only where some trial sets them away from the default.
OPTIONAL_FIELDS = {"momentum": None, "weight_decay": 0.0, "schedule": "constant"}


@dataclass
class Table:
    columns: list[str]
    rows: list[dict]  # column -> raw value (None: nothing to show)
    flagged: list[bool]  # row i was pruned, diverged, failed or at chance

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if row[c] is None else row[c] for c in self.columns])
        return out.getvalue()

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        for row, flagged in zip(self.rows, self.flagged):
            cells = [fmt(c, row[c]).replace("|", "\\|") for c in self.columns]
            if flagged:
                cells[self.columns.index("state")] = f"**{row['state']}**"
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def fmt(column: str, value) -> str:
    """A cell for reading: lr as given, losses and accuracies to 4 places, seconds to 1."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if column in ("run time (s)", "predicted (s)"):
            return f"{value:.1f}"
        return f"{value:.4g}" if column in ("lr", "momentum", "weight_decay") else f"{value:.4f}"
    return str(value)


STATUS_MARKS = {"diverged": "DIVERGED", "out_of_memory": "OUT OF MEMORY",
                "interrupted": "INTERRUPTED"}


def at_chance(t: FrozenTrial) -> bool:
    best = t.user_attrs.get("best_val_acc")
    return best is not None and config.at_chance(best)


def flags(t: FrozenTrial) -> list[str]:
    """What marks TRIAL as no finding: PRUNED, DIVERGED, FAILED (e.g. its process was killed),
    CHANCE LEVEL (best val accuracy within CHANCE_MARGIN of 1/10)."""
    marks = []
    status = t.user_attrs.get("status")
    if t.state == TrialState.PRUNED:
        marks.append("SKIPPED (BUDGET)" if status == "skipped" else "PRUNED")
    # A diverged or out-of-memory trial is COMPLETE at chance accuracy for the sampler's sake.
    if status in STATUS_MARKS:
        marks.append(STATUS_MARKS[status])
    elif t.state == TrialState.FAIL:
        marks.append("FAILED")
    if at_chance(t) and status not in STATUS_MARKS:
        marks.append("CHANCE LEVEL")
    return marks


def state(t: FrozenTrial) -> str:
    return ", ".join(flags(t)) or t.state.name.lower()


def config_of(t: FrozenTrial) -> dict:
    """The training fields of TRIAL: its stored config, else its params (a lab trial that has
    not run yet has only those, under the field names)."""
    return {**t.params, **t.user_attrs.get("config", {})}


def run_time(t: FrozenTrial) -> float | None:
    if "train_seconds" in t.user_attrs:
        return t.user_attrs["train_seconds"]
    return t.duration.total_seconds() if t.duration else None


def row(t: FrozenTrial) -> dict:
    cfg, attrs = config_of(t), t.user_attrs
    return {
        "trial": t.number, "change": attrs.get("lab_label"),
        "optimizer": cfg.get("optimizer"), "lr": cfg.get("lr"),
        **{name: cfg.get(name) for name in OPTIONAL_FIELDS},
        "epochs": cfg.get("epochs"), "batch size": cfg.get("batch_size"),
        "workers": cfg.get("workers"),
        "total loss": attrs.get("total_loss"), "total accuracy": attrs.get("total_acc"),
        "val accuracy": attrs.get("final_val_acc"), "run time (s)": run_time(t),
        "predicted (s)": attrs.get("predicted_s"),
        "state": state(t),
        "note": "; ".join(n for n in (attrs.get("baseline"), copied(attrs),
                                      queued(attrs), attrs.get("reason")) if n) or None,
    }


def copied(attrs: dict) -> str | None:
    """A warm start's copy: which study's trial it is (hpsearch/study/warm.py)."""
    return f"copied from {attrs[COPIED]}" if COPIED in attrs else None


def queued(attrs: dict) -> str | None:
    """A warm start's queued best: where it came from."""
    return f"warm start: best of {attrs[WARM_START]}" if WARM_START in attrs else None


def is_lab(trials: list[FrozenTrial]) -> bool:
    return any("lab_row" in t.user_attrs for t in trials)


def lab_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """One trial per lab row, baseline first. A row run twice (its first process was killed,
    and Optuna retried it) shows the last run that finished training, else the last."""
    chosen: dict[int, FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        row_no = t.user_attrs.get("lab_row")
        if row_no is None:
            continue
        held = chosen.get(row_no)
        if held is None or "status" in t.user_attrs or "status" not in held.user_attrs:
            chosen[row_no] = t
    return [chosen[k] for k in sorted(chosen)]


def columns(rows: list[dict], lab: bool) -> list[str]:
    """The lab's columns in its order, then ours; workers and the optional fields only where
    some row uses them."""
    shown = [c for c in LAB_COLUMNS if c != "workers" or any(r["workers"] for r in rows)]
    if lab:
        return shown + ["val accuracy", "state", "change", "trial", "note"]
    extra = [f for f, default in OPTIONAL_FIELDS.items()
             if any(r[f] is not None and r[f] != default for r in rows)]
    setting = shown[:shown.index("total loss")]
    setting[2:2] = extra  # after optimizer and lr
    predicted = ["predicted (s)"] if any(r["predicted (s)"] is not None for r in rows) else []
    return (["trial"] + setting + ["total loss", "total accuracy", "val accuracy",
                                   "run time (s)", *predicted, "state", "note"])


def build(trials: list[FrozenTrial]) -> Table:
    """The table of TRIALS (a study's get_trials()): lab order for a lab study, else by number."""
    lab = is_lab(trials)
    chosen = lab_trials(trials) if lab else sorted(trials, key=lambda t: t.number)
    rows = [row(t) for t in chosen]
    return Table(columns(rows, lab), rows, [bool(flags(t)) for t in chosen])


def prediction_errors(trials: list[FrozenTrial]) -> list[dict]:
    """Predicted (the cost model's `predicted_s`) against measured seconds (the trial's span)
    of each trial that trained to its end; error = (predicted - measured) / measured."""
    rows = []
    for t in trials:
        if ("predicted_s" not in t.user_attrs or t.user_attrs.get("status") != "completed"
                or not t.duration or t.duration.total_seconds() <= 0):
            continue
        measured = t.duration.total_seconds()
        predicted = t.user_attrs["predicted_s"]
        rows.append({"trial": t.number, "predicted_s": predicted, "measured_s": measured,
                     "error": (predicted - measured) / measured})
    return rows
