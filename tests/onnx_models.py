"""Tiny real ONNX models for runtime tests, built with onnx.helper (no torch needed).

The model follows the bundle contract: mean of the history's item vectors, dot product with
every item's vector, TopK inside the graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shelfwise.export.reference_scorer import mean_pool_scorer
from shelfwise.model.bundle import Manifest, SideTables, write_bundle
from shelfwise.model.encoding import FeatureEncoding

__all__ = ["mean_pool_scorer", "write_test_bundle"]


def write_test_bundle(
    folder: Path,
    items: list[str],
    item_vectors: np.ndarray,
    *,
    side_tables: SideTables | None = None,
    version: str = "1",
    max_history: int = 8,
    sign_key: bytes | None = None,
    features: FeatureEncoding | None = None,
    feature_table: np.ndarray | None = None,
) -> Path:
    """A complete, verifiable bundle around ``mean_pool_scorer``; with ``features`` and its
    ``feature_table`` the graph also returns the user vector (as export writes them)."""
    with_features = features is not None
    write_bundle(
        folder,
        Manifest(
            model_name="test-mean-pool",
            model_version=version,
            max_history=max_history,
            embedding_dim=int(item_vectors.shape[1]),
            opset=17,
            output_user="user_vector" if with_features else "",
            features=features.to_dict() if features is not None else {},
        ),
        model_onnx=mean_pool_scorer(item_vectors, user_output=with_features),
        items=items,
        item_vectors=item_vectors,
        side_tables=side_tables,
        feature_table=feature_table,
        sign_key=sign_key,
    )
    return folder
