"""Loading a verified bundle into onnxruntime, scoring histories, and hot swapping.

One ``InferenceSession`` per bundle, created once and shared by every thread (concurrent
``run`` is safe). ``ModelHandle.swap`` loads, verifies and health-checks a new bundle before
replacing the old one in a single reference assignment, so a bad bundle never serves.

A bundle with a feature table also serves items it has never seen: ``catalog_vectors`` gives
every catalog item outside the vocabulary a vector from its features alone (computed once per
bundle and catalog revision), which ``score`` ranks against the graph's user vector and the
similarity surfaces compare by cosine.

Backends: onnxruntime serves every bundle. A bundle that also carries the network for LiteRT
(``Manifest.training["backends"]["litert"]``, see ``shelfwise.model.litert``) is served with
LiteRT when the device asks for it (``backend="litert"`` or ``SHELFWISE_MODEL_BACKEND=litert``)
or, with ``auto`` (the default), when the bundle prefers it and ``ai-edge-litert`` is
installed; ``onnxruntime`` forces onnxruntime. onnxruntime itself is imported on first use.
Items a bundle has never seen get vectors from their features with either backend (new items
are ranked against the graph's user vector, which only the onnxruntime graph returns).

Example:
    >>> from shelfwise.model.runtime import ModelHandle
    >>> handle = ModelHandle()
    >>> handle.current is None
    True
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import BundleError, BundleVerificationError, InvalidInput, ModelRuntimeError
from . import litert
from .bundle import BundleFiles, Manifest, SideTables, read_bundle
from .encoding import FeatureEncoding, ItemFeatures, Vocabulary, pad_left

if TYPE_CHECKING:
    import onnxruntime as ort

logger = logging.getLogger(__name__)

# Below this many items one intra-op thread is fastest; above it two cores help (FIELD-NOTES).
TWO_THREADS_FROM_ITEMS = 50_000
# onnxruntime fuses a dynamically quantized MatMul (DynamicQuantizeLinear -> MatMulInteger ->
# Cast -> Mul) into one op whose kernel is slow for a single row against per-channel int8
# weights: the exported int8 scorer at 100k items ran 0.49 ms fused vs 0.27 ms unfused here
# (per-tensor weights: 0.21 vs 0.24 ms). fp32 graphs have nothing to fuse, so this costs them
# nothing (benchmarks/bench_recommend.py).
DISABLED_OPTIMIZERS = ["MatMulIntegerToFloatFusion", "DynamicQuantizeMatMulFusion"]
BACKENDS = ("auto", "onnxruntime", litert.BACKEND)
BACKEND_ENV = "SHELFWISE_MODEL_BACKEND"  # the device's choice, e.g. set in a kiosk image


def session_options(num_items: int, threads: int | None = None) -> ort.SessionOptions:
    """Options for a small edge device: few threads, no spinning so an idle kiosk sleeps."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    wanted = threads or (2 if num_items >= TWO_THREADS_FROM_ITEMS else 1)
    options.intra_op_num_threads = max(1, min(wanted, os.cpu_count() or 1))
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


@dataclass(frozen=True)
class ScoredItems:
    """Model output for one history: item ids, best first, with their scores."""

    items: list[str]
    scores: list[float]


@dataclass(frozen=True)
class CatalogVectors:
    """Vectors for the catalog items a bundle's vocabulary lacks, from their features alone.

    ``vectors`` are raw (scored against the user vector), ``unit`` has unit rows (cosine);
    ``stand_in[i]`` is the model index of the known item closest to new item ``i`` (-1 when
    the bundle has no item vectors): a history that holds a new item is read with it.
    ``readable[i]`` is False for a new item none of whose features the bundle knows (it has
    no vector to compare).
    """

    revision: str
    items: tuple[str, ...]
    vectors: np.ndarray
    unit: np.ndarray
    stand_in: np.ndarray
    index: Mapping[str, int] = field(default_factory=dict)
    readable: tuple[bool, ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: object) -> bool:
        return item in self.index


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def choose_backend(manifest: Manifest, wanted: str | None = None) -> str:
    """The backend that serves a bundle: ``wanted`` (else ``SHELFWISE_MODEL_BACKEND``, else
    ``auto``), checked against what the bundle carries and what is installed.

    Example:
        >>> from shelfwise.model.bundle import Manifest
        >>> choose_backend(Manifest(model_name="m", model_version="1", max_history=4), "auto")
        'onnxruntime'
    """
    wanted = wanted or os.environ.get(BACKEND_ENV) or "auto"
    if wanted not in BACKENDS:
        raise InvalidInput(f"unknown model backend {wanted!r}: use one of {', '.join(BACKENDS)}")
    declared = manifest.training.get("backends", {})
    offered = isinstance(declared, dict) and isinstance(declared.get(litert.BACKEND), dict)
    if wanted == litert.BACKEND:
        if not offered:
            raise ModelRuntimeError(
                f"bundle {manifest.model_name} has no LiteRT model; serve it with onnxruntime "
                "or add one with shelfwise.export.litert.add_litert_model"
            )
        if not litert.available():
            raise ModelRuntimeError(
                "LiteRT was asked for but ai-edge-litert is not installed: "
                "pip install 'shelfwise[litert]'"
            )
        return litert.BACKEND
    if wanted == "auto" and offered and declared[litert.BACKEND].get("preferred") is True:
        if litert.available():
            return litert.BACKEND
        logger.info("bundle prefers LiteRT but ai-edge-litert is not installed: onnxruntime")
    return "onnxruntime"


