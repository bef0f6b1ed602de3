"""The one report of `make bench`: Markdown plus PNG plots, from what the steps left in RESULTS.

    python loadtests/report.py all RESULTS [--publish docs/img]   # RESULTS/report/report.md + PNGs
    python loadtests/report.py steps RESULTS                      # the step-load table alone

Reads (each optional; a missing input leaves its part out and says so):

* `locust-series.csv`, `locust-cpu.csv`, `locust.log`: the mixed locust run (loadtests/locust.sh);
* `steps-w<N>-steps.json`, `steps-w<N>-cpu.csv`: the step-load search (loadtests/stepload.sh);
* `server_choice.jsonl`, `domain_vs_driver.jsonl`, `middleware.jsonl`: the wrk steps, for the
  ratios to the bare Falcon hello (`loadtests/hello.py`) and to the bare driver.

Plots: latency percentiles over time per route with each class's budget (latency.png), the
P95 of every class against its budget (budgets.png), throughput, cache hit rate and server CPU
over time (run.png), and the step-load search for each worker count (steps.png).
`--publish DIR` copies the PNGs there (small: 80 dpi) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import budgets as budget_table  # noqa: E402 - beside this file
import summarize  # noqa: E402

CLASSES = ("crud", "lists", "search", "reports")
COLOURS = {"crud": "tab:blue", "lists": "tab:green", "search": "tab:orange", "reports": "tab:red"}
DPI = 80
MIN_LOOKUPS = 50  # the default of budgets.breaches: fewer lookups are not judged


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def cpu_percent(path: Path) -> list[tuple[float, float]]:
    """(epoch, % of one core) between consecutive samples of the server's process group."""
    rows = read_csv(path)
    points = []
    for before, after in zip(rows, rows[1:], strict=False):
        seconds = float(after["t"]) - float(before["t"])
        used = float(after["cpu_s"]) - float(before["cpu_s"])
        if seconds > 0 and used >= 0:
            points.append((float(after["t"]), 100 * used / seconds))
    return points


def steps_of(results: Path) -> dict[int, dict[str, Any]]:
    found = {}
    for path in sorted(results.glob("steps-w*-steps.json")):
        workers = int(path.name.removeprefix("steps-w").split("-")[0])
        found[workers] = json.loads(path.read_text())
    return found


