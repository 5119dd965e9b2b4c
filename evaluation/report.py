"""Result writers: markdown tables, JSON, and PNG plots (matplotlib, Agg backend).

Every file carries its context: dataset, protocol, ranking, seeds, the commit it was produced
at (``git rev-parse HEAD``, ``-dirty`` when tracked files differ) and every setting.
"""

from __future__ import annotations

import json
import math
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.metrics import metric_names

if TYPE_CHECKING:
    from evaluation.harness import Summary


def git_commit(cwd: str | Path | None = None) -> str:
    """HEAD's hash (plus ``-dirty`` when tracked files have changes), or ``unknown``."""
    cwd = cwd or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty.strip() else "")


def _cell(summary: Summary, name: str) -> str:
    mean, hw = summary.mean[name], summary.half_width[name]
    return f"{mean:.3f}" if math.isnan(hw) else f"{mean:.3f} ± {hw:.3f}"


def _header(title: str, context: dict[str, Any]) -> list[str]:
    s = context["settings"]
    data = context["data"]
    return [
        f"# {title}: {s['dataset']}"
        + (f" ({s['level']} level)" if s["dataset"] == "taobao" else "")
        + f", {s['protocol']} split, {s['ranking']} ranking",
        "",
        f"- commit: `{context['commit']}`; written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- seeds: {s['seeds']} (mean ± 95% CI, t-distribution); max users: {s['max_users']}",
        f"- settings: epochs {s['epochs']}, dim {s['dim']}, lr {s['lr']}, "
        f"negatives {s['n_neg']} (sampled ranking), λ {s['decay_per_day']}/day, "
        f"weights {s['weights']}",
        "- data: " + ", ".join(f"{k} {v}" for k, v in data.items()),
        "",
    ]


def write_table(path: Path, title: str, context: dict[str, Any],
                results: dict[str, Summary | None], ranking: str,
                notes: list[str] | None = None) -> Path:
    """A markdown table, one row per model, one column per metric (+ fit/eval seconds)."""
    names = metric_names(ranking)
    shown = [r for r in results.values() if r is not None]
    names += [n for n in (shown[0].mean if shown else {}) if n not in names]
    lines = _header(title, context)
    lines.append("| Model | " + " | ".join(names) + " | s/seed |")
    lines.append("|---|" + "---|" * (len(names) + 1))
    for model, summary in results.items():
        if summary is None:
            lines.append(f"| {model} | " + " | ".join("not measured" for _ in names) + " | |")
            continue
        per_seed = summary.seconds / max(len(summary.per_seed), 1)
        lines.append(f"| {model} | " + " | ".join(_cell(summary, n) for n in names)
                     + f" | {per_seed:.1f} |")
    lines.append("")
    lines += [f"- {n}" for n in (notes or []) if n]
    lines += _paired_section(results, ranking)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def paired_differences(results: dict[str, Summary | None], reference: str = "Proposed",
                       names: tuple[str, ...] = ("HR@5", "NDCG@5"),
                       ) -> dict[str, dict[str, tuple[float, float, float]]]:
    """``reference − model`` per metric with a paired user-bootstrap 95% interval."""
    from evaluation.harness import paired_bootstrap

    ref = results.get(reference)
    if ref is None or not ref.per_user:
        return {}
    out: dict[str, dict[str, tuple[float, float, float]]] = {}
    for model, summary in results.items():
        if model == reference or summary is None or not summary.per_user:
            continue
        out[model] = {n: paired_bootstrap(ref.per_user[n], summary.per_user[n]) for n in names}
    return out