def _litert_scorer(files: BundleFiles, threads: int | None) -> litert.LiteRtScorer:
    import hashlib

    spec = files.manifest.training["backends"][litert.BACKEND]
    name = spec.get("file", litert.FILE)
    expected = files.manifest.files.get(name)
    if expected is None:
        raise BundleVerificationError(f"manifest lists no checksum for {name}")
    model = (files.path / name).read_bytes()
    if hashlib.sha256(model).hexdigest() != expected:  # the very bytes LiteRT will load
        raise BundleVerificationError(f"bundle file {name} changed after it was verified")
    threads = threads or (2 if len(files.items) >= TWO_THREADS_FROM_ITEMS else 1)
    return litert.LiteRtScorer(model, threads=threads, history_length=int(spec["history_length"]))


class LoadedModel:
    """A verified bundle with its live onnxruntime session (or LiteRT interpreter)."""

    def __init__(
        self, files: BundleFiles, *, threads: int | None = None, backend: str | None = None
    ) -> None:
        self.manifest: Manifest = files.manifest
        self.vocab = Vocabulary(files.items)
        self.side_tables: SideTables = files.side_tables
        self.backend = choose_backend(files.manifest, backend)
        self.session: ort.InferenceSession | None = None
        self._litert: litert.LiteRtScorer | None = None
        try:
            if self.backend == litert.BACKEND:
                self._litert = _litert_scorer(files, threads)
            else:
                import onnxruntime as ort

                self.session = ort.InferenceSession(
                    files.model_bytes,
                    sess_options=session_options(len(self.vocab), threads),
                    providers=["CPUExecutionProvider"],
                    disabled_optimizers=DISABLED_OPTIMIZERS,
                )
        except BundleError:
            raise
        except Exception as exc:  # onnxruntime errors subclass Exception only
            raise ModelRuntimeError(f"{self.backend} could not load {files.path}: {exc}") from exc
        # The session holds the graph now, and only unit-length vectors are ever read:
        # keeping the serialized model and the raw vectors would double the footprint.
        self.files = dataclasses.replace(
            files, model_bytes=b"", item_vectors=None, feature_table=None
        )
        self._vectors = files.item_vectors
        self._normalised = False
        self._vectors_lock = threading.Lock()
        self.features: FeatureEncoding | None = files.features
        self._feature_table = files.feature_table
        self._catalog: CatalogVectors | None = None
        self._catalog_lock = threading.Lock()
        outputs = (
            {o.name for o in self.session.get_outputs()} if self.session is not None else set()
        )
        self._user_output = (
            self.manifest.output_user if self.manifest.output_user in outputs else ""
        )
        # A graph whose history length is symbolic (the export's contract: any L up to
        # max_history) is fed only the columns that hold items: the encoder's cost grows with
        # L, and a shopper's history is usually far shorter than max_history. A graph with a
        # fixed length (the legacy exporter bakes it in) always gets the padded max_history.
        shapes: list[Any] = []
        if self.session is not None:
            inputs = self.session.get_inputs()
            shapes = [i.shape for i in inputs if i.name == self.manifest.input_history]
        self._dynamic_length = (
            bool(shapes) and len(shapes[0]) == 2 and not isinstance(shapes[0][1], int)
        )

    @property
    def version(self) -> str:
        return f"{self.manifest.model_name}@{self.manifest.model_version}"

    def score(
        self, histories: list[list[str]], k: int, extra: CatalogVectors | None = None
    ) -> list[ScoredItems]:
        """Top-``k`` items for each history (item ids, scores), as the model ranks them.

        Unknown items in a history are skipped; padding (index 0) never comes back. With
        ``extra`` (``catalog_vectors``), a new item in a history is read as its closest known
        item, and new items are ranked too when the graph returns its user vector.
        """
        if not histories:
            return []
        batch = self._encode(histories, extra)
        k_eff = max(1, min(k + 1, len(self.vocab) + 1))  # +1: the padding row may rank
        wanted = [self.manifest.output_scores, self.manifest.output_items]
        with_new = extra is not None and len(extra) > 0 and bool(self._user_output)
        if with_new:
            wanted.append(self._user_output)
        try:
            if self._litert is not None:
                outputs = list(self._litert.run(batch, k_eff))
            else:
                assert self.session is not None
                outputs = self.session.run(
                    wanted,
                    {
                        self.manifest.input_history: batch,
                        self.manifest.input_k: np.array([k_eff], dtype=np.int64),
                    },
                )
        except Exception as exc:
            raise ModelRuntimeError(f"model {self.version} failed to run: {exc}") from exc
        scores, indices = outputs[0], outputs[1]
        if (
            getattr(scores, "shape", None) != getattr(indices, "shape", None)
            or np.ndim(scores) != 2
            or len(scores) != len(histories)
        ):
            raise ModelRuntimeError(
                f"model {self.version} returned outputs of the wrong shape "
                f"{getattr(scores, 'shape', None)} / {getattr(indices, 'shape', None)}"
            )
        size = len(self.vocab)
        items = self.vocab.items
        tops = [
            [
                (items[i - 1], s)
                for i, s in zip(indices_row, scores_row, strict=True)
                if 0 < i <= size
            ][:k]
            for scores_row, indices_row in zip(scores.tolist(), indices.tolist(), strict=True)
        ]
        if with_new and extra is not None:
            lines = self._new_item_scores(outputs[2], extra, len(histories))
            tops = [
                self._with_new_items(top, line, extra, k)
                for top, line in zip(tops, lines, strict=True)
            ]
        return [ScoredItems([i for i, _ in top], [s for _, s in top]) for top in tops]

    def _encode(self, histories: list[list[str]], extra: CatalogVectors | None) -> np.ndarray:
        """The histories as model indices, left padded. Unknown items are skipped; a new
        catalog item is read as its closest known item (``extra.stand_in``). A graph with a
        symbolic length gets only as many columns as the longest history fills (at least one).
        """
        rows = []
        for history in histories:
            indices = self.vocab.indices(history)
            if extra is not None and len(extra) and not all(indices):
                indices = [
                    index or self._stand_in(item, extra)
                    for item, index in zip(history, indices, strict=True)
                ]
            rows.append([index for index in indices if index > 0])
        return pad_left(rows, self.manifest.max_history, trim=self._dynamic_length)

    @staticmethod
    def _stand_in(item: str, extra: CatalogVectors) -> int:
        """The model index of the known item closest to new item ``item`` (<= 0: none)."""
        row = extra.index.get(item)
        return int(extra.stand_in[row]) if row is not None else 0

    def _new_item_scores(self, users: Any, extra: CatalogVectors, rows: int) -> np.ndarray:
        """Each new catalog item's score against each row's user vector ``[rows, new]``."""
        users = np.asarray(users, dtype=np.float32)
        if users.ndim != 2 or users.shape != (rows, extra.vectors.shape[1]):
            raise ModelRuntimeError(
                f"model {self.version} returned a user vector of shape {users.shape}; the "
                f"feature table has width {extra.vectors.shape[1]}"
            )
        return users @ extra.vectors.T

    @staticmethod
    def _with_new_items(
        top: list[tuple[str, float]], line: np.ndarray, extra: CatalogVectors, k: int
    ) -> list[tuple[str, float]]:
        """The graph's top-k of one row, ``(item id, score)`` best first, with the new items
        scored above its k-th (``line``: every new item's score) merged in."""
        # Only a new item scoring above the graph's k-th can enter the top k: the others
        # never become Python objects (on every request, for thousands of new items).
        floor = top[-1][1] if len(top) >= k else -np.inf
        entering = np.flatnonzero(line > floor)  # in catalog order
        if not len(entering):
            return top
        if len(entering) > k:
            # The k best; on a tie at the cut, the first in catalog order (as the graph's
            # TopK keeps the lower index): whatever k is, a shorter list starts a longer.
            kth = np.partition(line[entering], len(entering) - k)[len(entering) - k]
            above = entering[line[entering] > kth]
            at_cut = entering[line[entering] == kth][: k - len(above)]
            entering = np.sort(np.concatenate([above, at_cut]))
        names = [extra.items[i] for i in entering.tolist()]
        new = list(zip(names, line[entering].tolist(), strict=True))
        # Stable: on a tie the graph's own item stays first, new items in catalog order.
        return sorted(top + new, key=operator.itemgetter(1), reverse=True)[:k]

    def normalised_vectors(self) -> np.ndarray | None:
        """Unit-length item vectors for cosine similarity (computed once, on first use)."""
        with self._vectors_lock:
            if self._vectors is not None and not self._normalised:
                norms = np.linalg.norm(self._vectors, axis=1, keepdims=True)
                self._vectors = self._vectors / np.maximum(norms, 1e-12)
                self._normalised = True
        return self._vectors

    def content_vectors(self, items: Sequence[ItemFeatures]) -> np.ndarray:
        """Each item's vector from its features alone, float32 ``[len(items), d]``: the sum
        of its features' rows (what the model gives an item it has no id embedding for).

        Raises ``ModelRuntimeError`` when the bundle has no feature table.
        """
        if self.features is None or self._feature_table is None:
            raise ModelRuntimeError(
                f"bundle {self.version} has no feature table: export a model trained with "
                "item features (--catalog / --item-features) to serve items it never saw"
            )
        rows = self.features.encode(items, width=self.features.max_features)
        return self._feature_table[rows].sum(axis=1, dtype=np.float32)

    def catalog_vectors(
        self, revision: str, read_items: Callable[[], Sequence[tuple[str, ItemFeatures]]]
    ) -> CatalogVectors | None:
        """Vectors for the catalog items outside the vocabulary (None without a feature table).

        ``read_items`` lists the catalog's ``(item_id, features)``; it is only called when
        ``revision`` (the catalog's) differs from the one computed last, so a bundle load or a
        catalog import costs one pass and every other request none.
        """
        if self.features is None or self._feature_table is None:
            return None
        current = self._catalog
        if current is not None and current.revision == revision:
            return current
        with self._catalog_lock:
            current = self._catalog
            if current is None or current.revision != revision:
                current = self._compute_catalog_vectors(revision, read_items())
                self._catalog = current
                logger.info(
                    "model %s: %d catalog items outside the vocabulary get vectors from "
                    "their features",
                    self.version,
                    len(current),
                )
        return current

    def _compute_catalog_vectors(
        self, revision: str, rows: Sequence[tuple[str, ItemFeatures]]
    ) -> CatalogVectors:
        new = [(item_id, features) for item_id, features in rows if item_id not in self.vocab]
        dim = self._feature_table.shape[1] if self._feature_table is not None else 0
        vectors = (
            self.content_vectors([f for _, f in new])
            if new
            else np.zeros((0, dim), dtype=np.float32)
        )
        unit = _unit(vectors)
        stand_in = np.full(len(new), -1, dtype=np.int64)
        known = self.normalised_vectors()
        if known is not None and len(new) and known.shape[1] == dim:
            for start in range(0, len(new), 1024):  # bounded memory at large catalogs
                sims = unit[start : start + 1024] @ known.T
                sims[:, 0] = -np.inf
                stand_in[start : start + 1024] = sims.argmax(axis=1)
            stand_in[~np.abs(vectors).any(axis=1)] = -1  # no known feature: no stand-in
        items = tuple(item_id for item_id, _ in new)
        return CatalogVectors(
            revision=revision,
            items=items,
            vectors=vectors,
            unit=unit,
            stand_in=stand_in,
            index={item_id: row for row, item_id in enumerate(items)},
            # Worked out once here, not with np.any on every lookup (reasons ask per item).
            readable=tuple(bool(b) for b in np.count_nonzero(vectors, axis=1)),
        )

    def unit_vector(self, item_id: str, extra: CatalogVectors | None = None) -> np.ndarray | None:
        """The unit-length vector of a known item or of a new catalog item (None: neither)."""
        known = self.normalised_vectors()
        if known is not None and item_id in self.vocab:
            return known[self.vocab.index(item_id)]
        row = self._readable_row(item_id, extra)
        return extra.unit[row] if extra is not None and row is not None else None

    def unit_vectors(
        self, item_ids: Sequence[str], extra: CatalogVectors | None = None
    ) -> tuple[list[int], np.ndarray]:
        """``unit_vector`` for many items at once: the positions in ``item_ids`` that have a
        vector, and those vectors stacked ``[len(positions), d]`` (gathered in one step)."""
        known = self.normalised_vectors()
        if known is None:
            return [], np.zeros((0, 0), dtype=np.float32)
        indices = self.vocab.indices(item_ids)
        if all(indices):  # the usual case: every item is one the model knows
            return list(range(len(indices))), known[indices]
        positions: list[int] = []
        rows: list[int] = []  # a row of ``known``, or -1 - the row of ``extra.unit``
        for position, (item_id, index) in enumerate(zip(item_ids, indices, strict=True)):
            if index:
                positions.append(position)
                rows.append(index)
            elif (row := self._readable_row(item_id, extra)) is not None:
                positions.append(position)
                rows.append(-1 - row)
        picked = np.asarray(rows, dtype=np.int64)
        new = picked < 0
        vectors = np.empty((len(picked), known.shape[1]), dtype=known.dtype)
        vectors[~new] = known[picked[~new]]
        if extra is not None:
            vectors[new] = extra.unit[-1 - picked[new]]
        return positions, vectors

    def _readable_row(self, item_id: str, extra: CatalogVectors | None) -> int | None:
        """The row of a new catalog item in ``extra`` when it has a vector to compare."""
        row = extra.index.get(item_id) if extra is not None else None
        if extra is None or row is None or not extra.readable[row]:
            return None
        return row

    def neighbours(
        self,
        item_id: str,
        n: int,
        extra: CatalogVectors | None = None,
        *,
        known_only: bool = False,
    ) -> list[tuple[str, float]]:
        """The ``n`` items (known and new; with ``known_only`` the vocabulary's only) whose
        vectors are closest to ``item_id``'s, by cosine, best first; empty when the item has
        no vector.

        Example: see ``tests/test_content.py``.
        """
        target = self.unit_vector(item_id, extra)
        known = self.normalised_vectors()
        if target is None or known is None:
            return []
        ids: list[str] = list(self.vocab.items)
        sims = known[1:] @ target
        if extra is not None and len(extra) and not known_only:
            ids += list(extra.items)
            sims = np.concatenate([sims, extra.unit @ target])
        take = min(n + 1, len(sims))
        top = np.argpartition(-sims, take - 1)[:take] if take < len(sims) else np.arange(take)
        ranked = sorted(
            ((ids[int(i)], float(sims[i])) for i in top), key=lambda pair: (-pair[1], pair[0])
        )
        return [(other, sim) for other, sim in ranked if other != item_id][:n]

    def health_check(self) -> None:
        """Run the model once on a real history; raise ``ModelRuntimeError`` if it misbehaves."""
        if not self.vocab.items:
            raise ModelRuntimeError("bundle has an empty item vocabulary")
        result = self.score([[self.vocab.items[0]]], k=min(5, len(self.vocab)))
        if not result or not result[0].items:
            raise ModelRuntimeError(f"model {self.version} returned no items in its health check")
        if not all(np.isfinite(result[0].scores)):
            raise ModelRuntimeError(f"model {self.version} returned non-finite scores")


