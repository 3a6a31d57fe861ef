"""Every results table in README.md and docs/*.md, made from the committed records in results/.

Usage:
  python benchmarks/tables.py          rewrite each block between <!-- table: NAME --> and
                                       <!-- /table --> with the table NAME as the records give it
  python benchmarks/tables.py --check  print the blocks that differ from the records; exit 1 if any
  (an unknown NAME, an unclosed marker or a missing record: one line on stderr, exit 2)
"""

import difflib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"<!-- table: (?P<name>\S+) -->\n(?P<body>.*?)<!-- /table -->", re.DOTALL)
OPENING = re.compile(r"<!-- table: ")

TABLES: dict[str, Callable[[], str]] = {}


class TableError(Exception):
    """A marker names no table, a record is missing, or a block is not closed."""


def table(name: str):
    """Register a function returning a Markdown table under NAME, the name its markers use."""

    def register(fn: Callable[[], str]) -> Callable[[], str]:
        TABLES[name] = fn
        return fn

    return register


# ---- records ----------------------------------------------------------------------------------


def path_of(rel: str) -> Path:
    path = RESULTS / rel
    if not path.is_file():
        raise TableError(f"missing record: benchmarks/results/{rel}")
    return path


def record(rel: str) -> dict:
    return json.loads(path_of(rel).read_text())


def only_run(rel: str) -> dict:
    """compare.json's one method (smoea), its aggregate figures and seeds."""
    return record(rel)["methods"]["smoea"]


def vgg14_baseline() -> dict:
    """The 30-epoch vgg14 width 0.5 baseline every vgg14 table starts from."""
    return record("vgg14-w05-cifar10/train.json")


# ---- figures ----------------------------------------------------------------------------------


def pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}%"


def count(n: float) -> str:
    return f"{n:,.0f}"


def mega(n: float) -> str:
    return f"{n / 1e6:.1f} M"


def share(part: float, whole: float, digits: int) -> str:
    return f"({100 * part / whole:.{digits}f}%)"


def sizes(params: float, macs: float, base: dict, measure: str) -> tuple[str, str]:
    """Parameters and MACs with their share of the baseline's: the targeted measure to 2
    decimals, the other to 1."""
    p, m = (2, 1) if measure == "params" else (1, 2)
    return (
        f"{count(params)} {share(params, base['params'], p)}",
        f"{mega(macs)} {share(macs, base['macs'], m)}",
    )


def seeds_note(run: dict) -> str:
    n = len(run["seeds"])
    return " (one seed)" if n == 1 else f" ({n} seeds)"


def bold(cell: str) -> str:
    return f"**{cell}**"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = [line(header), "|" + "---|" * len(header)] + [line(row) for row in rows]
    return "\n".join(lines) + "\n"


def line(cells: list[str]) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


# ---- the tables -------------------------------------------------------------------------------


# the records of the default prune at each target (the effort `auto` picks: the plan, with the
# floor at the MAC target), under search-effort/
DEFAULT_RUNS = {("params", 0.1656): "cost/plan/params/runs", ("macs", 0.3): "floor/plan/macs/runs"}
# the search-effort table's rows per target: (effort label, records under search-effort/)
EFFORT_RUNS = {
    "16.56% params": [("fixed", "cost/fixed/params"), ("plan", "cost/plan/params")],
    "30% MACs": [
        ("fixed", "cost/fixed/macs"),
        ("plan, no floor", "cost/plan/macs"),
        ("plan", "floor/plan/macs"),
    ],
}


@table("readme-defaults")
def readme_defaults() -> str:
    """README: the baseline and the defaults at both targets, means over the seeds (the plan
    effort that `auto` picks at both; search-effort/cost and, with MIN_SEARCH_SHARE at the MAC
    target, search-effort/floor)."""
    base = vgg14_baseline()
    rows = [
        [
            f"baseline, {base['config']['epochs']} epochs",
            pct(base["test_accuracy"]),
            "",
            count(base["params"]),
            mega(base["macs"]),
        ]
    ]
    for (measure, target), folder in DEFAULT_RUNS.items():
        runs = _seed_runs(RESULTS / "search-effort" / folder)
        rows.append(
            [
                f"SMOEA defaults, `--target-{measure} {target}` ({len(runs)} seeds)",
                pct(_seed_mean(runs, "test_accuracy")),
                pct(_seed_mean(runs, "held_out_val_accuracy")),
                *sizes(_seed_mean(runs, "params"), _seed_mean(runs, "macs"), base, measure),
            ]
        )
    return markdown(["", "test accuracy", "held-out val.", "parameters", "MACs"], rows)


