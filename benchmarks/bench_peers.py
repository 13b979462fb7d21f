"""The shelfwise runtime (onnxruntime) against the edge runtimes a team would pick instead.

The same trained network -- the Amazon Beauty run (12,101 items; 100k and 1M catalogs with its
item table tiled, as ``bench_recommend.py`` does) and the demo groceries run behind the
committed kiosk bundle (167 items) -- exported to each peer with the peer's own tooling
(``peer_export.py``: ExecuTorch + XNNPACK, LiteRT through litert-torch, OpenVINO from the ONNX
file), checked for top-10 agreement with PyTorch on real validation histories, then measured in
this one process, one thread and two: p50/p99 latency for one history, file size; and in a fresh
process per runtime: cold start (import + load + first answer) and resident memory. onnxruntime
(the shelfwise runtime's session, options and graph) is the baseline of every ratio.

    python benchmarks/bench_peers.py                                # 167, 12k, 100k, 1M
    python benchmarks/bench_peers.py --catalogs 12k --rounds 100    # a quick look

Needs the ``train`` and ``peers`` extras, which live in ``.venv-peers`` (``bash
scripts/setup_peers.sh``; run this with ``.venv-peers/bin/python``), and the run folders
(``runs/beauty``, ``runs/groceries``); a peer that is not installed or cannot convert is a row
saying why.

    shelfwise train --data ../shared/data/amazon-beauty/Beauty.txt --out runs/beauty
    python -m shelfwise.training.demo_bundle --run runs/groceries   # the demo bundle's run
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no spinning pools on 2 shared cores

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

import peer_export
import peer_runners
import scorer_graph
from peer_export import Converted, Failure, TopKScorer
from peer_runners import Spec

from shelfwise.export.onnx_export import export_onnx
from shelfwise.export.quantize import quantize_int8, scorer_is_int8
from shelfwise.model.bundle import read_bundle
from shelfwise.training.data import EvalCases
from shelfwise.training.train import load_run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
DEMO_BUNDLE = ROOT / "kiosk_demo" / "store" / "bundle"
K = 10
CATALOGS = {
    "167": ("groceries", 0),
    "12k": ("beauty", 0),
    "100k": ("beauty", 100_000),
    "1M": ("beauty", 1_000_000),
}
PEERS = ["executorch", "litert", "openvino"]
# Rows of the table: the runtime (ours twice: the fp32 graph and the int8-scorer graph).
# "padded": the same fp32 graph fed [1, max_len], the input the static-shape peers get.
ROWS = ["onnxruntime", "onnxruntime padded", "onnxruntime int8 scorer", *PEERS]


@dataclass
class Source:
    """One catalog: the torch network, its ONNX graph, real histories."""

    label: str
    run: Path
    top: TopKScorer  # torch: the reference every runtime is checked against
    onnx_fp32: bytes
    items: int
    max_len: int
    histories: list[list[int]]  # real validation histories (model indices), for agreement
    latency_histories: list[list[int]]  # the last 20 items of real histories >= 8 items
    notes: list[str]


def load_source(label: str, run: Path, size: int, n_histories: int) -> Source:
    model, vocab, _config = load_run(run)
    fp32 = export_onnx(model)
    notes = [
        f"network: {run} (best epoch {json.loads((run / 'run.json').read_text())['best_epoch']})"
    ]
    table = None
    if size:
        table = scorer_graph.tile_table(scorer_graph.scorer_table(fp32), size)
        fp32 = scorer_graph.tiled_model(fp32, table)
        notes.append(f"item table tiled to {size:,} items (real vectors + 5% noise)")
    valid = EvalCases.from_npz(run / "validation.npz")
    histories = [list(map(int, h[-model.config.max_len :])) for h in valid.histories if len(h)]
    step = max(1, len(histories) // n_histories)
    chosen = histories[::step][:n_histories]
    long = [h[-20:] for h in histories if len(h) >= 8][:200] or chosen
    return Source(
        label=label,
        run=run,
        top=TopKScorer(model, K + 1, table).eval(),
        onnx_fp32=fp32,
        items=size or len(vocab),
        max_len=model.config.max_len,
        histories=chosen,
        latency_histories=long,
        notes=notes,
    )


# -- conversions ----------------------------------------------------------------------------------
def _cached(folder: Path) -> Converted | Failure | None:
    record = folder / "converted.json"
    if not record.is_file():
        return None
    data = json.loads(record.read_text())
    if "step" in data:
        data["notes"] = tuple(data["notes"])
        return Failure(**data)
    data.update(
        path=Path(data["path"]),
        files=tuple(Path(f) for f in data["files"]),
        notes=tuple(data["notes"]),
    )
    return Converted(**data)


def convert_all(
    source: Source, out: Path, runtimes: list[str], reuse: bool = False
) -> dict[str, Converted | Failure]:
    """Every row's model file, or why there is none (``reuse``: conversions kept in ``out``
    by an earlier run of the same catalog)."""
    out.mkdir(parents=True, exist_ok=True)
    made: dict[str, Converted | Failure] = {}
    onnx = peer_export.onnx_file(source.onnx_fp32, out)
    made["onnxruntime"] = onnx
    made["onnxruntime padded"] = Converted(
        **{**asdict(onnx), "dynamic_length": False, "notes": ("the same graph, fed [1, max_len]",)}
    )
    started = time.perf_counter()
    int8 = quantize_int8(source.onnx_fp32, scorer_only=True)
    assert scorer_is_int8(int8), "the int8 scorer must run MatMulInteger into TopK"
    made["onnxruntime int8 scorer"] = Converted(
        "onnxruntime",
        (out / "model_int8_scorer.onnx"),
        (out / "model_int8_scorer.onnx",),
        time.perf_counter() - started,
        dynamic_length=True,
        notes=("quantize_int8(scorer_only=True): MatMulInteger feeds TopK",),
        versions=peer_export.versions("onnxruntime"),
    )
    (out / "model_int8_scorer.onnx").write_bytes(int8)
    for runtime in runtimes:
        folder = out / runtime
        folder.mkdir(exist_ok=True)
        if reuse and (kept := _cached(folder)) is not None:
            made[runtime] = kept
            continue
        print(f"  converting {source.label} -> {runtime} ...", flush=True)
        if runtime == "executorch":
            made[runtime] = peer_export.to_executorch(source.top, source.max_len, folder)
        elif runtime == "litert":
            result, failed = peer_export.to_litert(source.top, source.max_len, folder)
            if isinstance(result, Converted) and failed:
                notes = tuple(f"first tried: {f.step}: {f.error}" for f in failed)
                result = Converted(**{**asdict(result), "notes": result.notes + notes})
            elif isinstance(result, Failure) and failed:
                notes = tuple(f"{f.step}: {f.error}" for f in failed)
                result = Failure(**{**asdict(result), "notes": notes})
            made[runtime] = result
        elif runtime == "openvino":
            made[runtime] = peer_export.to_openvino(onnx.path, source.max_len, folder)
        shown = made[runtime]
        (folder / "converted.json").write_text(json.dumps(asdict(shown), default=str))
        if isinstance(shown, Failure):
            print(f"    FAILED at {shown.step}: {shown.error[:200]}", flush=True)
        else:
            print(f"    {shown.size_bytes / 1e6:.1f} MB in {shown.seconds:.0f} s", flush=True)
    return made


def spec_of(converted: Converted, source: Source, threads: int) -> Spec:
    return Spec(
        converted.runtime,
        converted.path,
        threads,
        K + 1,
        source.items,
        source.max_len,
        converted.dynamic_length,
    )


# -- agreement with PyTorch -------------------------------------------------------------------------
def torch_reference(source: Source) -> list[tuple[np.ndarray, np.ndarray]]:
    """PyTorch's full scores and top-10 for each agreement history (filled columns only)."""
    out = []
    with torch.inference_mode():
        for history in source.histories:
            row = torch.tensor([history], dtype=torch.long)
            all_scores, _user = source.top.scorer(row)  # [1, N+1] and the user vector
            scores = all_scores[0].numpy()
            out.append((scores, np.argsort(-scores, kind="stable")[:K]))
    return out