def load_model(
    path: str | Path,
    *,
    public_key: bytes | None = None,
    threads: int | None = None,
    backend: str | None = None,
) -> LoadedModel:
    """Read, verify, load and health-check a bundle (``backend``: see ``choose_backend``).

    Example:
        >>> load_model("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        shelfwise.BundleVerificationError: /nonexistent is not a bundle: it has no manifest.json
    """
    files = read_bundle(path, public_key=public_key)
    try:
        model = LoadedModel(files, threads=threads, backend=backend)
        model.health_check()
    except (BundleError, InvalidInput):
        raise
    except Exception as exc:  # anything else a broken model can do must not escape untyped
        raise ModelRuntimeError(f"bundle {path} failed its health check: {exc}") from exc
    logger.info(
        "loaded bundle %s (%d items, %s, %s)",
        model.version,
        len(model.vocab),
        model.manifest.quantization,
        model.backend,
    )
    return model


class ModelHandle:
    """The currently served model; swapped atomically, never left half-loaded."""

    def __init__(
        self,
        public_key: bytes | None = None,
        threads: int | None = None,
        backend: str | None = None,
    ) -> None:
        self.public_key = public_key
        self.threads = threads
        self.backend = backend  # None: SHELFWISE_MODEL_BACKEND, else auto (choose_backend)
        self._current: LoadedModel | None = None
        self._swap_lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def swap(self, path: str | Path) -> LoadedModel:
        """Load ``path`` and serve it; on any failure keep serving the old model and raise."""
        with self._swap_lock:
            try:
                model = load_model(
                    path, public_key=self.public_key, threads=self.threads, backend=self.backend
                )
            except BundleError:
                logger.warning("kept %s: new bundle was refused", self.version)
                raise
            self._current = model
            return model

    @property
    def version(self) -> str | None:
        current = self._current
        return current.version if current else None
