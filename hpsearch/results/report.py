"""A study's report: plots, the lab-style table and a short summary, in one folder that works
offline (plotly.js is written beside the plots, never fetched).

    python -m hpsearch.report lenet                    # -> reports/lenet/index.html
    python -m hpsearch.report lab-lenet --out /tmp/lab --storage sqlite:///runs/x.db

Each plot is plotly HTML (interactive) and a PNG (Optuna's matplotlib twin of the same plot):
parameter importances, optimization history, intermediate values, parallel coordinates, slices,
a contour of learning rate against batch size, the trial timeline, and the Pareto front of a
two-objective study. A plot the study has too few trials for is skipped, and the report says why.
"""

from __future__ import annotations

import html
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import optuna
import optuna.visualization as plotly_plots
import optuna.visualization.matplotlib as matplotlib_plots
from optuna.trial import FrozenTrial, TrialState

from hpsearch.results import report_confirmation
from hpsearch.results import table as tables
from hpsearch.engine.config import TrainConfig, train_command
from hpsearch.study.output import WARM_START, warm_start_line
from hpsearch.study.setup import StudySetup

EVALUATOR_NAME = "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator)"
PLOTLY_JS = "plotly.min.js"


def evaluator() -> optuna.importance.BaseImportanceEvaluator:
    """PED-ANOVA: it needs no scikit-learn (fANOVA does) and handles parameters that exist
    only for some optimizers."""
    return optuna.importance.PedAnovaImportanceEvaluator()


@dataclass
class Plot:
    name: str  # file stem
    title: str
    function: str  # the name in both optuna.visualization and optuna.visualization.matplotlib
    kwargs: dict = field(default_factory=dict)
    skipped: str | None = None  # why it is not drawn


@dataclass
class Report:
    plots: list[Plot]
    summary: list[str]  # sentences: counts, the best configuration, the top parameter, skips
    table: tables.Table


def completed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def need(done: list[FrozenTrial], n: int) -> str | None:
    if len(done) >= n:
        return None
    return f"needs at least {n} completed trial{'s' if n > 1 else ''}; the study has {len(done)}"


def varying_params(done: list[FrozenTrial]) -> list[str]:
    names = sorted({p for t in done for p in t.params})
    return [p for p in names if len({repr(t.params.get(p)) for t in done}) > 1]


def accuracy_target(study: optuna.Study, sign: float = 1.0):
    """What Optuna's plots and importances need on a two-objective study: a target, here the
    validation accuracy (times SIGN). None on a one-objective study: its value is the target."""
    if len(study.directions) == 1:
        return None
    return lambda t: sign * t.values[0]


def target_kwargs(study: optuna.Study, sign: float = 1.0) -> dict:
    if len(study.directions) == 1:
        return {}
    name = (study.metric_names or ["val_accuracy"])[0]
    return {"target": accuracy_target(study, sign), "target_name": name}


def importance_gap(done: list[FrozenTrial]) -> str | None:
    if not varying_params(done):
        return "no parameter varies across the completed trials"
    if len({t.values[0] for t in done}) < 2:
        return f"all {len(done)} completed trials have the same validation accuracy"
    return None


def importances(study: optuna.Study) -> tuple[dict[str, float] | None, str | None, list[str]]:
    """(importance per parameter, None, Optuna's warnings about them), or (None, why not, [])."""
    done = completed(study)
    gap = need(done, 2) or importance_gap(done)
    if gap:
        return None, gap, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            # PED-ANOVA takes an explicit target as a loss: negate accuracy.
            imp = optuna.importance.get_param_importances(
                study, evaluator=evaluator(), target=accuracy_target(study, sign=-1.0))
        except (ValueError, RuntimeError) as err:
            return None, f"Optuna could not evaluate them: {err}", []
    return imp, None, [str(w.message) for w in caught]


def lr_param(done: list[FrozenTrial]) -> str | None:
    """The learning-rate parameter set by the most completed trials (a space may have one per
    optimizer family: lr_sgd, lr_adam)."""
    counts = {}
    for t in done:
        for p in t.params:
            if p == "lr" or p.startswith("lr_"):
                counts[p] = counts.get(p, 0) + 1
    return max(counts, key=counts.get) if counts else None


def contour_gap(done: list[FrozenTrial], lr: str | None) -> str | None:
    gap = need(done, 2)
    if gap:
        return gap
    if lr is None:
        return "no completed trial has a learning-rate parameter (lr or lr_*)"
    both = [t for t in done if lr in t.params and "batch_size" in t.params]
    if any(len({t.params[p] for t in both}) < 2 for p in (lr, "batch_size")):
        return (f"needs completed trials with at least two values of {lr} and of batch_size; "
                f"{len(both)} completed trials set both")
    return None


def intermediate_gap(study: optuna.Study) -> str | None:
    if len(study.directions) > 1:
        return "a two-objective study reports no per-epoch values (Optuna cannot prune it)"
    if not any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        return "no trial has reported a per-epoch value yet"
    return None