def steps_table(steps: dict[int, dict[str, Any]]) -> str:
    if not steps:
        return "No step-load results (loadtests/stepload.sh did not run)."
    lines = [
        "| workers | step | users | req/s | P95 ms crud / lists / search / reports"
        " | hit rate crud / lists | errors | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workers, run in sorted(steps.items()):
        for step in run["steps"]:
            classes = step["classes"]
            p95 = " / ".join(f"{classes.get(k, {}).get('p95_ms', 0):.0f}" for k in CLASSES)
            rates = " / ".join(
                "-"
                if classes.get(k, {}).get("hit_rate") is None
                else f"{classes[k]['hit_rate']:.2f}"
                for k in ("crud", "lists")
            )
            verdict = "held" if step["held"] else "; ".join(step["breaches"])
            lines.append(
                f"| {workers} | {step['step']} | {step['users']} | {step['rps']:.1f} | {p95} | "
                f"{rates} | {step['error_rate']:.4f} | {verdict} |"
            )
    factors = {s.get("write_factor", 1.0) for run in steps.values() for s in run["steps"]}
    lines.append("")
    lines.append(
        f"Mix write factor {', '.join(f'{f:g}' for f in sorted(factors))}; P95s and errors per "
        "step, hit rates over every request since the warm-up."
    )
    lines.append("")
    lines.append("| workers | max sustainable req/s | at users | steps run | stopped by |")
    lines.append("|---|---|---|---|---|")
    for workers, run in sorted(steps.items()):
        last = run["steps"][-1] if run["steps"] else None
        stopped = "; ".join(last["breaches"]) if last and not last["held"] else "the step limit"
        rate = run.get("max_sustainable_rps")
        lines.append(
            f"| {workers} | **{rate if rate is not None else 'none held'}** | "
            f"{run.get('max_sustainable_users') or '-'} | {len(run['steps'])} | {stopped} |"
        )
    return "\n".join(lines)


def run_summary(
    series: list[dict[str, str]], run: dict[str, dict[str, float]], table: budget_table.Budgets
) -> str:
    """Per class: requests and req/s over the whole run (series), the P95 and hit rate locust
    judged after its warm-up (its log), and the worst 2-s P95 (series)."""
    if not series:
        return "No locust run (loadtests/locust.sh did not run)."
    by_class: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in series:
        by_class[row["class"]].append(row)
    seconds = float(series[-1]["epoch"]) - float(series[0]["epoch"]) + 2
    lines = [
        "| class | requests | req/s | judged P95 ms | budget ms | worst 2-s P95 ms"
        " | judged hit rate | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in CLASSES:
        rows = by_class.get(kind, [])
        if not rows:
            continue
        requests = sum(int(r["requests"]) for r in rows)
        worst = max(float(r["p95_ms"]) for r in rows)
        figures = run.get(kind, {})
        p95 = f"{figures['p95_ms']:.0f}" if "p95_ms" in figures else "-"
        rate = f"{figures['hit_rate']:.3f}" if "hit_rate" in figures else "-"
        target = table.min_cache_hit_rate.get(kind)
        lines.append(
            f"| {kind} | {requests} | {requests / seconds:.1f} | {p95} | "
            f"{table.p95_ms.get(kind, 0):g} | {worst:.0f} | {rate} | "
            f"{target if target is not None else '-'} |"
        )
    return "\n".join(lines)


_JUDGED = re.compile(
    r"budgets: (\w+): (\d+) requests, P95 (\d+) ms(?:, cache hit rate ([0-9.]+) of (\d+))?"
)


def judged(log: Path) -> dict[str, dict[str, float]]:
    """The figures locust judged (after its warm-up) per class, from its log."""
    if not log.exists():
        return {}
    found = {}
    for kind, requests, p95, rate, lookups in _JUDGED.findall(log.read_text()):
        found[kind] = {"requests": float(requests), "p95_ms": float(p95)}
        if rate:
            found[kind] |= {"hit_rate": float(rate), "cache_lookups": float(lookups)}
    return found


def verdict_lines(log: Path) -> str:
    if not log.exists():
        return ""
    wanted = [
        line.split("] ", 1)[-1].split("budgets: ", 1)[-1]
        for line in log.read_text().splitlines()
        if "budgets:" in line or "verdict" in line or "budget missed" in line
    ]
    return "\n".join(f"    {line}" for line in wanted)


def ratio_rows(results: Path, steps: dict[int, dict[str, Any]]) -> str:
    lines = ["| ratio | per round | median | source |", "|---|---|---|---|"]
    specs = {
        "server_choice.jsonl": [
            f"granian ÷ uvicorn, w{w} {kind}=granian-w{w}-{kind}/uvicorn-w{w}-{kind}:{m}"
            for w in (1, 2)
            for kind in ("item", "item-304", "uncached")
            for m in ("rps", "p99_ms")
        ],
        "hot_path.jsonl": [
            f"{kind} ÷ bare hello, {server} w{w}={server}-w{w}-{kind}/{server}-w{w}-hello:rps"
            for server in ("uvicorn", "granian")
            for w in (1, 2)
            for kind in ("live", "item", "item-304", "page-br")
        ]
        + [
            f"uncached item ÷ bare driver, w{w} {mode}={label}/driver-{label}:{m}"
            for w in (1, 2)
            for mode, label in (
                ("coalesced", f"uncached-w{w}"),
                ("single", f"uncached-single-w{w}"),
            )
            for m in ("rps", "p99_ms")
        ],
        "domain_vs_driver.jsonl": [
            "uncached item API ÷ bare driver=api-item/driver-item:p50_ms",
            "uncached item API ÷ bare driver=api-item/driver-item:rps",
            "clinics page API ÷ bare driver=api-list/driver-list:p50_ms",
        ],
        "middleware.jsonl": ["cached item ÷ /health/live=item-cached/live:rps"],
    }
    hello: dict[int, float] = {}
    for name, wanted in specs.items():
        path = results / name
        if not path.exists():
            lines.append(f"| (not run: {name}) | - | - | {name} |")
            continue
        rows = summarize.load(path)
        for line in summarize.ratios(rows, wanted).splitlines()[2:]:
            lines.append(f"{line} {name} |")
        if name == "hot_path.jsonl":  # the hello of the server `serve` runs (granian)
            for w in (1, 2):
                values = [float(r["rps"]) for r in rows if r["label"] == f"granian-w{w}-hello"]
                if values:
                    hello[w] = statistics.median(values)
    for workers, run in sorted(steps.items()):
        rate = run.get("max_sustainable_rps")
        if rate and workers in hello:
            lines.append(
                f"| max sustainable mixed req/s ÷ bare hello req/s, w{workers} | - | "
                f"**{rate / hello[workers]:.3f}** ({rate} ÷ {hello[workers]:,.0f}) | "
                f"steps-w{workers}, hot_path.jsonl |"
            )
    return "\n".join(lines)


# -- plots ---------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, out: Path) -> None:
    """Save as a small PNG: 80 dpi, then a 64-colour palette (line plots need no more), so the
    few plots docs/ keeps stay small."""
    from PIL import Image

    fig.savefig(out, dpi=DPI)
    with Image.open(out) as image:
        small = image.convert("RGB").quantize(colors=64)
    small.save(out, optimize=True)


def plot_latency(series: list[dict[str, str]], table: budget_table.Budgets, out: Path) -> None:
    plt = _pyplot()
    from matplotlib import ticker

    t0 = float(series[0]["epoch"])
    kinds = [k for k in CLASSES if any(r["class"] == k for r in series)]
    fig, axes = plt.subplots(len(kinds), 1, figsize=(10, 2.6 * len(kinds)), sharex=True)
    axes = [axes] if len(kinds) == 1 else list(axes)
    for ax, kind in zip(axes, kinds, strict=True):
        routes = sorted({r["route"] for r in series if r["class"] == kind})
        for index, route in enumerate(routes):
            rows = [r for r in series if r["route"] == route]
            xs = [float(r["epoch"]) - t0 for r in rows]
            colour = f"C{index}"
            ax.plot(xs, [float(r["p95_ms"]) for r in rows], color=colour, lw=1.4, label=route)
            ax.plot(xs, [float(r["p50_ms"]) for r in rows], color=colour, lw=0.8, ls=":")
            ax.plot(xs, [float(r["p99_ms"]) for r in rows], color=colour, lw=0.8, ls="--")
        budget = table.p95_ms.get(kind)
        if budget:
            ax.axhline(budget, color="red", lw=1.2, ls="-.", label=f"P95 budget {budget:g} ms")
        ax.set_ylabel(f"{kind} ms")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    axes[0].set_title(
        "Latency per route over time: P95 solid, P50 dotted, P99 dashed (2 s windows)"
    )
    axes[-1].set_xlabel("seconds into the run")
    fig.tight_layout()
    save(fig, out)
    plt.close(fig)


def plot_budgets(
    run: dict[str, dict[str, float]],
    steps: dict[int, dict[str, Any]],
    table: budget_table.Budgets,
    out: Path,
) -> None:
    """The P95 of each class as a share of its budget: the locust run (as judged, after its
    warm-up) and the best held step of each step-load search."""
    plt = _pyplot()
    groups: dict[str, dict[str, float]] = {}
    if run:
        groups["locust run (judged part)"] = {k: v["p95_ms"] for k, v in run.items()}
    for workers, run in sorted(steps.items()):
        held = [s for s in run["steps"] if s["held"]]
        if held:
            best = max(held, key=lambda s: s["rps"])
            groups[f"{workers} worker(s) at {best['rps']:.0f} req/s"] = {
                k: v["p95_ms"] for k, v in best["classes"].items()
            }
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / max(1, len(groups))
    for index, (label, values) in enumerate(groups.items()):
        xs = [i + index * width for i in range(len(CLASSES))]
        shares = [values.get(k, 0) / table.p95_ms[k] for k in CLASSES]
        bars = ax.bar(xs, shares, width, label=label)
        for bar, kind in zip(bars, CLASSES, strict=True):
            if kind in values:
                ax.annotate(
                    f"{values[kind]:.0f} ms",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.axhline(1.0, color="red", ls="-.", lw=1.2, label="budget")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(CLASSES))])
    ax.set_xticklabels([f"{k}\n(budget {table.p95_ms[k]:g} ms)" for k in CLASSES])
    ax.set_ylabel("P95 ÷ budget")
    ax.set_title("P95 against budget per route class")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    save(fig, out)
    plt.close(fig)


