"""The benchmark tables and figures of docs/benchmarks.md, drawn from the benchmarks' JSON files
(record.py): for each RESULTS/<name>.json, the text between `<!-- bench:<name> -->` and
`<!-- /bench:<name> -->` in the page is replaced by its table(s), a line naming the machine, and
(ingest, train, metrics) a figure saved as images/bench_<name>.png beside the page, with the docs'
other images. Blocks without a JSON file are left as they are. Reads RESULTS/*.json; writes the
page and PNGs.

    .venv/bin/python tests/benchmarks/render.py [--results docs/results/bench] [--page docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIGURES = "images"  # a folder beside the page, where the docs' other images are
# Cores kept busy by other processes (on average) from which a table is marked as shared.
SHARED = 0.25
# NVIDIA's published ResNet-50 training rate (A100 80GB, AMP, 224 px), scaled by pixels to 512 px.
NVIDIA_A100_224 = 2470


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def machine_line(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    cores = f"{m['usable_cores']} of {m['cores']} cores" if m["usable_cores"] != m["cores"] else f"{m['cores']} cores"
    line = (f"<sub>Measured {m['date']} by `{doc['command']}` ({m['seconds']:,.0f} s) on {m['cpu']}, {cores}, "
            f"{m['memory_gib']} GiB; Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}.")
    load = m.get("other_load")
    if load is not None:
        line += f" Other processes kept {load:.2f} cores busy on average while it ran"
        line += (": the machine was shared, so compare the ratios within this table, not the rates with other tables."
                 if load >= SHARED else " (a quiet machine).")
    return line + "</sub>"


def figure(figs: Path, name: str, draw: Callable[[Any], None], width: float = 6.4) -> str:
    fig, ax = plt.subplots(figsize=(width, 3.6), dpi=110)
    draw(ax)
    ax.grid(True, alpha=0.3)
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers on log axes too
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    fig.tight_layout()
    figs.mkdir(parents=True, exist_ok=True)
    path = figs / f"bench_{name}.png"
    fig.savefig(path)
    plt.close(fig)
    return f"![{name} benchmark]({FIGURES}/{path.name})"


def ingest(doc: dict[str, Any], figs: Path) -> list[str]:
    res, sizes = doc["results"], doc["config"]["sizes"]
    rates = {int(k): v for k, v in res["rates"].items()}
    names = {"bare": "bare loop: `pydicom.dcmread(f).pixel_array` + resize (pydicom's default decoder)",
             "decode": "spurspec decode only (JPEG fast path, 1 process): the decoder's limit",
             "workers1": "`spurspec ingest siim --workers 1`", "workers2": "`spurspec ingest siim --workers 2`"}
    head = "| path | " + " | ".join(f"{s} px images/s | vs bare loop" for s in sizes) + " |"
    out = [head, "|---|" + "---:|---:|" * len(sizes)]
    for key, name in names.items():
        cells = [f"{fmt(rates[s][key]['images_per_s'])} | {rates[s][key]['images_per_s'] / rates[s]['bare']['images_per_s']:.2f}×"
                 for s in sizes]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    r = {s: _ingest_ratios(rates[s]) for s in sizes}
    out += ["", "`--workers 1` reaches " + " and ".join(f"**{r[s][0]:.2f}×** at {s} px" for s in sizes)
            + " the decode-only rate (issue 17's target: ≥ 0.9×); `--workers 2` runs "
            + " and ".join(f"**{r[s][1]:.2f}×**" for s in sizes)
            + " as fast as `--workers 1` (target ≥ 1.8× where two cores are free)."
            + _ingest_pairing(rates, sizes)]
    out += ["", ingest_notes(res)]

    def draw(ax):
        for s in sizes:
            line, = ax.plot([1, 2], [rates[s]["workers1"]["images_per_s"], rates[s]["workers2"]["images_per_s"]],
                            marker="o", label=f"ingest, {s} px")
            ax.axhline(rates[s]["decode"]["images_per_s"], ls="--", color=line.get_color(), label=f"decode only, {s} px")
        ax.set(xticks=[1, 2], xlabel="--workers", ylabel="images/s", title="ingest siim: 1024 px JPEG DICOMs")
        ax.legend(fontsize=8)

    return [*out, "", figure(figs, "ingest", draw)]


def _ingest_ratios(rows: dict[str, Any]) -> tuple[float, float]:
    """(--workers 1 / decode only, --workers 2 / --workers 1): medians of the per-repeat ratios
    where the file has them, else the ratios of the median rates (files from before them)."""
    if "paired" in rows:
        return rows["paired"]["workers1_vs_decode"]["median"], rows["paired"]["workers2_vs_workers1"]["median"]
    rate = {k: rows[k]["images_per_s"] for k in ("decode", "workers1", "workers2")}
    return rate["workers1"] / rate["decode"], rate["workers2"] / rate["workers1"]


def _ingest_pairing(rates: dict[int, Any], sizes: list[int]) -> str:
    """How the ratios were formed, and their spread over the repeats (files from before the
    per-repeat ratios say nothing)."""
    if not all("paired" in rates[s] for s in sizes):
        return ""
    if rates[sizes[0]].get("design") == "ABBA":
        how = (" Each ratio is the median of the ratios within a repeat, whose runs go decode, `--workers 1`,"
               " `--workers 2`, `--workers 2`, `--workers 1`, decode: a drift of the machine's speed that is"
               " linear over a repeat cancels out of both ratios.")
    else:
        how = (" Each ratio is the median of the ratios within a repeat (the contenders run back to back"
               " there, so a slow spell of the virtual machine moves both sides of a ratio alike).")
    spread = "; ".join(
        f"at {s} px {min(v):.2f}–{max(v):.2f} and {min(w):.2f}–{max(w):.2f}"
        for s in sizes
        for v, w in [(rates[s]["paired"]["workers1_vs_decode"]["per_repeat"],
                      rates[s]["paired"]["workers2_vs_workers1"]["per_repeat"])])
    return how + f" Over the repeats the two ratios ranged {spread}."


def ingest_notes(res: dict[str, Any]) -> str:
    d = res["fast_path_diff"]
    text = (f"The fast path (libjpeg's reduced-scale DCT decoding through Pillow's `draft`, then resize) differs "
            f"from a full decode + resize by {d['mean']:.3f} grey levels on average at {d['size']} px.")
    one, two = [x for x in res["rss"] if x["workers"] == 1], [x for x in res["rss"] if x["workers"] == 2]
    if one:
        text += (" Peak RSS stays flat as the dataset grows, because rows are streamed to disk with positioned writes: "
                 + " and ".join(f"{x['maxrss']:,} MiB for {x['images']:,} images" for x in one) + " (`--workers 1`"
                 + (f"; each extra worker process stays near {max(x['worker'] for x in two):,} MiB)." if two else ")."))
    return text


def storage(doc: dict[str, Any], figs: Path) -> list[str]:
    out = ["| stored as | images/s | vs PNG |", "|---|---:|---:|"]
    for row in doc["results"]["rows"]:
        out.append(f"| {row['stored_as']} | {fmt(row['images_per_s'], 0)} | {row['vs_png']:.1f}× |")
    return out


def train(doc: dict[str, Any], figs: Path) -> list[str]:
    res, cfg = doc["results"], doc["config"]
    out = []
    if res["versus_bare"]:
        out += [f"At {cfg['size']} px, batch {cfg['batch']}, model `{cfg['model']}`, {cfg['threads']} threads, "
                f"medians of {cfg['repeats']} (each run's rate in brackets):", "",
                "| granularity | training images | bare PyTorch | spurspec | ratio | spurspec, `standard` augmentation (on the batch) |",
                "|---|---:|---:|---:|---:|---:|"]
        for r in res["versus_bare"]:
            runs = {k: " (" + ", ".join(f"{x:,.0f}" for x in r[k]) + ")" for k in ("bare", "spurspec", "standard")}
            out.append(f"| {r['granularity']} | {r.get('train_images', '')} | {fmt(r['bare_median'])} img/s{runs['bare']} | "
                       f"{fmt(r['spurspec_median'])} img/s{runs['spurspec']} | {r['spurspec_median'] / r['bare_median']:.2f} | "
                       f"{fmt(r['standard_median'])} img/s{runs['standard']} |")
        out += ["", f"Peak memory {res['peak_rss_mib']:,.0f} MiB RSS."]
    if res["curve"]:
        out += ["", *curve_table(res["curve"]), "", figure(figs, "train", lambda ax: curve_figure(ax, res["curve"]))]
    return out


def curve_table(rows: list[dict]) -> list[str]:
    out = ["| model | px | training images | batch | no augmentation | `standard` | ratio | data wait (none) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    by = {(r["model"], r["size"], r["augment"]): r for r in rows}
    for (model, size, augment), r in by.items():
        if augment != "none":
            continue
        aug = by[(model, size, "standard")]
        out.append(f"| `{model}` | {size} | {r['train_images']} | {r['batch']} | {fmt(r['images_per_s'])} img/s | "
                   f"{fmt(aug['images_per_s'])} img/s | {aug['images_per_s'] / r['images_per_s']:.2f} | "
                   f"{r['data_wait_fraction']:.1%} |")
    return out


def curve_figure(ax, rows: list[dict]) -> None:
    for i, model in enumerate(dict.fromkeys(r["model"] for r in rows)):
        for augment, style in (("none", "-"), ("standard", "--")):
            pts = sorted((r["size"], r["images_per_s"]) for r in rows if r["model"] == model and r["augment"] == augment)
            ax.plot(*zip(*pts, strict=True), style, marker="o", color=f"C{i}", label=f"{model}, augment {augment}")
    ax.set(xscale="log", yscale="log", xlabel="image side (px)", ylabel="training images/s",
           title="binary training on this CPU")
    ax.set_xticks([r["size"] for r in rows], labels=[str(r["size"]) for r in rows])
    ax.minorticks_off()
    ax.legend(fontsize=8)


def augment(doc: dict[str, Any], figs: Path) -> list[str]:
    res, cfg = doc["results"], doc["config"]
    out = [f"`{cfg['model']}` at {cfg['size']} px, batch {cfg['batch']}, {cfg['threads']} threads, medians of {cfg['repeats']}:",
           "", "| | no augmentation | `standard` on the batch | `standard-cpu` per image |", "|---|---:|---:|---:|"]
    for r in res["throughput"]:
        rate, share = r["images_per_s"], r["share"]
        out.append(f"| {r['granularity']} | {fmt(rate['none'])} img/s | {fmt(rate['standard'])} "
                   f"({rate['standard'] / rate['none']:.2f}×; {share['standard']:.1%} of the epoch augmenting) | "
                   f"{fmt(rate['standard-cpu'])} ({rate['standard-cpu'] / rate['none']:.2f}×; "
                   f"{share['standard-cpu']:.0%} waiting for data) |")
    for c in res["study_cost"]:
        out += ["", f"The study's augmentation at {cfg['big_size']} px costs {c['augment_mean_s'] / c['step_s']:.1%} of a "
                f"`resnet50` {c['granularity']} training step on the same batch of {cfg['big_batch']} "
                f"({c['augment_mean_s'] * 1e3:,.1f} ms against {c['step_s'] * 1e3:,.0f} ms; "
                f"{c['augment_worst_s'] / c['step_s']:.1%} with every sample warped; target < 10 %)."]
    return out


def metrics(doc: dict[str, Any], figs: Path) -> list[str]:
    res = doc["results"]
    out = ["| predictions | time (median) | × time | × predictions | peak memory | runs |",
           "|---:|---:|---:|---:|---:|---|"]
    prev = None
    for s in res["sizes"]:
        grow = (f"{s['median_s'] / prev['median_s']:.1f}× | {s['predictions'] / prev['predictions']:.0f}×"
                if prev else " | ")
        out.append(f"| {s['predictions']:,} | {s['median_s']:,.1f} s | {grow} | {s['peak_rss_mib']:,.0f} MiB | "
                   f"{len(s['seconds'])} |")
        prev = s
    if len(res["sizes"]) > 1:
        a, z = res["sizes"][-2], res["sizes"][-1]
        per = (z["peak_rss_mib"] - a["peak_rss_mib"]) * 2**20 / (z["predictions"] - a["predictions"])
        out += ["", f"From {a['predictions']:,} to {z['predictions']:,} predictions the time grows "
                f"{z['median_s'] / a['median_s']:.1f}× for {z['predictions'] / a['predictions']:.0f}× the predictions, and "
                f"peak memory (of the whole process: data, DuckDB and the bootstrap) by {per / 1024:.1f} KiB a "
                f"prediction, to {z['peak_rss_mib'] / 1024:.1f} GiB at {z['predictions']:,}."]
    b = res["baseline"]
    if b:
        how = ("all 1,000 replicates run" if b["replicates_run"] == doc["config"]["replicates"]
               else f"timed on {b['replicates_run']} replicates and extrapolated linearly")
        out += ["", f"At {b['predictions']:,} predictions a pandas + `roc_auc_score` loop doing the same work takes "
                f"{b['seconds']:,.0f} s ({how}): spurspec is **{b['ratio']:.1f}×** faster (target ≥ 20×)."]

    def draw(ax):
        n = [s["predictions"] for s in res["sizes"]]
        t = [s["median_s"] for s in res["sizes"]]
        ax.plot(n, t, marker="o", label="time (s)")
        ax.plot(n, [t[0] * k / n[0] for k in n], ":", color="C0", label="linear in predictions")
        ax.plot(n, [s["peak_rss_mib"] / 1024 for s in res["sizes"]], marker="s", color="C1", label="peak memory (GiB)")
        ax.set(xscale="log", yscale="log", xlabel="predictions", ylabel="seconds; GiB",
               title="evaluate: 1,000 bootstrap replicates")
        ax.legend(fontsize=8)

    return [*out, "", figure(figs, "metrics", draw)]


def concurrent(doc: dict[str, Any], figs: Path) -> list[str]:
    out = ["| OpenMP wait policy | two runs in turn | two runs together | ratio |", "|---|---:|---:|---:|"]
    for r in doc["results"]["rows"]:
        name = "ACTIVE (torch's default; baseline)" if r["policy"] == "ACTIVE" else "PASSIVE (spurspec's)"
        out.append(f"| {name} | {r['sequential_s']:.1f} s | {r['concurrent_s']:.1f} s | {r['ratio']:.2f}× |")
    return out


def gpu(doc: dict[str, Any], figs: Path) -> list[str]:
    res, cfg = doc["results"], doc["config"]
    nvidia = NVIDIA_A100_224 * (224 / cfg["size"]) ** 2
    out = [f"{res['device']}, {cfg['size']} px, batch {cfg['batch']}, ~{cfg['train_images']:,} training images, "
           f"median of epochs after the first; torch.compile {'on' if cfg['compile'] else 'off'}:", "",
           "| model | granularity | images/s | data wait | peak GPU memory |", "|---|---|---:|---:|---:|"]
    for r in res["rows"]:
        out.append(f"| `{r['model']}` | {r['granularity']} | {fmt(r['images_per_s'])} | {r['data_wait_fraction']:.1%} | "
                   f"{r['peak_memory_mib']:,.0f} MiB |")
    out += ["", f"Reference: NVIDIA's published ResNet-50 rate on an A100 (AMP, {NVIDIA_A100_224:,} images/s at 224 px) "
            f"is about {nvidia:,.0f} images/s at {cfg['size']} px; the data pipeline's target is a data wait below 5 %."]
    return out


RENDERERS: dict[str, Callable[[dict[str, Any], Path], list[str]]] = {
    "ingest": ingest, "storage": storage, "train": train, "augment": augment, "metrics": metrics,
    "concurrent": concurrent, "gpu": gpu,
}


def replace_block(text: str, name: str, body: list[str]) -> str:
    pattern = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"the page has no <!-- bench:{name} --> ... <!-- /bench:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + "\n".join(body) + "\n" + m.group(2), text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=ROOT / "docs" / "results" / "bench")
    ap.add_argument("--page", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args(argv)
    text = args.page.read_text(encoding="utf-8")
    for name, render in RENDERERS.items():
        path = args.results / f"{name}.json"
        if not path.exists():
            print(f"{name}: no {path}; its block is left as it is", file=sys.stderr)
            continue
        doc = json.loads(path.read_text(encoding="utf-8"))
        if name == "gpu" and not doc["results"]["cuda"]:
            print(f"gpu: {path} is a CPU smoke run (--allow-cpu), not a GPU figure; its block is left as it is")
            continue
        text = replace_block(text, name, [*render(doc, args.page.parent / FIGURES), "", machine_line(doc)])
        print(f"{name}: rendered from {path}")
    args.page.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