def plan(study: optuna.Study, importances_skipped: str | None) -> list[Plot]:
    """Every plot the report draws, each with the reason it is skipped, if it is."""
    done = completed(study)
    target = target_kwargs(study)
    lr = lr_param(done)
    started = [t for t in study.get_trials(deepcopy=False) if t.datetime_start]
    plots = [
        Plot("importances", "Parameter importances, by " + EVALUATOR_NAME,
             "plot_param_importances",
             {"evaluator": evaluator(), **target_kwargs(study, sign=-1.0)},
             importances_skipped),
        Plot("history", "Optimization history", "plot_optimization_history", target, need(done, 1)),
        Plot("intermediate", "Intermediate values: validation accuracy per epoch (learning curves)",
             "plot_intermediate_values", {}, intermediate_gap(study)),
        Plot("parallel", "Parallel coordinates", "plot_parallel_coordinate", target, need(done, 2)),
        Plot("slices", "Slices: objective against each parameter", "plot_slice", target,
             need(done, 1)),
        Plot("contour", f"Contour: {lr or 'learning rate'} against batch size", "plot_contour",
             {"params": [lr, "batch_size"], **target}, contour_gap(done, lr)),
        Plot("timeline", "Trial timeline", "plot_timeline", {},
             None if started else "no trial has started yet"),
    ]
    if len(study.directions) > 1:
        names = study.metric_names or ["val_accuracy", "train_seconds"]
        plots.append(Plot("pareto", "Pareto front: validation accuracy against training seconds",
                          "plot_pareto_front", {"target_names": names}, need(done, 1)))
    return plots


def figure_of(axes) -> plt.Figure:
    """Optuna's matplotlib plots return one Axes, or an array of them (slices)."""
    return (axes.flat[0] if hasattr(axes, "flat") else axes).figure


def draw(plot: Plot, study: optuna.Study, out: Path) -> str:
    """Write PLOT as OUT/NAME.html and OUT/NAME.png; return the div index.html embeds."""
    with warnings.catch_warnings():
        # Said once in the summary (importances), or about axes of a one-value slice.
        warnings.simplefilter("ignore", UserWarning)
        fig = getattr(plotly_plots, plot.function)(study, **plot.kwargs)
        static = figure_of(getattr(matplotlib_plots, plot.function)(study, **plot.kwargs))
    fig.write_html(out / f"{plot.name}.html", include_plotlyjs="directory")
    static.savefig(out / f"{plot.name}.png", dpi=100, bbox_inches="tight")
    plt.close(static)
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{plot.name}")


def describe_config(cfg: dict) -> str:
    text = (f"{cfg.get('optimizer')}, lr {cfg.get('lr'):.4g}, {cfg.get('epochs')} epochs, "
            f"batch size {cfg.get('batch_size')}")
    for key, default in (("momentum", None), ("weight_decay", 0.0), ("schedule", "constant"),
                         ("workers", 0)):
        value = cfg.get(key, default)
        if value != default:
            shown = f"{value:.4g}" if isinstance(value, float) else value
            text += f", {key.replace('_', ' ')} {shown}"
    return text


def best_lines(study: optuna.Study) -> list[str]:
    try:
        best = study.best_trials
    except ValueError:  # Optuna has no best before a completed trial
        best = []
    if not best:
        return ["Best configuration: none yet (no completed trial)."]
    top = max(best, key=lambda t: t.values[0])  # on a Pareto front: the most accurate
    cfg, setup = top.user_attrs.get("config", top.params), StudySetup.of(study)
    values = f"val accuracy {top.values[0]:.4f}"
    if len(top.values) > 1:
        values += f" in {top.values[1]:.1f} training seconds"
    where = (f" (the most accurate of the {len(best)} trials on the Pareto front)"
             if len(study.directions) > 1 else "")
    lines = [f"Best configuration{where}: trial {top.number}, {values}: {describe_config(cfg)}."]
    if tables.at_chance(top):
        lines.append("Even the best trial sat at CHANCE LEVEL: no configuration learned anything.")
    if "config" in top.user_attrs:
        command = train_command(TrainConfig(**cfg), setup.train_subset, setup.val_size)
        lines.append(f"Reproduce it: `{command}`")
    return lines


