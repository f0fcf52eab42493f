"""The note a study carries in optuna-dashboard: what it searches, and under what setup."""

from __future__ import annotations

import optuna
import optuna_dashboard

from hpsearch.study import space as spaces


def describe_param(p: spaces.Param) -> str:
    d = p.distribution
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        values = ", ".join(str(c) for c in d.choices)
    elif d.low == d.high:  # a range clipped to one value (--max-epochs)
        values = f"{d.low:g}"
    else:
        values = f"{d.low:g} to {d.high:g}" + (" (log scale)" if d.log else "")
    sets = "" if p.field == p.name else f" (sets {p.field})"
    only = f", only with {', '.join(p.optimizers)}" if p.optimizers else ""
    return f"- `{p.name}`{sets}: {values}{only}"


def describe(study: optuna.Study, space: spaces.Space) -> str:
    """Markdown: what STUDY searches, under what setup, and where its curves are."""
    setup = study.user_attrs.get("setup", {})
    goal = ("maximise validation accuracy and minimise training seconds (a Pareto front)"
            if len(study.directions) > 1 else "maximise validation accuracy")
    lines = [f"## {study.study_name}", "",
             f"**{space.network}** on Fashion-MNIST from `{space.path.name}`: {goal}.", ""]
    if space.is_lab:
        lines.append("The lab's runs, one factor changed at a time around the baseline "
                     + ", ".join(f"{k} {v}" for k, v in space.lab_rows[0].items()) + ":")
        lines += [f"- {label}" for label in space.lab_labels[1:]]
    else:
        lines.append("Searched:")
        lines += [describe_param(p) for p in space.params]
        lines += ["", "Trial 0 is the lab's baseline for this network (user attr `baseline`), "
                      "so the study shows how far it got beyond the lab."]
    if space.fixed:
        lines += ["", "Fixed: " + ", ".join(f"{k} {v}" for k, v in space.fixed.items())]
    shown = {k: v for k, v in setup.items() if v is not None and k not in ("network", "space")}
    if shown:
        lines += ["", "Setup: " + ", ".join(f"{k} {v}" for k, v in shown.items())]
    lines += ["", "Each trial's learning curve (loss and accuracy per epoch) is attached to it as "
                  "an artifact where the storage has an artifact folder (hpsearch/artifacts.py); "
                  "`python -m hpsearch.report` draws the study's plots and tables."]
    return "\n".join(lines)


def add_study_note(study: optuna.Study, space: spaces.Space) -> None:
    """Give STUDY a dashboard note saying what it searches. A note it already has stays, so
    what a user wrote in the dashboard is not overwritten by the next run."""
    if not optuna_dashboard.get_note(study):
        optuna_dashboard.save_note(study, describe(study, space))


def add_confirmation(study: optuna.Study, sentence: str) -> None:
    """Append the confirmation's sentence to STUDY's note (once; the rest of the note stays)."""
    _append(study, "Confirmed over fresh seeds", sentence)


def add_warm_start(study: optuna.Study, sentence: str) -> None:
    """Append where the study started from (study/warm.py) to STUDY's note, once."""
    _append(study, "Warm start", sentence)


def _append(study: optuna.Study, heading: str, sentence: str) -> None:
    note = optuna_dashboard.get_note(study) or ""
    if sentence not in note:
        optuna_dashboard.save_note(study, f"{note}\n\n**{heading}:** {sentence}")
