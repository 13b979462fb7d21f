"""``recommend`` latency end to end, against PyTorch eager, numpy and the memory-bandwidth floor.

For catalogs of ~12k items (real item vectors), 100k and 1M (the real vectors tiled with a
little noise), one and two threads, tight loop and spaced requests (a kiosk sees cold caches):

- ``e2e shopper``: ``Shopper.recommend("for-you", k=10)`` -- store reads (shopper, consents,
  history, cart, segment), ONNX inference, business filters, catalog reads, reasons;
- ``e2e stateless``: ``Shelfwise.recommend(history=..., k=10)`` (what the CLI runs);
- ``onnxruntime``: the bundle's session alone;
- ``torch eager``: the same computation in PyTorch (gather, mean, matmul, topk);
- ``numpy``: dot product + argpartition + sort of the top k;
- ``floor``: numpy streaming the item matrix once (a sum over it), best of 20.

Also the cold start (store open + bundle load, first request) and resident memory, each in a
fresh process. Item vectors come from a trained bundle when one exists (``--bundle``,
``runs/**/bundle``, ``kiosk_demo/store/bundle``); otherwise from a truncated SVD of the real
Amazon Beauty sequences (``../shared/data/amazon-beauty/Beauty.txt``), 12,101 items x 64.

    python benchmarks/bench_recommend.py                      # 12k, 100k, 1M; ~5 minutes
    python benchmarks/bench_recommend.py --sizes 12k,100k     # quicker
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
from pathlib import Path
from typing import Any

# No busy-waiting worker threads (torch's OpenMP, OpenBLAS): on 2 shared cores a spinning
# idle pool steals the core the next case needs. The runtime's onnxruntime session is
# configured the same way (allow_spinning=0).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))


import shelfwise
from shelfwise._bundle import Manifest, read_bundle, write_bundle
from shelfwise._encoding import encode_histories
from shelfwise.export.reference_scorer import mean_pool_scorer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
BEAUTY = ROOT.parent / "shared" / "data" / "amazon-beauty" / "Beauty.txt"
SIZES = {"12k": 0, "100k": 100_000, "1M": 1_000_000}  # 0: the real catalog as it is
DIM = 64
MAX_HISTORY = 50
K = 10
MIN_TRAINED_ITEMS = 5_000


# -- item vectors -------------------------------------------------------------------------
def find_trained_bundle(explicit: str | None) -> Path | None:
    """A bundle with item vectors written by shelfwise.export, if one exists."""
    candidates = [Path(explicit)] if explicit else []
    candidates += sorted((ROOT / "runs").glob("**/manifest.json"), key=os.path.getmtime)[::-1]
    candidates += [ROOT / "kiosk_demo" / "store" / "bundle" / "manifest.json"]
    candidates += sorted(ROOT.glob("runs/**/bundle*/manifest.json"))
    for candidate in candidates:
        folder = candidate.parent if candidate.name == "manifest.json" else candidate
        if not (folder / "item_vectors.npy").is_file():
            continue
        manifest = json.loads((folder / "manifest.json").read_text())
        # The demo's grocery bundle (167 items) is no stand-in for a ~12k catalog.
        if explicit or manifest.get("num_items", 0) >= MIN_TRAINED_ITEMS:
            return folder
    return None


def beauty_sequences() -> list[list[int]]:
    """The real Beauty sequences as 0-based item indices."""
    sequences = []
    for line in BEAUTY.read_text().splitlines():
        parts = line.split()
        sequences.append([int(p) - 1 for p in parts[1:]])
    return sequences


def svd_item_vectors(sequences: list[list[int]], dim: int, seed: int = 0) -> np.ndarray:
    """Item vectors from a randomized truncated SVD of the user x item matrix (numpy only).

    Implicit-feedback matrix factorisation in its simplest form: items bought by the same
    people get similar vectors. Rows are items; there is no padding row here.
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


