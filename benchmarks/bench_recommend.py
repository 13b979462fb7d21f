"""``recommend`` latency end to end with the REAL model, against PyTorch eager, numpy and the floor.

Catalogs:

- ``12k``: the trained Amazon Beauty bundle as ``shelfwise export`` wrote it (SASRec-style
  encoder + scoring head, 12,101 items), int8 and fp32;
- ``100k`` and ``1M``: the same exported graph with its scorer item table tiled to N items
  (the real vectors repeated with a little noise; ``scorer_graph.tiled_model``), fp32 and int8
  (``quantize_int8`` as ``--quantize int8`` runs it; ``MatMulInteger`` feeding ``TopK`` is
  checked). Same encoder, same head: only the number of items changes.

Cases, each as a tight loop, as spaced requests (a kiosk sees cold caches) and with two
callers at once sharing the one session:

- ``e2e shopper``: ``Shopper.recommend("for-you", limit=10)`` -- store reads, inference, filters,
  catalog reads, reasons; ``e2e stateless``: ``Shelfwise.recommend(history=...)``;
- ``onnxruntime``: the runtime's session alone, on the input the runtime feeds it;
- ``onnxruntime head``: the scoring head alone (real user vector -> MatMul -> TopK);
- ``torch eager``: the trained network (export's ``ExportScorer``) with the same table;
  ``torch eager head``: user @ W + bias, topk;
- ``numpy head``: user @ W + bias, argpartition, sort of the top k;
- floor: numpy streaming the item matrix once -- fp32 [d, N] and int8 [d, N], hot (read
  again and again: as resident in cache as it gets) and cold (a 96 MB buffer read before
  each pass, 3x the last-level cache), one thread.

Also the cold start and resident memory (fresh process). Needs the ``train`` extra and
``runs/bundle_beauty_int8`` (+ ``runs/bundle_beauty_fp32``, ``runs/beauty`` for torch):

    shelfwise train --data ../shared/data/amazon-beauty/Beauty.txt --out runs/beauty
    shelfwise export runs/beauty --out runs/bundle_beauty_int8 --quantize int8
    shelfwise export runs/beauty --out runs/bundle_beauty_fp32
    python benchmarks/bench_recommend.py                      # 12k, 100k, 1M; ~10 minutes
    python benchmarks/bench_recommend.py --sizes 12k,100k     # quicker

Parts (``--parts``, all by default): ``latency`` (everything above), ``feature`` and ``e2e``
(issue #13, ``new_item_parts.py``): a new item's vector from its features against a trained
item's lookup, and ``Shopper.recommend("for-you")`` against ``session.run`` alone at 12k items,
on a bundle with a feature table (the Beauty shape, untrained, when no trained one is here):

    python benchmarks/bench_recommend.py --parts feature,e2e   # ~30 s

Without those folders it falls back (and says so in the table and the JSON): no fp32 bundle
-> the fp32 graph is exported from ``runs/beauty`` in-process; no run either -> the tiled
sizes use a mean-pool reference scorer over the bundle's item vectors; no bundle at all ->
item vectors from a truncated SVD of the real Beauty sequences.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# No busy-waiting worker threads (torch's OpenMP, OpenBLAS): on 2 shared cores a spinning
# idle pool steals the core the next case needs. The runtime's onnxruntime session is
# configured the same way (allow_spinning=0).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))

import new_item_parts
import scorer_graph

import shelfwise
from shelfwise.export.reference_scorer import mean_pool_scorer
from shelfwise.model.bundle import BundleFiles, Manifest, read_bundle, write_bundle
from shelfwise.model.encoding import encode_histories
from shelfwise.model.runtime import session_options

# getattr: the benchmark also runs against an older runtime (PYTHONPATH) for before/after.
DISABLED_OPTIMIZERS: list[str] = getattr(shelfwise.model.runtime, "DISABLED_OPTIMIZERS", [])

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
OTHER_MEMBERS = 5_000  # other members whose past purchases the e2e store holds
BEAUTY = ROOT.parent / "shared" / "data" / "amazon-beauty" / "Beauty.txt"
SIZES = {"12k": 0, "100k": 100_000, "1M": 1_000_000}  # 0: the trained catalog as it is
DIM = 64
K = 10
CASES = [
    "e2e shopper",
    "e2e stateless",
    "onnxruntime",
    "onnxruntime head",
    "torch eager",
    "torch eager head",
    "numpy head",
]


# -- the real model and its vectors -----------------------------------------------------------
def beauty_sequences() -> list[list[int]]:
    """The real Beauty sequences as 0-based item indices."""
    sequences = []
    for line in BEAUTY.read_text().splitlines():
        parts = line.split()
        sequences.append([int(p) - 1 for p in parts[1:]])
    return sequences


def svd_item_vectors(sequences: list[list[int]], dim: int, seed: int = 0) -> np.ndarray:
    """Item vectors from a randomized truncated SVD of the user x item matrix (numpy only).

    The last fallback, when no trained bundle exists: items bought by the same people get
    similar vectors. Rows are items; there is no padding row here.
    """
    users = np.concatenate([np.full(len(s), u) for u, s in enumerate(sequences)])
    items = np.concatenate([np.asarray(s) for s in sequences])
    n_users, n_items = len(sequences), int(items.max()) + 1
    weights = 1.0 / np.sqrt(np.bincount(users)[users])  # long histories do not dominate
    by_item = np.argsort(items, kind="stable")
    user_starts = np.searchsorted(users, np.arange(n_users))  # entries are grouped by user
    item_starts = np.searchsorted(items[by_item], np.arange(n_items))

    def times(right: np.ndarray) -> np.ndarray:  # A @ right, A users x items (sparse)
        return np.add.reduceat(right[items] * weights[:, None], user_starts, axis=0)

    def t_times(left: np.ndarray) -> np.ndarray:  # A.T @ left
        products = left[users[by_item]] * weights[by_item, None]
        out = np.add.reduceat(products, item_starts, axis=0)
        out[np.diff(np.append(item_starts, len(items))) == 0] = 0.0  # items nobody has
        return out

    rng = np.random.default_rng(seed)
    basis = times(rng.standard_normal((n_items, dim + 16)))
    for _ in range(3):  # power iterations sharpen the spectrum
        basis, _ = np.linalg.qr(basis)
        basis, _ = np.linalg.qr(times(t_times(basis)))
    small = t_times(basis).T  # (dim+16) x items
    _, s, vt = np.linalg.svd(small, full_matrices=False)
    return (vt[:dim].T * np.sqrt(s[:dim])).astype(np.float32)


@dataclass
class Source:
    """What the benchmark measures: the real bundles, the fp32 graph, the torch network."""

    describe: str
    items: list[str]
    table: np.ndarray  # [N+1, d] as the scorer holds it, row 0 padding
    bundles: dict[str, Path] = field(default_factory=dict)  # "int8"/"fp32" -> real bundle
    fp32_graph: bytes | None = None  # the exported graph, encoder + head, fp32
    torch_run: Path | None = None  # runs/beauty (model.pt), for the torch eager cases
    manifest: Manifest | None = None
    fallbacks: list[str] = field(default_factory=list)


def _run_of(manifest: Manifest) -> Path | None:
    """The run folder under runs/ that trained this bundle: same data fingerprint and model
    config (a manifest names no path of the trainer's machine, so it is found, not read)."""
    fingerprint = manifest.training.get("data", {}).get("fingerprint")
    model = manifest.training.get("config", {}).get("model")
    for run in sorted((ROOT / "runs").glob("*")):
        if not (run / "model.pt").is_file() or not (run / "run.json").is_file():
            continue
        data = json.loads((run / "run.json").read_text())["data"]
        config = json.loads((run / "config.json").read_text())
        if data["fingerprint"] == fingerprint and config["model"] == model:
            return run
    return None


def find_source(int8_bundle: Path, fp32_bundle: Path) -> Source:
    """The real model, with a clearly recorded fallback for each missing piece."""
    bundles: dict[str, Path] = {}
    files: dict[str, BundleFiles] = {}
    for mode, path in (("int8", int8_bundle), ("fp32", fp32_bundle)):
        if (path / "manifest.json").is_file():
            bundles[mode] = path
            files[mode] = read_bundle(path)
    fallbacks = []
    if not files:
        if not BEAUTY.is_file():
            sys.exit(f"no bundle at {int8_bundle} / {fp32_bundle} and no {BEAUTY}: nothing real")
        vectors = svd_item_vectors(beauty_sequences(), DIM)
        table = np.vstack([np.zeros((1, DIM), np.float32), vectors])
        return Source(
            describe=f"FALLBACK: no trained bundle; truncated SVD (d={DIM}) of {BEAUTY.name}",
            items=[str(n + 1) for n in range(len(vectors))],
            table=table,
            fallbacks=["no bundle: SVD vectors + mean-pool scorer at every size"],
        )
    first = files.get("fp32") or files["int8"]
    manifest = first.manifest
    run = _run_of(manifest)
    graph = files["fp32"].model_bytes if "fp32" in files else None
    if graph is None and run is not None:
        from shelfwise.export.onnx_export import export_onnx
        from shelfwise.training.train import load_run

        graph = export_onnx(load_run(run)[0])
        fallbacks.append(f"no {fp32_bundle}: fp32 graph exported in-process from {run}")
    if graph is None:
        fallbacks.append(
            f"no {fp32_bundle} and no {run}: tiled sizes use a mean-pool scorer over the "
            "bundle's item vectors (not the trained encoder)"
        )
        assert first.item_vectors is not None
        table = np.asarray(first.item_vectors, np.float32)
    else:
        table = scorer_graph.scorer_table(graph)
    if run is None:
        fallbacks.append("no training run folder: torch eager runs the head only")
    return Source(
        describe=f"trained bundles {', '.join(str(p) for p in bundles.values())}",
        items=list(first.items),
        table=table,
        bundles=bundles,
        fp32_graph=graph,
        torch_run=run,
        manifest=manifest,
        fallbacks=fallbacks,
    )


# -- building a store and a bundle of a given size ------------------------------------------
def write_tiled_bundle(
    folder: Path, label: str, items: list[str], table: np.ndarray, model: bytes, mode: str
) -> Path:
    write_bundle(
        folder,
        Manifest(
            model_name=f"bench-{label}",
            model_version="1",
            max_history=50,
            embedding_dim=int(table.shape[1]),
            opset=18,
            quantization="int8" if mode == "int8" else "none",
        ),
        model_onnx=model,
        items=items,
        item_vectors=table,
    )
    return folder


def build_store(db: Path, label: str, item_ids: list[str]) -> Path:
    """A store holding the whole catalog (one per size, shared by the fp32 and int8 rows)."""
    if db.exists():
        return db
    with shelfwise.open(db, store_id="bench", synchronous="NORMAL") as sw:
        chunk = 50_000
        for start in tqdm(range(0, len(item_ids), chunk), desc=f"catalog {label}", leave=False):
            sw.catalog.import_rows(
                {
                    "item_id": item_id,
                    "name": f"Beauty product {item_id}",
                    "category": f"category-{n % 40}",
                    "price": round(1 + (n % 97) * 0.5, 2),
                    # a few items exercise the filters on every request
                    "in_stock": n % 101 != 0,
                    "tags": "sensitive" if n % 211 == 0 else "",
                }
                for n, item_id in enumerate(item_ids[start : start + chunk], start)
            )
    return db


def torch_scorer(run: Path, table: np.ndarray) -> Any:
    """The trained network in PyTorch (export's ExportScorer) scoring against ``table``."""
    import torch

    from shelfwise.export.onnx_export import ExportScorer
    from shelfwise.training.train import load_run

    module = ExportScorer(load_run(run)[0]).eval()
    if module.scorer.shape[1] != len(table):  # the tiled catalog: same network, N items
        module.scorer = torch.nn.Parameter(
            torch.from_numpy(np.ascontiguousarray(table.T)), requires_grad=False
        )
        module.pad_bias = torch.from_numpy(scorer_graph._pad_bias(len(table)))
    return module


def user_vectors(source: Source, batches: list[np.ndarray]) -> np.ndarray:
    """Real user vectors: the trained encoder's output for real histories (or, with the
    mean-pool fallback, the mean of the history's vectors)."""
    if source.fp32_graph is None:
        out = []
        for batch in batches:
            known = batch[0][batch[0] > 0]
            out.append(source.table[known].mean(axis=0))
        return np.asarray(out, np.float32)
    graph = scorer_graph.user_model(source.fp32_graph)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    k = np.array([1], np.int64)
    return np.vstack([session.run(None, {"history": b, "k": k})[2] for b in batches])


# -- timing helpers ---------------------------------------------------------------------------
_EVICT = np.ones(96 * 1024 * 1024 // 8)  # 3x the 32 MB last-level cache


def measure(fn: Callable[[int], object], n: int, *, spaced: bool = False) -> list[float]:
    for i in range(3):
        fn(i)
    out = []
    for i in range(n):
        if spaced:  # an idle kiosk: other work has pushed the model out of the caches
            time.sleep(0.01)
            _EVICT.sum()
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def measure_threads(fn: Callable[[int], object], n: int, threads: int = 2) -> list[float]:
    """Per-call latency with ``threads`` callers at once (sharing the one session)."""
    per_thread: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def run(slot: int) -> None:
        barrier.wait()
        for i in range(n // threads):
            start = time.perf_counter()
            fn(i * threads + slot)
            per_thread[slot].append(time.perf_counter() - start)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [x for values in per_thread for x in values]


def stats(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "n": len(samples),
    }


def floor_ms(matrix: np.ndarray, *, cold: bool, threads: int = 1) -> float:
    """Fastest single pass over every byte of ``matrix`` (best of several ways to read it).

    ``cold``: the caches are flushed by a 96 MB read before every pass (DRAM bandwidth);
    otherwise the same matrix is read again and again (as cache-resident as it gets: 100k x
    64 fp32 is 25.6 MB, under this machine's 32 MB L3). ``threads`` > 1 splits the pass.
    """
    flat = matrix.reshape(-1)
    parts = np.array_split(flat, threads)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    best = float("inf")
    for reduce in (np.max, np.sum):
        for _ in range(12 if cold else 20):
            if cold:
                _EVICT.sum()
            start = time.perf_counter()
            if pool is None:
                reduce(flat)
            else:
                list(pool.map(reduce, parts))  # numpy releases the GIL in reductions
            best = min(best, time.perf_counter() - start)
    if pool is not None:
        pool.shutdown()
    return round(best * 1000, 4)


def runtime_session(model: bytes, items: int, threads: int) -> ort.InferenceSession:
    """A session configured exactly as the runtime configures its own."""
    return ort.InferenceSession(
        model,
        sess_options=session_options(items, threads),
        providers=["CPUExecutionProvider"],
        disabled_optimizers=DISABLED_OPTIMIZERS,
    )


# -- one catalog size, one model --------------------------------------------------------------
def bench_case(
    label: str,
    mode: str,
    bundle: Path,
    db: Path,
    source: Source,
    table: np.ndarray,
    head_model: bytes,
    histories: list[list[str]],
    users: np.ndarray,
    rounds: int,
    torch_module: Any,
) -> dict[str, Any]:
    import torch

    sw = shelfwise.open(db, bundle=bundle, store_id="bench")
    loaded = sw.model.current
    assert loaded is not None
    threads = loaded.session.get_session_options().intra_op_num_threads
    shoppers = []
    for n, history in enumerate(histories[:20]):
        shopper_id = f"bench-{mode}-{n}"
        existing = sw.store.rows("SELECT 1 FROM shoppers WHERE shopper_id = ?", [shopper_id])
        shopper = sw.member(shopper_id, consents={"personalization": True})
        if not existing:
            for item in history[-20:]:
                shopper.track("view", item)
            shopper.add_to_cart(history[0])
        shoppers.append(shopper)

    # The session's input exactly as LoadedModel.score builds it (left padding trimmed).
    def runtime_batch(history: list[str]) -> np.ndarray:
        batch = encode_histories(loaded.vocab, [history], loaded.manifest.max_history)
        filled = np.flatnonzero(batch.any(axis=0))
        return np.ascontiguousarray(batch[:, filled[0] if len(filled) else -1 :])

    batches = [runtime_batch(h[-20:]) for h in histories]
    k_in = np.array([K + 1], dtype=np.int64)
    names = [loaded.manifest.output_scores, loaded.manifest.output_items]
    head = runtime_session(head_model, len(table) - 1, threads)
    matrix_t = np.ascontiguousarray(table.T)  # [d, N+1], as the graphs hold it
    bias = scorer_graph._pad_bias(len(table))
    torch.set_num_threads(threads)
    t_matrix, t_bias = torch.from_numpy(matrix_t), torch.from_numpy(bias)

    def e2e_shopper(i: int) -> object:
        return shoppers[i % len(shoppers)].recommend("for-you", limit=K)

    def e2e_stateless(i: int) -> object:
        return sw.recommend(history=histories[i % len(histories)][-20:], limit=K)

    def ort_full(i: int) -> object:
        return loaded.session.run(names, {"history": batches[i % len(batches)], "k": k_in})

    def ort_head(i: int) -> object:
        return head.run(None, {"user": users[i % len(users)][None], "k": k_in})

    def torch_full(i: int) -> object:
        with torch.inference_mode():
            history = torch.from_numpy(batches[i % len(batches)])
            all_scores, _user = torch_module(history)  # ExportScorer: (scores, user vector)
            return torch.topk(all_scores, K + 1, dim=1)

    def torch_head(i: int) -> object:
        with torch.inference_mode():
            user = torch.from_numpy(users[i % len(users)][None])
            return torch.topk(user @ t_matrix + t_bias, K + 1, dim=1)

    def numpy_head(i: int) -> object:
        scores = users[i % len(users)] @ matrix_t + bias
        top = np.argpartition(-scores, K + 1)[: K + 1]
        return top[np.argsort(-scores[top])]

    int8_matrix = np.clip(np.round(matrix_t * (127 / np.abs(matrix_t).max())), -127, 127)
    int8_matrix = int8_matrix.astype(np.int8)
    results: dict[str, Any] = {
        "quantization": loaded.manifest.quantization,
        "scorer_path": scorer_graph.op_types(Path(bundle, "model.onnx").read_bytes()),
        "items": len(table) - 1,
        "fp32_matrix_mb": round(matrix_t.nbytes / 1e6, 1),
        "int8_matrix_mb": round(int8_matrix.nbytes / 1e6, 1),
        "onnx_intra_op_threads": threads,
        "floor_ms": {
            "fp32_hot": floor_ms(matrix_t, cold=False),
            "fp32_cold": floor_ms(matrix_t, cold=True),
            "fp32_hot_2_threads": floor_ms(matrix_t, cold=False, threads=2),
            "int8_hot": floor_ms(int8_matrix, cold=False),
            "int8_cold": floor_ms(int8_matrix, cold=True),
        },
    }
    del int8_matrix
    cases: dict[str, Callable[[int], object]] = {
        "e2e shopper": e2e_shopper,
        "e2e stateless": e2e_stateless,
        "onnxruntime": ort_full,
        "onnxruntime head": ort_head,
        "torch eager head": torch_head,
        "numpy head": numpy_head,
    }
    if torch_module is not None:
        cases["torch eager"] = torch_full
    n_spaced = max(20, rounds // 3)
    for name, fn in tqdm(cases.items(), desc=f"latency {label}", leave=False):
        results[name] = {
            "tight": stats(measure(fn, rounds)),
            "spaced": stats(measure(fn, n_spaced, spaced=True)),
            "two_callers": stats(measure_threads(fn, rounds)),
        }
    # The other intra-op thread count, for the full graph (the runtime picks one by size).
    other = 1 if threads == 2 else 2
    alt = runtime_session(Path(bundle, "model.onnx").read_bytes(), len(table) - 1, other)
    results[f"onnxruntime, {other} intra-op thread(s)"] = {
        "tight": stats(
            measure(
                lambda i: alt.run(names, {"history": batches[i % len(batches)], "k": k_in}),
                rounds,
            )
        )
    }
    sw.close()
    return results


# -- cold start and memory in a fresh process -------------------------------------------------
_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import shelfwise
t1 = time.perf_counter()
sw = shelfwise.open(sys.argv[1], bundle=sys.argv[2], store_id="bench")
t2 = time.perf_counter()
shopper = sw.shopper(sys.argv[3])
shopper.recommend("for-you", limit=10)
t3 = time.perf_counter()
for _ in range(50):
    shopper.recommend("for-you", limit=10)
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
kb = lambda key: int(status[key].split()[0])
print(json.dumps({"import_s": t1 - t0, "open_and_load_s": t2 - t1, "first_request_s": t3 - t2,
                  "rss_mb": kb("VmRSS") / 1024, "peak_rss_mb": kb("VmHWM") / 1024}))
"""


def probe(db: Path, bundle: Path, shopper: str) -> dict[str, float]:
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _PROBE, str(db), str(bundle), shopper],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(3)
    ]
    return {key: round(min(r[key] for r in runs), 4) for key in runs[0]}


# -- report ---------------------------------------------------------------------------------------
def print_table(report: dict[str, Any]) -> None:
    print(f"\n{report['vectors']}")
    for note in report["fallbacks"]:
        print(f"  FALLBACK: {note}")
    print(
        f"load during the run: {report['machine']['load_before']} -> {report['machine']['load_after']}"
    )
    print(
        f"\nrecommend latency, k={K}, ms (p50 / p99). x floor: tight p50 / the hot floor of the "
        "matrix this scorer reads (int8 rows: the int8 matrix), and / the fp32 hot floor"
    )
    header = (
        f"{'catalog':>10} {'case':<34} {'tight':>17} {'spaced':>17} {'2 callers':>17} "
        f"{'x floor':>8} {'x fp32':>7}"
    )
    print(header)
    print("-" * len(header))
    for label, size in report["sizes"].items():
        floors = size["floor_ms"]
        own = floors["int8_hot"] if size["quantization"] == "int8" else floors["fp32_hot"]
        print(
            f"{label:>10} floor fp32 {size['fp32_matrix_mb']} MB: hot {floors['fp32_hot']:.3f} "
            f"(2 threads {floors['fp32_hot_2_threads']:.3f}), cold {floors['fp32_cold']:.3f}; "
            f"int8 {size['int8_matrix_mb']} MB: hot {floors['int8_hot']:.3f}, "
            f"cold {floors['int8_cold']:.3f}"
        )
        names = [c for c in CASES if c in size] + [c for c in size if c.startswith("onnxruntime,")]
        for case in names:
            row = size[case]
            cells = [
                f"{row[m]['p50_ms']:7.3f} / {row[m]['p99_ms']:7.3f}" if m in row else ""
                for m in ("tight", "spaced", "two_callers")
            ]
            p50 = row["tight"]["p50_ms"]
            print(
                f"{label:>10} {case:<34} {cells[0]:>17} {cells[1]:>17} {cells[2]:>17} "
                f"{p50 / own:>8.2f} {p50 / floors['fp32_hot']:>7.2f}"
            )
    print("\ncold start and memory (fresh process, best of 3)")
    for label, size in report["sizes"].items():
        cold = size["cold_start"]
        print(
            f"{label:>10} import {cold['import_s'] * 1000:5.0f} ms, open+load "
            f"{cold['open_and_load_s'] * 1000:6.0f} ms, first request "
            f"{cold['first_request_s'] * 1000:6.1f} ms, RSS {cold['rss_mb']:6.0f} MB "
            f"(peak {cold['peak_rss_mb']:.0f} MB)"
        )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def latency_part(args: argparse.Namespace) -> dict[str, Any]:
    """The latency table: every case at every size (the ``latency`` part)."""
    load_before = load_average()
    source = find_source(Path(args.bundle), Path(args.fp32_bundle))
    index = {item: n + 1 for n, item in enumerate(source.items)}  # model index, 1-based
    sequences = beauty_sequences() if BEAUTY.is_file() else []
    chosen = [[index[str(i + 1)] for i in s if str(i + 1) in index] for s in sequences]
    chosen = [h for h in chosen if len(h) >= 8][:200]
    if not chosen:  # a bundle unrelated to Beauty
        rng = np.random.default_rng(0)
        chosen = [list(rng.integers(1, len(source.items) + 1, 20)) for _ in range(200)]
    base_batches = [
        encode_histories_idx(h[-20:], int(source.manifest.max_history) if source.manifest else 50)
        for h in chosen
    ]
    users = user_vectors(source, base_batches)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    report: dict[str, Any] = {
        "vectors": source.describe,
        "fallbacks": source.fallbacks,
        "machine": {
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "note": "2 shared cores: absolute numbers are noisy, ratios within one run count",
            "load_before": load_before,
        },
        "k": K,
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-recommend-") as tmp:
        workdir = Path(tmp)
        for label in [s.strip() for s in args.sizes.split(",") if s.strip()]:
            size = SIZES[label] or len(source.items)
            if size == len(source.items):
                ids, table = list(source.items), source.table
            else:  # tiled copies: "17~3" is the 4th copy of item 17
                ids = [
                    f"{source.items[n % len(source.items)]}~{n // len(source.items)}"
                    for n in range(size)
                ]
                table = scorer_graph.tile_table(source.table, size)
            histories = [[ids[i - 1] for i in h] for h in chosen]
            db = build_store(workdir / f"store-{label}.db", label, ids)
            rounds = args.rounds if size <= 200_000 else max(50, args.rounds // 6)
            torch_module = torch_scorer(source.torch_run, table) if source.torch_run else None
            head_fp32 = scorer_graph.head_model(table)
            for mode in modes:
                name = f"{label} {'int8' if mode == 'int8' else 'fp32'}"
                key = "int8" if mode == "int8" else "fp32"
                if size == len(source.items) and key in source.bundles:
                    bundle = source.bundles[key]  # the real bundle, as exported
                else:
                    if size == len(source.items) and source.fp32_graph is not None:
                        model = source.fp32_graph
                    elif source.fp32_graph is not None:
                        model = scorer_graph.tiled_model(source.fp32_graph, table)
                    else:
                        model = mean_pool_scorer(table)
                    if mode == "int8":
                        model = scorer_graph.int8(model)
                    bundle = write_tiled_bundle(
                        workdir / f"bundle-{label}-{key}", name, ids, table, model, mode
                    )
                    del model
                head = scorer_graph.int8(head_fp32) if mode == "int8" else head_fp32
                result = bench_case(
                    name,
                    key,
                    bundle,
                    db,
                    source,
                    table,
                    head,
                    histories,
                    users,
                    rounds,
                    torch_module,
                )
                result["bundle"] = str(bundle) if bundle.is_relative_to(ROOT) else "temporary"
                result["cold_start"] = probe(db, bundle, f"bench-{key}-0")
                report["sizes"][name] = result
            del torch_module
    report["machine"]["load_after"] = load_average()
    print_table(report)
    return report


def run_new_item_parts(args: argparse.Namespace, parts: set[str]) -> dict[str, Any]:
    """The ``feature`` and ``e2e`` parts (issue #13), on a bundle with a feature table."""
    report: dict[str, Any] = {"load_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="bench-new-items-") as tmp:
        source = new_item_parts.feature_bundle(Path(args.bundle), Path(tmp))
        sw = new_item_parts.open_store(Path(tmp) / "store.db", source)
        try:
            if "feature" in parts:
                report["feature"] = new_item_parts.feature_part(sw, source, args.rounds)
            if "e2e" in parts:
                trained = set(source.trained_items)
                sequences = (BEAUTY.read_text().splitlines()) if BEAUTY.is_file() else []
                histories = [
                    [i for i in line.split()[1:] if i in trained][-20:] for line in sequences
                ]
                histories = [h for h in histories if len(h) >= 8][:20]
                # The store's past: members from the other end of the file than the measured.
                known = trained | set(source.new_items)
                past = new_item_parts.other_members_history(
                    sw, sequences[::-1], known, OTHER_MEMBERS
                )
                report["e2e"] = new_item_parts.e2e_part(sw, source, histories, args.rounds)
                report["e2e"]["store_history"] = {"members": OTHER_MEMBERS, "purchases": past}
        finally:
            sw.close()
    report["load_after"] = load_average()
    new_item_parts.print_parts(report)
    return report


PARTS = ("latency", "feature", "e2e")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="12k,100k,1M", help="comma-separated: 12k,100k,1M")
    parser.add_argument("--modes", default="int8,none", help="int8 and/or none (fp32)")
    parser.add_argument("--bundle", default=str(ROOT / "runs" / "bundle_beauty_int8"))
    parser.add_argument("--fp32-bundle", default=str(ROOT / "runs" / "bundle_beauty_fp32"))
    parser.add_argument("--rounds", type=int, default=300, help="requests per tight-loop case")
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help="comma-separated: latency (the table at every size), feature (a new item's "
        "vector vs a trained item's), e2e (shopper.recommend vs session.run at 12k)",
    )
    parser.add_argument("--out", default=str(RESULTS / "runtime.json"))
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - set(PARTS):
        parser.error(f"--parts takes a comma-separated subset of {', '.join(PARTS)}")

    out = Path(args.out)
    merged = json.loads(out.read_text()) if out.is_file() else {}
    if "latency" in parts:
        merged["recommend"] = latency_part(args)
    if parts & {"feature", "e2e"}:
        found = run_new_item_parts(args, parts)
        merged["new_items"] = {**merged.get("new_items", {}), **found}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {out}")


def encode_histories_idx(history: list[int], max_history: int) -> np.ndarray:
    """A model-index history as the runtime feeds it: [1, len] (no padding), int64."""
    tail = history[-max_history:]
    return np.asarray([tail], dtype=np.int64)


if __name__ == "__main__":
    main()