@table("vgg14-defaults")
def vgg14_defaults() -> str:
    """docs/results.md: the default and old-schedule runs (schedule-9) and the older defaults
    (vgg14-w05-cifar10)."""
    base = vgg14_baseline()
    first = [f"baseline, {base['config']['epochs']} epochs", "", pct(base["test_accuracy"])]
    rows = [first + [count(base["params"]), mega(base["macs"]), "", ""]]
    labels = {
        "single-cycle": "**SMOEA to 16.56%, defaults** (counts genome, `fronts`, calibration 128, "
        "9 final epochs)",
        "old-schedule": "the same, old schedule (1 epoch after each group, 5 at the end)",
    }
    for folder, label in labels.items():
        run = only_run(f"search-earns/schedule-9/{folder}/compare.json")
        test = pct(run["test_accuracy_mean"])
        rows.append(
            [
                label,
                f"{pct(run['val_accuracy_mean'])} ({pct(run['held_out_val_accuracy_mean'])})",
                bold(test) if folder == "single-cycle" else test,
                *sizes(run["params"], run["macs"], base, "params"),
                f"{run['search_seconds']:.0f}",
                f"{run['finetune_seconds']:.0f}",
            ]
        )
    older = {
        "heavy-late/report.json": "SMOEA to 16.56%, `--budget heavy-late --genome bits "
        "--calibration-images 0` (the default before 2026-11-30)",
        "report.json": "SMOEA to 16.56%, `--budget proportional` (the first default)",
    }
    # fine-tune s left blank for these two, as the hand-made table had it (heavy-late's final
    # fine-tune ran beside tests: vgg14-w05-cifar10/README.md)
    for rel, label in older.items():
        report = record(f"vgg14-w05-cifar10/{rel}")
        pruned = report["pruned"]
        rows.append(
            [
                label,
                pct(report["final_finetune"]["val_accuracy"]),
                pct(pruned["test_accuracy"]),
                *sizes(pruned["params"], pruned["macs"], base, "params"),
                f"{report['search_seconds']:.0f}",
                "",
            ]
        )
    header = ["", "val. accuracy (held-out)", "test accuracy", "parameters", "MACs"]
    return markdown(header + ["search s", "fine-tune s"], rows)


RECOVERY_ROWS = [
    ("SMOEA, plain: test %", "plain", (5, 10, 20, 30)),
    ("SMOEA, distilled (T 4, w 0.9): test %", "distill", (5, 10, 20, 30)),
    ("control (baseline + N epochs): test %", "control", (5, 10, 20, 30)),
    ("l1-progressive, distilled: test %", "l1p-distill", (10, 30)),
]


@table("recovery-curve")
def recovery_curve() -> str:
    """docs/results.md: test % after N epochs of fine-tuning (recovery/gpu/*/train.json); the
    distilled rows' last point in bold."""
    epochs = (5, 10, 20, 30)
    rows = []
    for label, run, measured in RECOVERY_ROWS:
        cells = []
        for n in epochs:
            if n not in measured:
                cells.append("")
                continue
            train = record(f"recovery/gpu/{run}-{n}-seed0/train.json")
            test = f"{100 * train['test_accuracy']:.2f}"
            cells.append(bold(test) if "distill" in run and n == epochs[-1] else test)
        rows.append([label, *cells])
    header = "epochs N after pruning (pruned models: N + 4 in all; control: N)"
    return markdown([header, *map(str, epochs)], rows)


@table("compare-vgg14-w05")
def compare_vgg14_w05() -> str:
    """docs/results.md: the first comparison at equal parameters (compare-vgg14-w05)."""
    result = record("compare-vgg14-w05/compare.json")
    rows = []
    for name, m in result["methods"].items():
        rows.append(
            [
                name,
                str(len(m["seeds"])),
                f"{100 * m['test_accuracy_mean']:.2f} ± {100 * m['test_accuracy_std']:.2f}",
                f"{100 * m['drop']:.2f}",
                count(m["params"]),
                count(m["macs"]),
                f"{m['search_seconds']:.0f}",
                f"{m['evaluations']:.0f}",
                f"{m['finetune_seconds']:.0f}",
            ]
        )
    header = ["method", "seeds", "test acc. % (mean ± std)", "drop (points)", "params", "MACs"]
    return markdown(header + ["search s", "evaluations", "fine-tune s"], rows)