def tile(vectors: np.ndarray, size: int, seed: int = 1) -> np.ndarray:
    """``size`` item vectors: the real ones repeated, each copy with small noise."""
    reps = -(-size // len(vectors))
    tiled = np.tile(vectors, (reps, 1))[:size]
    noise = np.random.default_rng(seed).standard_normal(tiled.shape).astype(np.float32)
    return tiled + noise * (0.05 * float(vectors.std()))


# -- building a store and a bundle of a given size ------------------------------------------
def int8_scorer(model: bytes) -> bytes:
    """The scorer with dynamic int8 weights: its own [d, N] weight becomes MatMulInteger."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(model)
        quantize_dynamic(
            source, target, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"]
        )
        quantized = target.read_bytes()
    ops = {node.op_type for node in onnx.load_from_string(quantized).graph.node}
    assert "MatMulInteger" in ops, "the scorer did not become an int8 MatMulInteger"
    return quantized


def build(
    workdir: Path,
    label: str,
    item_ids: list[str],
    vectors: np.ndarray,
    model: bytes | None,
    quantize: str = "none",
) -> tuple[Path, Path]:
    """A bundle (the given model, or a mean-pool scorer) and a store with the full catalog."""
    padded = np.vstack([np.zeros((1, vectors.shape[1]), np.float32), vectors])
    if model is None:
        model = mean_pool_scorer(padded)
        if quantize == "int8":
            model = int8_scorer(model)
    bundle = workdir / f"bundle-{label}"
    write_bundle(
        bundle,
        Manifest(
            model_name=f"bench-{label}",
            model_version="1",
            max_history=MAX_HISTORY,
            embedding_dim=int(vectors.shape[1]),
            opset=17,
            quantization=quantize,
        ),
        model_onnx=model,
        items=item_ids,
        item_vectors=padded,
    )
    db = workdir / f"store-{label}.db"
    if db.exists():  # the same catalog, another model
        return bundle, db
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
    return bundle, db


def trained_torch_scorer(manifest: Manifest) -> Any:
    """The PyTorch module a trained bundle was exported from, if its run folder is here."""
    run = Path(str(manifest.training.get("config", {}).get("train", {}).get("out", "")))
    run = run if run.is_absolute() else ROOT / run
    if not (run / "model.pt").is_file():
        return None
    from shelfwise.export.onnx_export import ExportScorer
    from shelfwise.training.train import load_run

    model, _, _ = load_run(run)
    return ExportScorer(model).eval()


# -- timing helpers ---------------------------------------------------------------------------
_EVICT = np.ones(48 * 1024 * 1024 // 8)  # larger than the last-level cache


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


# -- one catalog size ----------------------------------------------------------------------------
def bench_size(
    label: str,
    workdir: Path,
    item_ids: list[str],
    vectors: np.ndarray,
    model: bytes | None,
    histories: list[list[str]],
    rounds: int,
    quantize: str = "none",
    trained_torch: Any = None,
) -> dict[str, Any]:
    import torch

    started = time.perf_counter()
    bundle, db = build(workdir, label, item_ids, vectors, model, quantize)
    build_s = time.perf_counter() - started
    sw = shelfwise.open(db, bundle=bundle, store_id="bench")
    loaded = sw.model.current
    assert loaded is not None
    threads = loaded.session.get_session_options().intra_op_num_threads
    shoppers = []
    for n, history in enumerate(histories[:20]):
        shopper = sw.member(f"bench-{n}", consents={"personalization": True})
        for item in history[-20:]:
            shopper.track("view", item)
        shopper.add_to_cart(history[0])
        shoppers.append(shopper)

    # Inputs prepared once, as the runtime encodes them.
    batches = [encode_histories(loaded.vocab, [h], MAX_HISTORY) for h in histories]
    k_in = np.array([K + 1], dtype=np.int64)
    names = [loaded.manifest.output_scores, loaded.manifest.output_items]

    padded = np.vstack([np.zeros((1, vectors.shape[1]), np.float32), vectors])
    matrix_t = np.ascontiguousarray(padded.T)  # [d, N+1], as the ONNX graph holds it
    torch.set_num_threads(threads)
    t_embed = torch.from_numpy(padded)
    t_matrix = torch.from_numpy(matrix_t)

    def e2e_shopper(i: int) -> object:
        return shoppers[i % len(shoppers)].recommend("for-you", k=K)

    def e2e_stateless(i: int) -> object:
        return sw.recommend(history=histories[i % len(histories)][-20:], k=K)

    def ort_only(i: int) -> object:
        return loaded.session.run(names, {"history": batches[i % len(batches)], "k": k_in})

    def torch_eager(i: int) -> object:
        with torch.inference_mode():
            history = torch.from_numpy(batches[i % len(batches)])
            if trained_torch is not None:  # the bundle's own network, in PyTorch
                return torch.topk(trained_torch(history), K + 1, dim=1)
            mask = (history > 0).float().unsqueeze(-1)
            user = (t_embed[history] * mask).sum(1) / mask.sum(1).clamp(min=1)
            return torch.topk(user @ t_matrix, K + 1, dim=1)

    def numpy_dot(i: int) -> object:
        history = batches[i % len(batches)][0]
        known = history[history > 0]
        user = padded[known].mean(axis=0)
        scores = user @ matrix_t
        top = np.argpartition(-scores, K + 1)[: K + 1]
        return top[np.argsort(-scores[top])]

    # The floor: the fastest of a few ways to read every byte of the item matrix once.
    floor = min(
        min(measure(lambda _: matrix_t.sum(), 20)),
        min(measure(lambda _: np.add.reduce(matrix_t, axis=0), 20)),
        min(measure(lambda _: matrix_t.max(), 20)),
    )

    n_tight = rounds
    n_spaced = max(20, rounds // 3)
    int8_matrix = np.clip(np.round(matrix_t * (127 / np.abs(matrix_t).max())), -127, 127).astype(
        np.int8
    )
    results: dict[str, Any] = {
        "quantization": loaded.manifest.quantization,
        "int8_floor_ms": round(min(measure(lambda _: int8_matrix.max(), 20)) * 1000, 4),
        "items": len(item_ids),
        "matrix_mb": round(matrix_t.nbytes / 1e6, 1),
        "onnx_intra_op_threads": threads,
        "build_s": round(build_s, 1),
        "floor_ms": round(floor * 1000, 4),
    }
    cases = {
        "e2e shopper": e2e_shopper,
        "e2e stateless": e2e_stateless,
        "onnxruntime": ort_only,
        "torch eager": torch_eager,
        "numpy dot+argpartition": numpy_dot,
    }
    for name, fn in tqdm(cases.items(), desc=f"latency {label}", leave=False):
        results[name] = {
            "tight": stats(measure(fn, n_tight)),
            "spaced": stats(measure(fn, n_spaced, spaced=True)),
            "two_threads": stats(measure_threads(fn, n_tight)),
        }
    sw.close()
    results["paths"] = {"bundle": str(bundle), "db": str(db)}
    return results


# -- cold start and memory in a fresh process -------------------------------------------------
_PROBE = """
import json, sys, time
t0 = time.perf_counter()
import shelfwise
t1 = time.perf_counter()
sw = shelfwise.open(sys.argv[1], bundle=sys.argv[2], store_id="bench")
t2 = time.perf_counter()
shopper = sw.member("bench-0")
shopper.recommend("for-you", k=10)
t3 = time.perf_counter()
for _ in range(50):
    shopper.recommend("for-you", k=10)
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
kb = lambda key: int(status[key].split()[0])
print(json.dumps({"import_s": t1 - t0, "open_and_load_s": t2 - t1, "first_request_s": t3 - t2,
                  "rss_mb": kb("VmRSS") / 1024, "peak_rss_mb": kb("VmHWM") / 1024}))
"""


def probe(db: str, bundle: str) -> dict[str, float]:
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _PROBE, db, bundle],
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
    print(
        f"\nrecommend latency, k={K}, ms (p50 / p99); ratios are against the floor in the same run"
    )
    header = (
        f"{'items':>9} {'case':<24} {'tight':>17} {'spaced':>17} {'2 threads':>17} {'p50/floor':>9}"
    )
    print(header)
    print("-" * len(header))
    for label, size in report["sizes"].items():
        floor = size["floor_ms"]
        print(f"{label:>9} {'floor (stream matrix)':<24} {floor:>17.3f}")
        for case in [
            "e2e shopper",
            "e2e stateless",
            "onnxruntime",
            "torch eager",
            "numpy dot+argpartition",
        ]:
            row = size[case]
            cells = [
                f"{row[m]['p50_ms']:7.3f} / {row[m]['p99_ms']:7.3f}"
                for m in ("tight", "spaced", "two_threads")
            ]
            ratio = row["tight"]["p50_ms"] / floor
            print(
                f"{label:>9} {case:<24} {cells[0]:>17} {cells[1]:>17} {cells[2]:>17} {ratio:>9.2f}"
            )
    print("\ncold start and memory (fresh process, best of 3)")
    for label, size in report["sizes"].items():
        cold = size["cold_start"]
        print(
            f"{label:>9} import {cold['import_s'] * 1000:6.0f} ms, open+load {cold['open_and_load_s'] * 1000:7.0f} ms, "
            f"first request {cold['first_request_s'] * 1000:6.1f} ms, RSS {cold['rss_mb']:6.0f} MB "
            f"(peak {cold['peak_rss_mb']:.0f} MB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="12k,100k,1M", help="comma-separated: 12k,100k,1M")
    parser.add_argument("--bundle", help="a trained bundle to take the real vectors from")
    parser.add_argument("--rounds", type=int, default=300, help="requests per tight-loop case")
    parser.add_argument("--out", default=str(RESULTS / "runtime.json"))
    parser.add_argument(
        "--quantize",
        default="none,int8",
        help="scorers for the tiled sizes: none (fp32), int8 (MatMulInteger), or both",
    )
    args = parser.parse_args()

    trained = find_trained_bundle(args.bundle)
    sequences = beauty_sequences() if BEAUTY.is_file() else []
    model: bytes | None = None
    if trained is not None:
        files = read_bundle(trained)
        assert files.item_vectors is not None
        base_ids, base_vectors = files.items, files.item_vectors[1:]
        model, source = files.model_bytes, f"trained bundle {trained}"
        index = {item: n for n, item in enumerate(base_ids)}
        histories_idx = (
            [[index[i] for i in s if i in index] for s in sequences] if sequences else []
        )
    else:
        if not sequences:
            sys.exit(f"no trained bundle and no {BEAUTY}: nothing real to take vectors from")
        base_vectors = svd_item_vectors(sequences, DIM)
        base_ids = [f"b{n + 1}" for n in range(len(base_vectors))]
        source = f"truncated SVD (d={DIM}) of {BEAUTY.name} ({len(sequences)} real sequences)"
        histories_idx = sequences
    if not histories_idx or not any(histories_idx):  # a bundle unrelated to Beauty
        rng = np.random.default_rng(0)
        histories_idx = [list(rng.integers(0, len(base_ids), 20)) for _ in range(200)]
    chosen = [h for h in histories_idx if len(h) >= 8][:200]

    report: dict[str, Any] = {
        "vectors": source,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "note": "2 shared cores: absolute numbers are noisy, ratios within one run count",
        },
        "k": K,
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-recommend-") as tmp:
        for label in [s.strip() for s in args.sizes.split(",") if s.strip()]:
            size = SIZES[label] or len(base_ids)
            if size == len(base_ids):
                ids, vectors, size_model = list(base_ids), base_vectors, model
            else:  # tiled copies: "b17~3" is the 4th copy of item b17
                ids = [f"{base_ids[n % len(base_ids)]}~{n // len(base_ids)}" for n in range(size)]
                vectors, size_model = tile(base_vectors, size), None
            histories = [[ids[i] for i in h] for h in chosen]
            rounds = args.rounds if size <= 200_000 else max(30, args.rounds // 6)
            modes = ["trained"] if size_model is not None else args.quantize.split(",")
            for mode in modes:
                name = label if mode in {"trained", "none"} else f"{label} {mode}"
                result = bench_size(
                    name,
                    Path(tmp),
                    ids,
                    vectors,
                    size_model,
                    histories,
                    rounds,
                    quantize="none" if mode == "trained" else mode,
                    trained_torch=trained_torch_scorer(files.manifest)
                    if mode == "trained"
                    else None,
                )
                paths = result.pop("paths")
                result["cold_start"] = probe(paths["db"], paths["bundle"])
                report["sizes"][name] = result
    print_table(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(out.read_text()) if out.is_file() else {}
    merged["recommend"] = report
    out.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