def count_line(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    marks = [tables.flags(t) for t in trials]
    n = {mark: sum(mark in m for m in marks) for mark in ("PRUNED", "DIVERGED", "FAILED",
                                                          "CHANCE LEVEL")}
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return (f"{len(trials)} trials: {complete} complete, {n['PRUNED']} pruned, "
            f"{n['DIVERGED']} diverged, {n['FAILED']} failed otherwise (e.g. a killed process); "
            f"{n['CHANCE LEVEL']} at chance level (stuck runs: no finding).")


def importance_lines(imp: dict[str, float] | None, gap: str | None, caveats: list[str],
                     n_done: int) -> list[str]:
    if imp is None:
        return [f"Parameter importances: not evaluated: {gap}."]
    name, value = next(iter(imp.items()))  # Optuna sorts them, most important first
    return ([f"Most important parameter: {name} (importance {value:.2f}, the importances "
             f"summing to 1), by {EVALUATOR_NAME} over {n_done} completed trials."]
            + [f"Optuna's caveat: {c}" for c in dict.fromkeys(caveats)])


def summary(study: optuna.Study, imp: dict[str, float] | None, gap: str | None,
            caveats: list[str], plots: list[Plot]) -> list[str]:
    setup = StudySetup.of(study)
    goal = (" (two objectives: val accuracy up, training seconds down)"
            if len(study.directions) > 1 else "")
    lines = [f"Study {study.study_name}: {setup.network or 'unknown network'} on "
             f"Fashion-MNIST{goal}."]
    lines += [count_line(study)] + best_lines(study)
    lines += importance_lines(imp, gap, caveats, len(completed(study)))
    lines += prediction_lines(study)
    if WARM_START in study.user_attrs:
        lines.append(f"Started from other studies: {warm_start_line(study.user_attrs[WARM_START])} "
                     f"(copies marked in the table).")
    if "confirmation" in study.user_attrs:
        lines.append(study.user_attrs["confirmation"]["sentence"])
    lines += [f"Skipped plot {p.name}: {p.skipped}." for p in plots if p.skipped]
    return lines


def prediction_lines(study: optuna.Study) -> list[str]:
    """How well the cost model predicted the seconds of the trials that ran to their end."""
    errors = [abs(r["error"]) for r in tables.prediction_errors(completed(study))]
    if not errors:
        return []
    return [f"Predicted against measured seconds of the {len(errors)} trials that ran to their "
            f"end: median error {statistics.median(errors):.0%}, worst {max(errors):.0%} "
            f"(table column 'predicted (s)')."]


def build(study: optuna.Study) -> Report:
    imp, gap, caveats = importances(study)
    plots = plan(study, gap)
    return Report(plots, summary(study, imp, gap, caveats, plots),
                  tables.build(study.get_trials(deepcopy=False)))


def table_html(table: tables.Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for row, flagged in zip(table.rows, table.flagged):
        cells = "".join(f"<td>{html.escape(tables.fmt(c, row[c]))}</td>" for c in table.columns)
        body.append(f'<tr class="{"flagged" if flagged else "ok"}">{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:2px 6px}
tr.flagged{background:#fde2e2;font-weight:bold}section{margin-bottom:2em}
img{max-width:640px;border:1px solid #eee}.skipped{color:#a00}"""


def plot_html(plot: Plot, div: str | None) -> str:
    title = f"<h3>{html.escape(plot.title)}</h3>"
    if div is None:
        return (f'<section id="{plot.name}">{title}<p class="skipped">Skipped: '
                f'{html.escape(plot.skipped)}.</p></section>')
    return (f'<section id="{plot.name}">{title}{div}'
            f'<p><img src="{plot.name}.png" alt="{html.escape(plot.title)} (static)"></p>'
            f'<p><a href="{plot.name}.html">interactive page</a> · '
            f'<a href="{plot.name}.png">PNG</a></p></section>')


def index_html(study: optuna.Study, report: Report, divs: dict[str, str],
               confirmed: str = "") -> str:
    script = f'<script src="{PLOTLY_JS}"></script>' if divs or confirmed else ""
    items = "".join(f"<li>{html.escape(line)}</li>" for line in report.summary)
    plots = "".join(plot_html(p, divs.get(p.name)) for p in report.plots)
    name = html.escape(study.study_name)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hpsearch report: {name}</title>
<link rel="icon" href="data:,"><style>{STYLE}</style>{script}</head>
<body><h1>Study {name}</h1>
<section id="summary"><h2>Summary</h2><ul>{items}</ul>
<p><a href="summary.md">summary.md</a></p></section>
<section id="trials"><h2>Trials</h2>
<p>Lab-style table; also as <a href="table.md">Markdown</a> and <a href="table.csv">CSV</a>.
Rows in bold were pruned, diverged, failed or stuck at chance accuracy: they are no finding.</p>
{table_html(report.table)}</section>
{confirmed}<h2>Plots</h2>{plots}
</body></html>
"""


def write(study: optuna.Study, out: Path) -> Report:
    """Write the report of STUDY into OUT; files of plots now skipped are removed."""
    matplotlib.use("Agg")  # files only: no window, whatever display the machine has
    out.mkdir(parents=True, exist_ok=True)
    report = build(study)
    divs = {}
    for plot in report.plots:
        if plot.skipped:
            for suffix in (".html", ".png"):
                (out / f"{plot.name}{suffix}").unlink(missing_ok=True)
        else:
            divs[plot.name] = draw(plot, study, out)
    (out / "table.md").write_text(report.table.markdown())
    (out / "table.csv").write_text(report.table.csv())
    (out / "summary.md").write_text(
        f"# Study {study.study_name}\n\n" + "".join(f"- {line}\n" for line in report.summary))
    confirmed = report_confirmation.write(study.user_attrs.get("confirmation"), out)
    (out / "index.html").write_text(index_html(study, report, divs, confirmed))
    return report