@table("search-effort")
def search_effort() -> str:
    """docs/results.md: `--effort plan` against `--effort fixed`, seeds side by side
    (search-effort/cost/<effort>/<target>/runs from benchmarks/effort.sh; at the MAC target the
    plan with MIN_SEARCH_SHARE from search-effort/floor, the one without it kept beside)."""
    rows = []
    for label, efforts in EFFORT_RUNS.items():
        runs = {e: _seed_runs(RESULTS / "search-effort" / f / "runs") for e, f in efforts}
        fixed_s = _seed_mean(runs["fixed"], "search_seconds")
        for effort, rs in runs.items():
            search = _seed_mean(rs, "search_seconds")
            rows.append(
                [
                    label if effort == "fixed" else "",
                    effort,
                    ",".join(str(r["seed"]) for r in rs),
                    f"{search:.0f}" + ("" if effort == "fixed" else f" ({search / fixed_s:.0%})"),
                    f"{_seed_mean(rs, 'evaluations'):.0f}",
                    _mean_range([100 * r["test_accuracy"] for r in rs]),
                    _mean_range([100 * r["held_out_val_accuracy"] for r in rs]),
                    count(_seed_mean(rs, "params")),
                    mega(_seed_mean(rs, "macs")),
                ]
            )
    header = ["target", "effort", "seeds", "search s", "evaluations", "test % (range)"]
    return markdown(header + ["held-out % (range)", "params", "MACs"], rows)


def _seed_runs(folder: Path) -> list[dict]:
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("smoea-seed*.json"))]
    if not runs:
        raise TableError(f"missing record: {folder.relative_to(ROOT)}/smoea-seed*.json")
    return sorted(runs, key=lambda r: r["seed"])


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _seed_mean(runs: list[dict], key: str) -> float:
    return _mean([r[key] for r in runs])


def _mean_range(values: list[float]) -> str:
    """The mean and, over several seeds, the range (max - min): the seed spread."""
    spread = f" ({max(values) - min(values):.2f})" if len(values) > 1 else ""
    return f"{_mean(values):.2f}{spread}"


def latency(rel: str) -> dict[str, dict[str, float]]:
    """latency.py's output: {'baseline'|'pruned': {'1'|'64': ms}, 'speedup': {'1'|'64': x}}."""
    text = path_of(rel).read_text()
    out = {"speedup": dict(re.findall(r"speedup at batch (\d+): ([\d.]+)x", text))}
    for model in ("baseline", "pruned"):
        row = re.search(rf"^{model} .*$", text, re.MULTILINE)
        if row is None:
            raise TableError(f"no {model} line in benchmarks/results/{rel}")
        out[model] = dict(re.findall(r"batch (\d+)\s+([\d.]+) ms", row.group()))
    return {k: {b: float(v) for b, v in d.items()} for k, d in out.items()}


@table("resnet56-half-macs")
def resnet56_half_macs() -> str:
    """docs/results.md: resnet56 to half its MACs (resnet56-cifar10: train.json, report.json,
    latency.txt)."""
    train = record("resnet56-cifar10/train.json")
    report = record("resnet56-cifar10/report.json")
    lat = latency("resnet56-cifar10/latency.txt")
    base, pruned = report["baseline"], report["pruned"]
    measure = "macs" if report["config"].get("target_macs") else "params"
    rows = [
        [
            f"baseline, {train['config']['epochs']} epochs",
            pct(train["history"][-1]["val_accuracy"]),
            pct(base["test_accuracy"]),
            count(base["params"]),
            mega(base["macs"]),
            f"{lat['baseline']['1']:.2f} ms",
            f"{lat['baseline']['64']:.1f} ms",
        ],
        [
            f"SMOEA `--target-{measure} {report['config'][f'target_{measure}']}`",
            pct(report["final_finetune"]["val_accuracy"]),
            pct(pruned["test_accuracy"]),
            *sizes(pruned["params"], pruned["macs"], base, measure),
            f"{lat['pruned']['1']:.2f} ms ({lat['speedup']['1']:.2f}x)",
            f"{lat['pruned']['64']:.1f} ms ({lat['speedup']['64']:.2f}x)",
        ],
    ]
    header = ["", "val. accuracy", "test accuracy", "parameters", "MACs"]
    return markdown(header + ["latency batch 1", "latency batch 64"], rows)


# ---- the documents ----------------------------------------------------------------------------


@table("torchvision-zoo")
def torchvision_zoo() -> str:
    """docs/models.md: every torchvision classifier through prune, save, load and ONNX export
    (torchvision-zoo/<model>.json from benchmarks/torchvision_zoo.py); those not run yet named."""
    runs = _zoo_runs()
    rows = []
    for name, r in runs.items():
        if r["status"] == "pruned":
            done = [
                f"{r['macs_ratio']:.3f}",
                f"{r['layers']} / {r['groups']}",
                ", ".join(r["scoring"]),
            ]
            rows.append([name, "pruned", *done, ""])
        else:
            rows.append([name, r["status"], "", "", "", r.get("reason", "")])
    header = ["model", "result", "MAC ratio", "layers / groups", "scoring", "reason"]
    every, missing = _zoo_missing(runs)
    counts = [
        f"{sum(r['status'] == s for r in runs.values())} {s}"
        for s in ("pruned", "refused", "failed")
    ]
    summary = f"{', '.join(counts)} of {len(runs)}; {len(missing)} of {len(every)} without a record"
    return (
        markdown(header, rows)
        + "\n"
        + summary
        + (f": {', '.join(missing)}" if missing else "")
        + "\n"
    )