def plot_run(
    series: list[dict[str, str]],
    cpu: list[tuple[float, float]],
    table: budget_table.Budgets,
    out: Path,
) -> None:
    plt = _pyplot()
    t0 = float(series[0]["epoch"])
    fig, (thr, hits, load) = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    epochs = sorted({float(r["epoch"]) for r in series})
    interval = float(
        statistics.median([b - a for a, b in zip(epochs, epochs[1:], strict=False)] or [2])
    )
    for kind in CLASSES:
        per_epoch: dict[float, list[int]] = defaultdict(lambda: [0, 0, 0])
        for row in series:
            if row["class"] == kind:
                cell = per_epoch[float(row["epoch"])]
                cell[0] += int(row["requests"])
                cell[1] += int(row["cache_lookups"])
                cell[2] += int(row["cache_hits"])
        if not per_epoch:
            continue
        xs = [e - t0 for e in epochs]
        thr.plot(xs, [per_epoch[e][0] / interval for e in epochs], color=COLOURS[kind], label=kind)
        rated = [(e - t0, per_epoch[e][2] / per_epoch[e][1]) for e in epochs if per_epoch[e][1]]
        if rated:
            hits.plot(*zip(*rated, strict=True), color=COLOURS[kind], label=kind)
            target = table.min_cache_hit_rate.get(kind)
            if target is not None:
                hits.axhline(target, color=COLOURS[kind], ls="-.", lw=1, label=f"{kind} target")
    totals: defaultdict[float, int] = defaultdict(int)
    for row in series:
        totals[float(row["epoch"])] += int(row["requests"])
    thr.plot(
        [e - t0 for e in epochs],
        [totals[e] / interval for e in epochs],
        color="black",
        lw=1.5,
        label="all",
    )
    thr.set_ylabel("req/s")
    thr.set_title("Throughput, cache hit rate and server CPU over the run")
    hits.set_ylabel("cache hit rate")
    hits.set_ylim(0, 1.05)
    if cpu:
        load.plot(
            [t - t0 for t, _ in cpu], [p for _, p in cpu], color="purple", label="API process group"
        )
    load.set_ylabel("server CPU, % of one core")
    load.set_xlabel("seconds into the run")
    for ax in (thr, hits, load):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    fig.tight_layout()
    save(fig, out)
    plt.close(fig)