def agreement(
    runner: peer_runners.Runner,
    spec: Spec,
    source: Source,
    reference: list[tuple[np.ndarray, np.ndarray]],
) -> dict[str, Any]:
    """Mean |runtime top-10 ∩ PyTorch top-10| / 10, and the largest score difference on the
    items the runtime returned (against PyTorch's score for the same item)."""
    overlap, worst = 0.0, 0.0
    for history, (scores, top) in zip(source.histories, reference, strict=True):
        got_scores, got_items = runner.run(peer_runners.feed(np.asarray([history]), spec))
        got = got_items[0][:K].astype(np.int64)
        overlap += len(set(got.tolist()) & set(top.tolist())) / K
        worst = max(worst, float(np.abs(scores[got] - got_scores[0][:K]).max()))
    return {
        "top10_agreement": round(overlap / len(reference), 4),
        "max_abs_score_diff": round(worst, 6),
        "histories": len(reference),
        "how": "vs PyTorch (export's ExportScorer, eager) on real validation histories at their "
        f"own lengths (<= {source.max_len}); input "
        + ("filled columns only" if spec.dynamic_length else f"left padded to {source.max_len}"),
    }


# -- latency, cold start, memory -------------------------------------------------------------------
def latency(
    runners: dict[str, tuple[peer_runners.Runner, Spec]], source: Source, rounds: int
) -> dict[str, dict[str, Any]]:
    """p50/p99 of one history per call, the runtimes interleaved call by call (in a shuffled
    order each round) so that load from other work on the machine falls on all of them alike."""
    feeds = {
        name: [peer_runners.feed(np.asarray([h]), spec) for h in source.latency_histories]
        for name, (_, spec) in runners.items()
    }
    for name, (runner, _) in runners.items():
        for i in range(5):
            runner.run(feeds[name][i % len(feeds[name])])
    samples: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    rng = np.random.default_rng(0)
    for i in range(rounds):
        rng.shuffle(order)
        for name in order:
            row = feeds[name][i % len(feeds[name])]
            runner = runners[name][0]
            start = time.perf_counter()
            runner.run(row)
            samples[name].append(time.perf_counter() - start)
    out = {}
    for name, values in samples.items():
        ms = np.asarray(values) * 1000
        out[name] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "n": rounds,
            "input": f"[1, {feeds[name][0].shape[1]}]"
            + ("" if runners[name][1].dynamic_length else " padded"),
        }
    return out


