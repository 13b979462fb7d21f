"""Export's per-bundle quantization choice: int8 for the scorer only where it measures worth
it, else fp32, with the reason recorded. The timings are replaced by fixed numbers here, so the
rule is tested, not the machine (tests never assert wall-clock times)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from shelfwise.export import quantize
from shelfwise.export.quantize import choose_quantization, scorer_is_int8
from shelfwise.export.reference_scorer import mean_pool_scorer

VECTORS = np.random.default_rng(0).standard_normal((301, 8)).astype(np.float32)
HISTORIES = np.array([[0, 0, 3, 4], [0, 5, 6, 7], [1, 2, 3, 4]], dtype=np.int64)


@pytest.fixture
def timings(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Set ``crossover`` (items from which the int8 head pays) and ``graph`` (p50 ms)."""
    fixed: dict[str, object] = {"crossover": 50, "graph": {"fp32": 1.0, "int8": 0.5}}
    monkeypatch.setattr(
        quantize, "scorer_crossover", lambda dim: (fixed["crossover"], {"50": {"fp32": 1.0}})
    )
    monkeypatch.setattr(
        quantize, "_interleaved_p50_ms", lambda sessions, feeds, rounds: fixed["graph"]
    )
    return fixed


def test_a_catalog_below_the_measured_crossover_keeps_fp32(timings: dict[str, object]) -> None:
    timings["crossover"] = 1000
    fp32 = mean_pool_scorer(VECTORS)
    choice = choose_quantization(fp32, HISTORIES, num_items=300, dim=8)
    assert choice.mode == "none" and choice.model == fp32
    assert "from 1,000 items" in choice.why and "300" in choice.why
    assert choice.to_dict()["int8_scorer_pays_from_items"] == 1000


def test_no_crossover_at_any_timed_size_keeps_fp32(timings: dict[str, object]) -> None:
    timings["crossover"] = None
    choice = choose_quantization(mean_pool_scorer(VECTORS), HISTORIES, num_items=300, dim=8)
    assert choice.mode == "none" and "not 1.1x faster" in choice.why


def test_above_the_crossover_the_int8_scorer_ships_when_the_whole_graph_is_faster(
    timings: dict[str, object],
) -> None:
    choice = choose_quantization(
        mean_pool_scorer(VECTORS), HISTORIES, num_items=300, dim=8, relative_drop=lambda g: 0.01
    )
    assert choice.mode == "int8" and scorer_is_int8(choice.model)
    ops = [n.op_type for n in onnx.load_from_string(choice.model).graph.node]
    assert ops.count("MatMulInteger") == 1  # the scorer only
    record = choice.to_dict()
    assert record["chosen"] == "int8" and record["measured"]["int8_speedup"] == 2.0
    assert record["measured"]["ndcg@10_relative_drop"] == 0.01


def test_int8_that_is_not_faster_enough_or_costs_too_much_quality_is_not_shipped(
    timings: dict[str, object],
) -> None:
    fp32 = mean_pool_scorer(VECTORS)
    timings["graph"] = {"fp32": 1.0, "int8": 0.95}
    slow = choose_quantization(fp32, HISTORIES, num_items=300, dim=8)
    assert slow.mode == "none" and "only 1.05x" in slow.why
    timings["graph"] = {"fp32": 1.0, "int8": 0.5}
    lossy = choose_quantization(fp32, HISTORIES, num_items=300, dim=8, relative_drop=lambda g: 0.05)
    assert lossy.mode == "none" and "5.0% relative NDCG@10" in lossy.why