def plot_steps(
    results: Path, steps: dict[int, dict[str, Any]], table: budget_table.Budgets, out: Path
) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(steps), figsize=(5.2 * len(steps), 4.8), squeeze=False)
    for ax, (workers, run) in zip(axes[0], sorted(steps.items()), strict=True):
        rows = run["steps"]
        xs = [s["rps"] for s in rows]
        for kind in CLASSES:
            ys = [s["classes"].get(kind, {}).get("p95_ms", 0) / table.p95_ms[kind] for s in rows]
            ax.plot(xs, ys, marker="o", color=COLOURS[kind], label=f"{kind} P95 ÷ budget")
        for kind, target in table.min_cache_hit_rate.items():
            # Only where the step judged it (enough lookups, as budgets.breaches requires).
            ys = [
                target / s["classes"][kind]["hit_rate"]
                if s["classes"].get(kind, {}).get("cache_lookups", 0) >= MIN_LOOKUPS
                and s["classes"][kind]["hit_rate"]
                else float("nan")
                for s in rows
            ]
            ax.plot(
                xs, ys, marker="x", ls=":", color=COLOURS[kind], label=f"{kind} target ÷ hit rate"
            )
        ax.axhline(1.0, color="red", ls="-.", lw=1.2)
        cpu = cpu_percent(results / f"steps-w{workers}-cpu.csv")
        best = run.get("max_sustainable_rps")
        if best:
            ax.axvline(best, color="grey", ls="--", lw=1)
            ax.annotate(
                f"max sustainable\n{best:.0f} req/s",
                (best, 1.0),
                fontsize=8,
                xytext=(4, -28),
                textcoords="offset points",
            )
        ax.set_title(
            f"{workers} worker(s): step load"
            + (f", peak CPU {max(p for _, p in cpu):.0f} %" if cpu else "")
        )
        ax.set_xlabel("achieved req/s in the step")
        ax.set_ylabel("share of budget (over 1 = missed)")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    save(fig, out)
    plt.close(fig)