def cold_start(spec: Spec, history: list[int]) -> dict[str, float]:
    """One fresh process: import the runtime, load the model, first answer, RSS after 50 more."""
    done = subprocess.run(
        [
            sys.executable,
            str(Path(peer_runners.__file__)),
            spec.runtime,
            str(spec.path),
            str(spec.threads),
            str(spec.k),
            str(spec.items),
            str(spec.max_len),
            "1" if spec.dynamic_length else "0",
            json.dumps(history),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe failed: {done.stderr.strip().splitlines()[-1:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _failure(converted: Converted, step: str, exc: Exception) -> dict[str, Any]:
    message = f"{type(exc).__name__}: {' '.join(str(exc).split())[:600]}"
    return asdict(Failure(converted.runtime, step, message, converted.versions))


def bench_catalog(
    source: Source, workdir: Path, runtimes: list[str], rounds: int, probes: int, reuse: bool
) -> dict[str, Any]:
    made = convert_all(source, workdir / source.label, runtimes, reuse)
    reference = torch_reference(source)
    result: dict[str, Any] = {"items": source.items, "notes": source.notes, "rows": {}}
    rows: dict[str, Converted] = {}
    for row in [r for r in ROWS if r in made]:
        converted = made[row]
        if isinstance(converted, Failure):
            result["rows"][row] = {"failed": asdict(converted)}
            continue
        entry: dict[str, Any] = {
            "size_mb": round(converted.size_bytes / 1e6, 2),
            "convert_s": round(converted.seconds, 1),
            "dynamic_length": converted.dynamic_length,
            "notes": list(converted.notes),
            "versions": converted.versions,
            "latency": {},
        }
        result["rows"][row] = entry
        spec = spec_of(converted, source, 1)
        try:
            if converted.runtime == "executorch":
                peer_runners.ExecuTorchRunner.set_threads(1)
            entry["agreement"] = agreement(peer_runners.load(spec), spec, source, reference)
        except Exception as exc:  # a peer that converts but cannot run is a result too
            entry["failed"] = _failure(converted, "load and run", exc)
            continue
        rows[row] = converted
        gc.collect()
    for threads in (1, 2):
        print(f"  latency, {threads} thread(s): {', '.join(rows)}", flush=True)
        if "executorch" in rows:
            peer_runners.ExecuTorchRunner.set_threads(threads)
        runners = {}
        for row, converted in rows.items():
            spec = spec_of(converted, source, threads)
            runners[row] = (peer_runners.load(spec), spec)
        name = f"{threads} thread{'s' if threads > 1 else ''}"
        for row, measured in latency(runners, source, rounds).items():
            result["rows"][row]["latency"][name] = measured
        del runners
        gc.collect()
    print(f"  cold start and memory: {probes} fresh process(es) per runtime", flush=True)
    history = source.latency_histories[0]
    attempts: dict[str, list[dict[str, float]]] = {row: [] for row in rows}
    for _ in range(probes):  # interleaved, like the latency loop
        for row, converted in rows.items():
            attempts[row].append(cold_start(spec_of(converted, source, 1), history))
    for row, runs in attempts.items():
        result["rows"][row]["cold_start"] = {
            key: round(min(r[key] for r in runs), 2) for key in runs[0]
        }
    # Ratios to onnxruntime (fp32, the runtime's own input) measured in this same run.
    base = result["rows"].get("onnxruntime", {})
    for entry in result["rows"].values():
        if not entry.get("latency") or not base.get("latency"):
            continue
        ratios = {
            f"p50 {t}": round(entry["latency"][t]["p50_ms"] / base["latency"][t]["p50_ms"], 2)
            for t in entry["latency"]
            if t in base["latency"]
        }
        for key in ("cold_start_ms", "rss_added_mb"):
            if key in entry.get("cold_start", {}) and key in base.get("cold_start", {}):
                ratios[key] = round(
                    entry["cold_start"][key] / max(base["cold_start"][key], 1e-9), 2
                )
        ratios["size"] = round(entry["size_mb"] / base["size_mb"], 2)
        entry["vs_onnxruntime"] = ratios
    return result


# -- report -------------------------------------------------------------------------------------
def table(report: dict[str, Any]) -> str:
    """The markdown table the README carries."""
    lines = [
        "| catalog | runtime | p50 / p99 ms, 1 thread | p50 / p99 ms, 2 threads | x ort p50 (1 / 2 thr) "
        "| cold start ms | RSS added MB | file MB | top-10 agreement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, catalog in report["catalogs"].items():
        for row, entry in catalog["rows"].items():
            if "failed" in entry and "latency" not in entry:
                failed = entry["failed"]
                lines.append(
                    f"| {label} | {row} | failed: {failed['step']} | | | | | | "
                    f"{', '.join(f'{k} {v}' for k, v in failed['versions'].items())} |"
                )
                continue
            lat = entry["latency"]
            cells = [
                f"{lat[t]['p50_ms']:.3f} / {lat[t]['p99_ms']:.3f}" if t in lat else "-"
                for t in ("1 thread", "2 threads")
            ]
            ratio = entry.get("vs_onnxruntime", {})
            cold = entry.get("cold_start", {})
            agree = entry.get("agreement", {})
            lines.append(
                f"| {label} | {row} | {cells[0]} | {cells[1]} | "
                f"{ratio.get('p50 1 thread', float('nan')):.2f} / "
                f"{ratio.get('p50 2 threads', float('nan')):.2f} | "
                f"{cold.get('cold_start_ms', float('nan')):.0f} | "
                f"{cold.get('rss_added_mb', float('nan')):.0f} | {entry['size_mb']:.1f} | "
                f"{agree.get('top10_agreement', float('nan')):.4f} |"
            )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in ROWS:
        xs, ys = [], []
        for catalog in report["catalogs"].values():
            entry = catalog["rows"].get(row, {})
            if "1 thread" in entry.get("latency", {}):
                xs.append(catalog["items"])
                ys.append(entry["latency"]["1 thread"]["p50_ms"])
        if xs:
            style = "-" if row.startswith("onnxruntime") else "--"
            ax.plot(xs, ys, style, marker="o", label=row)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("catalog size (items)")
    ax.set_ylabel("p50 latency, one history, 1 thread (ms)")
    ax.set_title("recommend: one history, top-10 (same network, same run)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogs", default="167,12k,100k,1M")
    parser.add_argument("--runtimes", default=",".join(PEERS))
    parser.add_argument("--beauty-run", default=str(ROOT / "runs" / "beauty"))
    parser.add_argument("--groceries-run", default=str(ROOT / "runs" / "groceries"))
    parser.add_argument("--rounds", type=int, default=300, help="requests per latency case")
    parser.add_argument("--histories", type=int, default=300, help="for the agreement check")
    parser.add_argument("--probes", type=int, default=3, help="fresh processes per cold start")
    parser.add_argument("--workdir", help="keep the converted models here (default: temporary)")
    parser.add_argument("--reuse", action="store_true", help="reuse conversions in --workdir")
    parser.add_argument("--convert-only", action="store_true", help="convert into --workdir, stop")
    parser.add_argument("--out", default=str(RESULTS / "peers.json"))
    args = parser.parse_args(argv)

    runs = {"beauty": Path(args.beauty_run), "groceries": Path(args.groceries_run)}
    runtimes = [r for r in args.runtimes.split(",") if r]
    report: dict[str, Any] = {
        "command": "python benchmarks/bench_peers.py " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "load_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
            "note": "2 shared cores: absolute numbers are noisy, ratios within one run count",
        },
        "versions": {r: peer_export.versions(r) for r in ["onnxruntime", *PEERS]},
        "k": K,
        "catalogs": {},
        "skipped": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        for label in [c for c in args.catalogs.split(",") if c]:
            data, size = CATALOGS[label]
            run = runs[data]
            if not (run / "model.pt").is_file():
                report["skipped"][label] = f"no trained run at {run}"
                print(f"{label}: skipped, no trained run at {run}")
                continue
            print(f"{label}: {data} run {run}", flush=True)
            source = load_source(label, run, size, args.histories)
            if args.convert_only:
                convert_all(source, workdir / label, runtimes, args.reuse)
                continue
            if label == "167":
                source.notes.append(demo_bundle_check(source))
            report["catalogs"][label] = bench_catalog(
                source, workdir, runtimes, args.rounds, args.probes, args.reuse
            )
            del source
            gc.collect()
    report["machine"]["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    markdown = table(report)
    print("\n" + markdown)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, sort_keys=True, default=str) + "\n")
    plot(report, out.with_name("peers_latency.png"))
    print(f"\nwrote {out} and {out.with_name('peers_latency.png')}")
    return 0


def demo_bundle_check(source: Source) -> str:
    """Is the groceries run the network behind the committed demo bundle? Top-10 agreement
    of the bundle's graph (as shipped) with this run's PyTorch network."""
    if not (DEMO_BUNDLE / "manifest.json").is_file():
        return "no committed demo bundle to compare with"
    files = read_bundle(DEMO_BUNDLE)
    spec = Spec(
        "onnxruntime", DEMO_BUNDLE / "model.onnx", 1, K + 1, source.items, source.max_len, True
    )
    runner = peer_runners.load(spec)
    result = agreement(runner, spec, source, torch_reference(source))
    return (
        f"committed demo bundle ({files.manifest.model_name}@{files.manifest.model_version}, "
        f"{files.manifest.quantization}) vs this run's PyTorch network: top-10 agreement "
        f"{result['top10_agreement']:.4f} over {result['histories']} histories"
    )


if __name__ == "__main__":
    sys.exit(main())
