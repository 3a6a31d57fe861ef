"""The comparison's summary: mean and spread over seeds per method, compare.md and its plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smoea import matching
from smoea.prune_config import PruneConfig

SUMMED = (
    "params",
    "macs",
    "latency",
    "measured_latency",
    "measured_latency_ratio",
    "search_seconds",
    "evaluations",
    "finetune_seconds",
)


def summarize(runs: dict[str, list[dict]], baseline: dict, config: PruneConfig) -> dict:
    """Mean and spread over seeds per method, and whether all sizes agree within 1%."""
    methods = {}
    for name, results in runs.items():
        ok = [r for r in results if "failed" not in r]
        if not ok:
            methods[name] = {"failed": results[0]["failed"], "runs": results}
            continue
        acc = np.array([r["test_accuracy"] for r in ok])
        val = np.array([r["val_accuracy"] for r in ok])
        methods[name] = {
            "test_accuracy_mean": float(acc.mean()),
            "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "val_accuracy_mean": float(val.mean()),
            "held_out_val_accuracy_mean": _mean_of(ok, "held_out_val_accuracy"),
            "drop": float(baseline["test_accuracy"] - acc.mean()),
            **{k: _mean_of(ok, k) for k in SUMMED if all(k in r for r in ok)},
            "measured_latency_ratio_std": _std_of(ok, "measured_latency_ratio"),
            "measured_latency_repeat_std": _repeat_std(ok),
            **_beside_figures(ok),
            "seeds": [r["seed"] for r in ok],
            "failed_seeds": [r["seed"] for r in results if "failed" in r],
            "runs": results,
        }
    return {
        "baseline": baseline,
        "target_params": config.target_params,
        "target_macs": config.target_macs,
        "target_latency": config.target_latency,
        "measure": config.measure,
        "config": config.as_dict(),
        "methods": methods,
        **_sizes_agree(runs, methods, config),
    }


def _sizes_agree(runs: dict[str, list[dict]], methods: dict, config: PruneConfig) -> dict:
    """Whether every method reached the same size: its count within 1% of each other's, or at a
    latency target every run measured within matching.MATCH_TOLERANCE of it."""
    if config.measure == "latency":
        ok = [r for rs in runs.values() for r in rs if "failed" not in r]
        beside = [r["measured_beside_smoea"].get("ratio") for r in ok if _beside(r)]
        alone = [r.get("measured_latency_ratio") for r in ok if not _beside(r)]
        agrees = (bool(beside) or bool(alone)) and all(
            matching.within_tolerance(ratios, goal)
            for ratios, goal in ((beside, 1.0), (alone, config.target_latency))
            if ratios
        )
        return {"measured_latency_agrees": agrees}
    sizes = [m[config.measure] for m in methods.values() if config.measure in m]
    return {f"{config.measure}_within_1pct": bool(sizes) and max(sizes) <= 1.01 * min(sizes)}


def _beside(run: dict) -> bool:
    return "measured_beside_smoea" in run


def _beside_figures(runs: list[dict]) -> dict:
    """The runs' time as a ratio to their seed's SMOEA model measured together (mean and std
    over seeds), where every run was matched beside it."""
    ratios = [r["measured_beside_smoea"].get("ratio") for r in runs if _beside(r)]
    if not ratios or len(ratios) < len(runs) or None in ratios:
        return {}
    std = float(np.std(ratios, ddof=1)) if len(ratios) > 1 else None
    return {"measured_beside_smoea_ratio": float(np.mean(ratios)), "beside_smoea_std": std}


def _std_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return float(np.std(values, ddof=1)) if len(values) == len(runs) > 1 else None


def _repeat_std(runs: list[dict]) -> float | None:
    """How far one measurement of a run's latency ratio strays: the std over its repeated
    measurements, averaged over runs (None for records with fewer than two)."""
    stds = [
        np.std(r["measured_latency_ratios"], ddof=1)
        for r in runs
        if len(r.get("measured_latency_ratios") or []) > 1
    ]
    return float(np.mean(stds)) if stds else None


def _mean_of(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return float(np.mean(values)) if len(values) == len(runs) else None


def write_table(result: dict) -> str:
    """compare.md: one row per method."""
    b = result["baseline"]
    lines = [
        f"Baseline: test accuracy {100 * b['test_accuracy']:.2f}%, params {b['params']:,}, "
        f"MACs {b['macs']:,}. Target: {_target_text(result)}.",
        "",
        "| method | seeds | test acc. % (mean ± std) | drop (points) | held-out val. % | params | "
        "MACs | MACs ratio | search s | evaluations | fine-tune s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["methods"].items():
        if "failed" in m:
            lines.append(f"| {name} | | failed: {m['failed']} | | | | | | | | |")
            continue
        h = m.get("held_out_val_accuracy_mean")
        held = "" if h is None else f"{100 * h:.2f}"
        lines.append(
            f"| {name} | {len(m['seeds'])} | {100 * m['test_accuracy_mean']:.2f} ± "
            f"{100 * m['test_accuracy_std']:.2f} | {100 * m['drop']:.2f} | {held} | "
            f"{m['params']:,.0f} | {m['macs']:,.0f} | {m['macs'] / b['macs']:.4f} | "
            f"{m['search_seconds']:.0f} | {m['evaluations']:.0f} | {m['finetune_seconds']:.0f} |"
        )
    return "\n".join(lines + _latency_lines(result)) + "\n"


def _latency_lines(result: dict) -> list[str]:
    """With latency figures: each method's predicted latency (ms, the batch of the table) and
    its measured latency, as ms and as a ratio to a baseline measured with it (blank where a
    measurement was too noisy to keep), and how far one measurement of that ratio strays
    (blank for records measured once)."""
    b = result["baseline"]
    if "latency" not in b:
        return []
    lines = [
        "",
        f"Latency (ms, as deployed; baseline predicted {b['latency']:.2f}; each pruned model "
        "measured together with the baseline; setting: the target the method was given so that "
        "it measures at the comparison's, mean over seeds):",
        "",
        "| method | setting | predicted ms | measured ms | measured ratio to the baseline "
        "(mean ± std over seeds) | std of one measurement | ratio to the seed's smoea model, "
        "measured together |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in result["methods"].items():
        if "latency" in m:
            ratio, spread = m.get("measured_latency_ratio"), m.get("measured_latency_ratio_std")
            ratio = "" if ratio is None else f"{ratio:.4f}"
            ratio += "" if spread is None or not ratio else f" ± {spread:.4f}"
            repeat = m.get("measured_latency_repeat_std")
            lines.append(
                f"| {name} | {_setting(m)} | {m['latency']:.2f} | "
                f"{_ms(m.get('measured_latency'))} | {ratio} | "
                f"{'' if repeat is None else f'{repeat:.4f}'} | {_beside_text(m)} |"
            )
    if "measured_latency_agrees" in result:
        agrees = "yes" if result["measured_latency_agrees"] else "no"
        lines += [
            "",
            f"Every run measured within {matching.MATCH_TOLERANCE:.0%} of the target: {agrees} "
            "(a run matched beside its seed's smoea model: of that model's time, measured "
            "together).",
        ]
    return lines


def _beside_text(m: dict) -> str:
    ratio, std = m.get("measured_beside_smoea_ratio"), m.get("beside_smoea_std")
    if ratio is None:
        return ""
    return f"{ratio:.4f}" + ("" if std is None else f" ± {std:.4f}")


def _setting(m: dict) -> str:
    """The mean matched setting over seeds (a MAC ratio for smoea-macs), blank if none."""
    found = [r["latency_match"]["setting"] for r in m["runs"] if "latency_match" in r]
    return f"{np.mean(found):.4f}" if found else ""


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _target_text(result: dict) -> str:
    if result.get("measure") == "latency":
        return f"{result['target_latency']} of the latency (measured)"
    if result.get("measure") == "macs":
        return f"{result['target_macs']} of the MACs"
    return f"{result['target_params']} of the parameters"


def plot_compare(result: dict, path: Path) -> None:
    """Test accuracy against MACs and against parameters (two panels), one marker per method,
    the spread over seeds as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, size in zip(axes, ("macs", "params")):
        for name, m in result["methods"].items():
            if "failed" in m:
                continue
            smoea = name == "smoea"
            ax.errorbar(
                m[size],
                100 * m["test_accuracy_mean"],
                yerr=100 * m["test_accuracy_std"],
                fmt="*" if smoea else "o",
                markersize=12 if smoea else 6,
                capsize=3,
                label=name,
            )
        ax.set_xlabel("MACs" if size == "macs" else "parameters")
    axes[0].set_ylabel("test accuracy (%)")
    base = result["baseline"]["test_accuracy"]
    fig.suptitle(f"pruned to {_target_text(result)} (baseline {base:.2%})")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
