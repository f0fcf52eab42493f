"""The report's confirmation section (hpsearch/confirm.py): each confirmed configuration's
search score against its mean over fresh seeds, with error bars (the winner's curse made
visible), the table, and the sentence that sets the winner against the lab's baseline."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib.pyplot as plt
import plotly.graph_objects as go

NAME = "confirmation"


def rows(block: dict) -> list[dict]:
    out = []
    for c in block["configurations"]:
        v = c["val_accuracy"]
        out.append({"configuration": c["key"], "search val acc": c["search_value"],
                    "confirmed mean": v["mean"], "std": v["std"], "n": v["n"],
                    "winner": c["key"] == block["winner"]["key"],
                    "tied with winner": c["key"] in block["tied_with_winner"]})
    return out


def figure(block: dict) -> go.Figure:
    searched = [r for r in rows(block) if r["search val acc"] is not None]
    xs = [r["search val acc"] for r in searched]
    fig = go.Figure(go.Scatter(
        x=xs, y=[r["confirmed mean"] for r in searched], mode="markers+text",
        text=[r["configuration"] for r in searched], textposition="top center",
        error_y={"type": "data", "array": [r["std"] for r in searched]}, name="confirmed"))
    low, high = min(xs + [r["confirmed mean"] for r in searched]), max(xs)
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="search = confirmed",
                             line={"dash": "dot"}))
    fig.update_layout(title="Search score against the mean over fresh seeds (± std)",
                      xaxis_title="val accuracy in the search (one run)",
                      yaxis_title="val accuracy, mean over seeds")
    return fig


def png(block: dict, path: Path) -> None:
    searched = [r for r in rows(block) if r["search val acc"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar([r["search val acc"] for r in searched], [r["confirmed mean"] for r in searched],
                yerr=[r["std"] for r in searched], fmt="o", capsize=4)
    for r in searched:
        ax.annotate(r["configuration"], (r["search val acc"], r["confirmed mean"]), fontsize=8)
    lims = ax.get_xlim()
    ax.plot(lims, lims, ":", color="grey", label="search = confirmed")
    ax.set_xlabel("val accuracy in the search (one run)")
    ax.set_ylabel("val accuracy, mean over seeds")
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def table_html(block: dict) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4f}"
        return "yes" if v is True else ("" if v in (False, None) else str(v))

    body = rows(block)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in body[0])
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in r.values())
                  + "</tr>" for r in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>"


def write(block: dict | None, out: Path) -> str:
    """The section for index.html (empty when the study is not confirmed); writes
    confirmation.html and confirmation.png into OUT."""
    if not block:
        for suffix in (".html", ".png"):
            (out / f"{NAME}{suffix}").unlink(missing_ok=True)
        return ""
    fig = figure(block)
    fig.write_html(out / f"{NAME}.html", include_plotlyjs="directory")
    png(block, out / f"{NAME}.png")
    test = block["test_accuracy"]
    return (f'<section id="{NAME}"><h2>Confirmation</h2>'
            f"<p><b>{html.escape(block['sentence'])}</b></p>"
            f"<p>Seeds {html.escape(str(block['seeds']))}, trained on "
            f"{html.escape(block['fidelity'])}. {html.escape(block['tie_rule'])}. Test accuracy "
            f"(winner) {test['winner']['mean']:.4f} ± {test['winner']['std']:.4f}, (baseline) "
            f"{test['baseline']['mean']:.4f} ± {test['baseline']['std']:.4f}.</p>"
            f"{table_html(block)}"
            + fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{NAME}")
            + f'<p><img src="{NAME}.png" alt="confirmation (static)"></p></section>')