def build(results: Path, publish: Path | None) -> int:
    table = budget_table.load()
    out = results / "report"
    out.mkdir(parents=True, exist_ok=True)
    series = read_csv(results / "locust-series.csv")
    run = judged(results / "locust.log")
    steps = steps_of(results)
    cpu = cpu_percent(results / "locust-cpu.csv")
    pngs = []
    if series:
        plot_latency(series, table, out / "latency.png")
        plot_run(series, cpu, table, out / "run.png")
        pngs += ["latency.png", "run.png"]
    if run or steps:
        plot_budgets(run, steps, table, out / "budgets.png")
        pngs.append("budgets.png")
    if steps:
        plot_steps(results, steps, table, out / "steps.png")
        pngs.append("steps.png")
    machine = (results / "machine.txt").read_text() if (results / "machine.txt").exists() else ""
    cpu_line = (
        f"server CPU: median {statistics.median(p for _, p in cpu):.0f} %, peak "
        f"{max(p for _, p in cpu):.0f} % of one core (API process group, sampled from /proc)"
        if cpu
        else "server CPU: not sampled"
    )
    failed = results / "failed.txt"
    timings = results / "timings.md"
    parts = [
        "# make bench report",
        "```\n" + machine.strip() + "\n```" if machine else "",
        f"**Failed or missed a budget: {failed.read_text().strip()}**" if failed.exists() else "",
        "Time per step:\n\n" + timings.read_text().strip() if timings.exists() else "",
        "## Mixed locust run (loadtests/locust.sh)",
        run_summary(series, run, table),
        cpu_line,
        "locust's verdict (whole run):\n\n" + verdict_lines(results / "locust.log"),
        "## Maximum sustainable rate (loadtests/stepload.sh)",
        steps_table(steps),
        "## Ratios to the yardsticks",
        ratio_rows(results, steps),
        "## Plots",
        "\n".join(f"![{name}]({name})" for name in pngs),
    ]
    for name in (
        "server_choice",
        "validation",
        "domain_vs_driver",
        "middleware",
        "instrumentation",
        "rate_limit",
        "hot_path",
        "export",
    ):
        path = results / f"{name}.md"
        if path.exists():
            parts += [f"## {name} (raw)", path.read_text().strip()]
    (out / "report.md").write_text("\n\n".join(p for p in parts if p) + "\n")
    if publish is not None:
        publish.mkdir(parents=True, exist_ok=True)
        for name in pngs:
            shutil.copy(out / name, publish / f"bench-{name}")
    sys.stdout.write(f"report: {out / 'report.md'} ({', '.join(pngs) or 'no plots'})\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("all", "steps"))
    parser.add_argument("results", type=Path)
    parser.add_argument("--publish", type=Path, help="copy the PNGs here (docs/img)")
    args = parser.parse_args()
    if args.what == "steps":
        sys.stdout.write(steps_table(steps_of(args.results)) + "\n")
        return 0
    return build(args.results, args.publish)


if __name__ == "__main__":
    sys.exit(main())