@table("torchvision-supported")
def torchvision_supported() -> str:
    """README.md: which torchvision classifiers prune, from the same records, in one paragraph
    (refusals grouped by their reason, without the layer names that differ per model)."""
    runs = _zoo_runs()
    pruned = [name for name, r in runs.items() if r["status"] == "pruned"]
    by_reason: dict[str, list[str]] = {}
    for name, r in runs.items():
        if r["status"] != "pruned":
            by_reason.setdefault(_reason_kind(r), []).append(name)
    parts = [
        f"- **Pruned** through prune, save, load and ONNX ({len(pruned)}): {', '.join(pruned)}."
    ]
    for reason, names in by_reason.items():
        parts.append(f"- **{reason}** ({len(names)}): {', '.join(names)}.")
    _, missing = _zoo_missing(runs)
    if missing:
        why = f"No record yet ({len(missing)}, docs/models.md says why)"
        parts.append(f"- {why}: {', '.join(missing)}.")
    return "\n".join(parts) + "\n"


def _zoo_runs() -> dict[str, dict]:
    folder = RESULTS / "torchvision-zoo"
    if not folder.is_dir():
        raise TableError("missing record: benchmarks/results/torchvision-zoo/")
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def _zoo_missing(runs: dict[str, dict]) -> tuple[list[str], list[str]]:
    """Every classifier torchvision lists, and those without a record yet."""
    import torchvision

    every = torchvision.models.list_models(module=torchvision.models)
    return every, [m for m in every if m not in runs]


def _reason_kind(r: dict) -> str:
    """A refusal's kind, the same words for every model it hits."""
    reason = r.get("reason", "")
    if r["status"] == "failed":
        return "Failed (a defect or over the time limit)"
    for key, kind in (
        ("LayerNorm", "Refused: channels-last LayerNorm"),
        ("concatenat", "Refused: BatchNorm over a concatenation"),
        ("channel shuffle", "Refused: channel shuffle (Torch-Pruning's graph fails)"),
        ("update_concat_index_mapping", "Refused: Torch-Pruning's graph fails on a concatenation"),
        ("through a reshape", "Refused: Torch-Pruning's graph expands a reshape without bound"),
        ("cannot run on", "Refused at 64 px: the model does not take this image size"),
    ):
        if key in reason:
            return kind
    return f"Refused: {reason}"


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(text: str, where: str) -> list[tuple[re.Match, str]]:
    """Each marked block of TEXT with the table the records give for it."""
    found = list(BLOCK.finditer(text))
    if len(found) != len(OPENING.findall(text)):
        raise TableError(f"{where}: a <!-- table: NAME --> marker without its <!-- /table -->")
    out = []
    for block in found:
        name = block["name"]
        if name not in TABLES:
            raise TableError(f"{where}: unknown table {name!r} (known: {', '.join(TABLES)})")
        # the blank line ends the table: GFM would read the closing marker as one more row
        out.append((block, TABLES[name]() + "\n"))
    return out


def regenerate(text: str, where: str) -> tuple[str, list[str]]:
    """TEXT with every block made from the records, and the names of the blocks that changed."""
    changed, parts, last = [], [], 0
    for block, fresh in blocks(text, where):
        if block["body"] != fresh:
            changed.append(block["name"])
        parts += [text[last : block.start("body")], fresh]
        last = block.end("body")
    return "".join(parts) + text[last:], changed


def names_used(paths: list[Path]) -> set[str]:
    return {m["name"] for path in paths for m in BLOCK.finditer(path.read_text())}


def main(argv: list[str]) -> int:
    check = argv == ["--check"]
    if argv and not check:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    differs = 0
    try:
        for path in documents():
            where = str(path.relative_to(ROOT))
            old = path.read_text()
            new, changed = regenerate(old, where)
            if not changed:
                continue
            differs += len(changed)
            if check:
                for name in changed:
                    print(f"{where}: table {name} differs from the records")
                diff = difflib.unified_diff(
                    old.splitlines(), new.splitlines(), where, "records", lineterm=""
                )
                print("\n".join(diff))
            else:
                path.write_text(new)
                print(f"{where}: rewrote {', '.join(changed)}")
    except TableError as error:
        print(f"tables.py: {error}", file=sys.stderr)
        return 2
    return 1 if check and differs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