def _paired_section(results: dict[str, Summary | None], ranking: str) -> list[str]:
    diffs = paired_differences(results)
    if not diffs:
        return []
    names = list(next(iter(diffs.values())))
    lines = ["", "Proposed − model, per-user paired bootstrap (1000 resamples of the evaluated "
             "users, per-user values averaged over seeds): mean [95% interval]. An interval "
             "that excludes 0 is a real difference on these users.", "",
             "| vs model | " + " | ".join(f"Δ{n}" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for model, by_metric in diffs.items():
        cells = [f"{m:+.3f} [{lo:+.3f}, {hi:+.3f}]" for m, lo, hi in by_metric.values()]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def write_json(path: Path, context: dict[str, Any], results: dict[str, Summary | None]) -> Path:
    payload = {**context, "results": {
        k: None if v is None else {"mean": v.mean, "ci95": v.half_width, "per_seed": v.per_seed,
                                   "seconds": v.seconds}
        for k, v in results.items()},
        "proposed_minus_model_bootstrap": paired_differences(results)}
    path.write_text(json.dumps(payload, indent=1, default=str), encoding="utf-8")
    return path


def _subtitle(context: dict[str, Any]) -> str:
    s = context["settings"]
    level = f"/{s['level']}" if s["dataset"] == "taobao" else ""
    return (f"{s['dataset']}{level}, {s['protocol']} split, {s['ranking']} ranking, "
            f"{s['seeds']} seeds, commit {context['commit'][:10]}")


def plot_comparison(path: Path, results: dict[str, Summary],
                    context: dict[str, Any], names: tuple[str, ...] = ("HR@5", "NDCG@5"),
                    ) -> Path:
    """Grouped bars of ``names`` per model with 95% CI error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(results)
    x = np.arange(len(models))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(models)), 4.0))
    for k, name in enumerate(names):
        means = [results[m].mean[name] for m in models]
        errs = [0.0 if math.isnan(results[m].half_width[name]) else results[m].half_width[name]
                for m in models]
        ax.bar(x + (k - (len(names) - 1) / 2) * width, means, width, yerr=errs, capsize=3,
               label=name)
    ax.set_xticks(x, models, rotation=20, ha="right")
    ax.set_ylabel("score")
    ax.set_title("Comparison (Table 2)\n" + _subtitle(context), fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sensitivity(path: Path, sweeps: dict[str, list[tuple[float, Summary]]],
                     context: dict[str, Any]) -> Path:
    """Fig. 2: HR@5 and NDCG@5 against each behaviour weight, one panel per behaviour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics_ = ("HR@5", "NDCG@5")
    fig, axes = plt.subplots(len(metrics_), len(sweeps), figsize=(3.4 * len(sweeps), 5.6),
                             squeeze=False, sharex="col")
    for col, (behavior, points) in enumerate(sweeps.items()):
        xs = [v for v, _ in points]
        for row, name in enumerate(metrics_):
            ax = axes[row][col]
            ys = [r.mean[name] for _, r in points]
            errs = [0.0 if math.isnan(r.half_width[name]) else r.half_width[name]
                    for _, r in points]
            ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=2, color=f"C{row}")
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(name)
        axes[-1][col].set_xlabel(f"{behavior} weight")
    fig.suptitle("Behaviour-weight sensitivity (Fig. 2), " + _subtitle(context), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_summary(out: Path, names: tuple[str, ...] = ("HR@5", "NDCG@5", "HR@10")) -> Path:
    """``summary.md``: every ``*_table2.json`` under ``out`` as one row block per run."""
    lines = ["# Summary of the comparison runs (Table 2 files)", "",
             "Mean ± 95% CI over seeds; the run's own table has every metric and setting.", ""]
    for path in sorted(out.glob("*_table2.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        s, data = payload["settings"], payload["data"]
        lines += [f"## {path.stem.removesuffix('_table2')}", "",
                  f"commit `{payload['commit'][:12]}`, {s['seeds']} seeds, "
                  f"{data.get('evaluated_users')} users evaluated, cold test items "
                  f"{data.get('cold_test_items')}", "",
                  "| Model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for model, r in payload["results"].items():
            cells = []
            for n in names:
                hw = r["ci95"][n]
                cells.append(f"{r['mean'][n]:.3f}" if hw is None or math.isnan(hw)
                             else f"{r['mean'][n]:.3f} ± {hw:.3f}")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.append("")
    target = out / "summary.md"
    target.write_text("\n".join(lines), encoding="utf-8")
    return target
