"""Training: readers (with malformed rows), splits, metrics, side tables, baselines, training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from hypothesis import given, settings
from hypothesis import strategies as st

from shelfwise import InvalidInput, InvalidRun, InvalidTrainConfig, InvalidTrainingData
from shelfwise.training.baselines import EASE, CoOccurrence, Markov, Popularity
from shelfwise.training.data import (
    ColumnMapping,
    EvalCases,
    leave_one_out,
    read_events,
    time_split,
)
from shelfwise.training.evaluate import (
    evaluate,
    full_ranks,
    metrics_from_ranks,
    sampled_ranks,
)
from shelfwise.training.side_tables import compute
from shelfwise.training.train import TrainConfig, load_run, model_scorer, train

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def chain_file(path: Path, users: int = 160, items: int = 40, seed: int = 0) -> Path:
    """A sequence file shaped like Beauty.txt: each shopper walks a chain of related items
    (i -> i+1 mostly), so the next item is predictable from the last one, not from popularity.
    """
    rng = np.random.default_rng(seed)
    lines = []
    for user in range(1, users + 1):
        length = int(rng.integers(5, 12))
        item = int(rng.integers(1, items + 1))
        seq = []
        for _ in range(length):
            seq.append(item)
            item = item % items + 1 if rng.random() < 0.85 else int(rng.integers(1, items + 1))
        lines.append(f"{user} " + " ".join(map(str, seq)))
    path.write_text("\n".join(lines) + "\n")
    return path


# --- readers ------------------------------------------------------------------------------


def test_sequence_file_reads_users_in_order_and_numeric_ids_map_to_themselves(
    tmp_path: Path,
) -> None:
    path = tmp_path / "seq.txt"
    path.write_text("1 3 1 2\n2 2 3\n\n")
    log = read_events(path)
    assert log.format == "sequence"
    assert [e.item for e in log.sequences()["1"]] == ["3", "1", "2"]
    vocab = log.vocabulary()
    assert [vocab.index(i) for i in ("1", "2", "3")] == [1, 2, 3]


def test_malformed_sequence_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "seq.txt"
    path.write_text("1 3 4\n2\n3 5 6\n")
    with pytest.raises(InvalidTrainingData, match=r"seq.txt:2: expected") as info:
        read_events(path, "sequence")
    assert info.value.line == 2


def test_skip_bad_rows_counts_them_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text(
        "Member_number,Date,itemDescription\n"
        "1808,21-07-2015,tropical fruit\n"
        "abc,21-07-2015,whole milk\n"
        "1808,2015-07-21,whole milk\n"
        "1809,22-07-2015,whole milk,extra\n"
        "1809,22-07-2015,Whole Milk\n"
    )
    with pytest.raises(InvalidTrainingData, match=r"g.csv:3: Member_number"):
        read_events(path)
    log = read_events(path, on_error="skip")
    assert log.skipped == 3
    assert [e.item for e in log.events] == ["tropical-fruit", "whole-milk"]
    assert "g.csv:4: Date" in log.skipped_reasons[1]
    assert log.events[0].basket == "1808/2015-07-21"


def test_breadbasket_keeps_hour_and_drops_the_none_placeholder(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(
        "Date,Time,Transaction,Item\n"
        "2016-10-30,09:58:11,1,Bread\n"
        "2016-10-30,10:05:34,2,NONE\n"
        "2016-10-30,10:05:34,2,Scandinavian\n"
    )
    log = read_events(path)
    assert log.format == "breadbasket"
    assert [(e.item, e.hour, e.basket) for e in log.events] == [
        ("bread", 9, "1"),
        ("scandinavian", 10, "2"),
    ]
    assert compute(log).popularity["hour:10"] == {"scandinavian": 1.0}


def test_event_log_csv_and_parquet_read_the_same_with_a_column_mapping(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [
        {"cust": "a", "sku": "x1", "when": "2024-03-01T07:30:00", "shop": "12", "kind": "view"},
        {"cust": "a", "sku": "x2", "when": "2024-03-01T07:31:00", "shop": "12", "kind": "purchase"},
        {"cust": "b", "sku": "x2", "when": "2024-03-02T18:00:00", "shop": "7", "kind": "purchase"},
    ]
    csv_path = tmp_path / "events.csv"
    csv_path.write_text(
        "cust,sku,when,shop,kind\n" + "".join(",".join(r.values()) + "\n" for r in rows)
    )
    pq_path = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pylist(rows), pq_path)
    mapping = ColumnMapping.parse("user=cust,item=sku,timestamp=when,store=shop,event_type=kind")
    from_csv = read_events(csv_path, "events", columns=mapping)
    from_parquet = read_events(pq_path, "events", columns=mapping)
    assert from_csv.events == from_parquet.events
    assert from_csv.events[0].hour == 7
    popularity = compute(from_csv).popularity
    assert popularity["store:12"] == {"x1": 1.0, "x2": 1.0}
    assert popularity["hour:18"] == {"x2": 1.0}


def test_event_log_with_a_missing_column_says_which(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("user,item\na,b\n")
    with pytest.raises(InvalidTrainingData, match=r"\['ts'\]"):
        read_events(path, "events", columns=ColumnMapping(timestamp="ts"))


def test_bad_timestamp_in_event_log_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("user,item,ts\na,b,1700000000\na,c,yesterday\n")
    with pytest.raises(InvalidTrainingData, match=r"e.csv:3: ts 'yesterday'"):
        read_events(path, "events", columns=ColumnMapping(timestamp="ts"))


@settings(max_examples=40, deadline=None)
@given(
    seqs=st.lists(st.lists(st.integers(1, 500), min_size=1, max_size=8), min_size=1, max_size=12),
    bad_at=st.integers(0, 12),
)
def test_a_malformed_line_anywhere_is_reported_at_its_line_number(
    tmp_path_factory: pytest.TempPathFactory, seqs: list[list[int]], bad_at: int
) -> None:
    lines = [f"u{n} " + " ".join(map(str, s)) for n, s in enumerate(seqs)]
    position = min(bad_at, len(lines))
    lines.insert(position, "lonely-user")
    path = tmp_path_factory.mktemp("h") / "seq.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidTrainingData) as info:
        read_events(path, "sequence")
    assert info.value.line == position + 1
    log = read_events(path, "sequence", on_error="skip")
    assert log.skipped == 1
    assert len(log.events) == sum(len(s) for s in seqs)


# --- splits -------------------------------------------------------------------------------


def test_leave_one_out_holds_out_the_last_two_items(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text("1 1 2 3 4\n2 5 6\n")
    log = read_events(path)
    split = leave_one_out(log, log.vocabulary())
    assert split.train == [[1, 2], [5, 6]]
    assert split.valid.histories == [[1, 2]] and split.valid.targets == [[3]]
    assert split.test.histories == [[1, 2, 3]] and split.test.targets == [[4]]
    assert split.mask_seen


def test_time_split_targets_the_first_basket_after_the_cutoff(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    rows = ["Member_number,Date,itemDescription"]
    for day in range(1, 21):
        rows.append(f"1,{day:02d}-01-2015,item {day}")
    rows += ["1,19-01-2015,extra", "2,19-01-2015,only late"]
    path.write_text("\n".join(rows) + "\n")
    log = read_events(path)
    split = time_split(log, log.vocabulary(), holdout=0.1)
    vocab = log.vocabulary()
    assert split.test.users == ["1"]
    assert sorted(vocab.item(i) for i in split.test.targets[0]) == ["extra", "item-19"]
    assert not split.mask_seen


def test_eval_cases_round_trip_through_npz(tmp_path: Path) -> None:
    cases = EvalCases(["a", "b"], [[1, 2], [3]], [[4], [5, 6]])
    cases.to_npz(tmp_path / "c.npz")
    assert EvalCases.from_npz(tmp_path / "c.npz") == cases


# --- metrics ------------------------------------------------------------------------------


def test_full_ranking_counts_ties_against_the_model_and_masks_seen_items() -> None:
    scores = np.array([[9.0, 5.0, 3.0, 3.0, 1.0, 3.0]])
    # target 3 ties with items 2 and 5; item 1 scores higher but was seen
    assert full_ranks(scores, [[1]], [[3]], mask_seen=True).tolist() == [2]
    assert full_ranks(scores, [[1]], [[3]], mask_seen=False).tolist() == [3]
    # basket target: the best-ranked of its items counts, other targets do not push it down
    assert full_ranks(scores, [[]], [[1, 4]], mask_seen=True).tolist() == [0]


def test_metrics_match_hand_computed_values() -> None:
    ranks = np.array([0, 4, 12, 30])
    metrics = metrics_from_ranks(ranks)
    assert metrics["hr@10"] == 0.5
    assert metrics["hr@20"] == 0.75
    assert metrics["ndcg@10"] == round((1 / np.log2(2) + 1 / np.log2(6)) / 4, 4)
    assert metrics["ndcg@20"] == round((1 + 1 / np.log2(6) + 1 / np.log2(14)) / 4, 4)
    assert metrics["mrr"] == round((1 + 1 / 5 + 1 / 13 + 1 / 31) / 4, 4)


def test_sampled_protocol_only_ranks_against_unseen_negatives() -> None:
    scores = np.zeros((1, 201))
    scores[0, 7] = 1.0  # the target
    scores[0, 3] = 5.0  # seen: never sampled
    ranks = sampled_ranks(scores, [[3]], [[7]], np.random.default_rng(0))
    assert ranks.tolist() == [0]


# --- side tables --------------------------------------------------------------------------


@pytest.mark.realdata
def test_groceries_side_tables_have_lift_repeat_days_and_no_invented_hours() -> None:
    log = read_events(SHARED / "groceries-dated" / "Groceries_dataset.csv")
    tables = compute(log)
    assert "hour:07" not in tables.popularity
    assert next(iter(tables.popularity["all"])) == "whole-milk"
    pairs = tables.cooccurrence["sausage"]
    assert all(count >= 3 for _, _, count in pairs)
    assert [lift for _, lift, _ in pairs] == sorted((lift for _, lift, _ in pairs), reverse=True)
    assert 0 < tables.repeat_days["whole-milk"] < 365


# --- baselines ----------------------------------------------------------------------------


def test_baselines_score_every_item_and_markov_follows_the_last_item() -> None:
    train = [[1, 2, 3], [1, 2, 4], [2, 3, 1], [4, 4, 2]]
    for baseline in (Popularity(), CoOccurrence(), Markov(), EASE(l2=1.0)):
        scores = baseline.fit(train, num_items=4).score([[1], [2, 4]])
        assert scores.shape == (2, 5)
    markov = Markov().fit(train, num_items=4)
    assert int(markov.score([[4, 1]])[0, 1:].argmax()) + 1 == 2


# --- training -----------------------------------------------------------------------------


def tiny_config(data: Path, out: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "data": str(data),
        "out": str(out),
        "dim": 16,
        "heads": 1,
        "layers": 1,
        "max_len": 12,
        "dropout": 0.1,
        "batch_size": 32,
        "lr": 5e-3,
        "epochs": 6,
        "patience": 3,
        "progress": False,
        "threads": 1,
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_short_training_run_beats_popularity_and_writes_the_run_folder(tmp_path: Path) -> None:
    data = chain_file(tmp_path / "chains.txt")
    result = train(tiny_config(data, tmp_path / "run"))
    for name in ("model.pt", "items.json", "run.json", "validation.png", "side_tables.msgpack"):
        assert (tmp_path / "run" / name).is_file(), name
    model, vocab, _ = load_run(tmp_path / "run")
    log = read_events(data)
    split = leave_one_out(log, vocab)
    ours = evaluate(model_scorer(model, vocab, 12), split.test, mask_seen=True, progress=False)
    pop = Popularity().fit(split.train_for_test, len(vocab))
    base = evaluate(pop.score, split.test, mask_seen=True, progress=False)
    assert ours.metrics["ndcg@10"] > 2 * base.metrics["ndcg@10"]
    assert result.best_valid["ndcg@10"] > 0


@pytest.mark.slow
def test_training_is_deterministic_and_resuming_gives_the_same_model(tmp_path: Path) -> None:
    import torch

    data = chain_file(tmp_path / "chains.txt", users=60)
    train(tiny_config(data, tmp_path / "a", epochs=4, patience=10))
    train(tiny_config(data, tmp_path / "b", epochs=2, patience=10))
    train(tiny_config(data, tmp_path / "b", epochs=4, patience=10, resume=True))
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_train_and_evaluate_commands_write_the_quality_json(tmp_path: Path) -> None:
    from shelfwise.cli import main

    data = chain_file(tmp_path / "chains.txt")
    run = tmp_path / "run"
    args = ["--dim", "16", "--heads", "1", "--layers", "1", "--max-len", "12", "--epochs", "3"]
    assert main(["train", "--data", str(data), "--out", str(run), "--no-progress", *args]) == 0
    out = tmp_path / "q.json"
    assert main(["evaluate", str(run), "--output", str(out), "--no-progress"]) == 0
    results = json.loads(out.read_text())
    assert "masked" in results["protocol"]
    assert set(results["metrics"]) >= {"shelfwise SeqRec", "popularity", "EASE"}
    for metrics in results["metrics"].values():
        assert set(metrics) == {"hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr"}


@pytest.mark.slow
def test_torchrun_with_two_processes_matches_single_process_quality(tmp_path: Path) -> None:
    data = chain_file(tmp_path / "chains.txt")
    flags = [
        "--data", str(data), "--dim", "16", "--heads", "1", "--layers", "1", "--max-len", "12",
        "--epochs", "6", "--patience", "3", "--lr", "5e-3", "--batch-size", "32",
        "--dropout", "0.1", "--no-progress", "--threads", "1",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", "29517", "-m", "shelfwise.training.train",
         *flags, "--out", str(tmp_path / "ddp")],
        check=True, env=env, capture_output=True, timeout=600,
    )  # fmt: skip
    single = train(tiny_config(data, tmp_path / "single"))
    ddp = json.loads((tmp_path / "ddp" / "run.json").read_text())["best_valid"]
    assert ddp["ndcg@10"] == pytest.approx(single.best_valid["ndcg@10"], abs=0.05)
    assert ddp["hr@10"] == pytest.approx(single.best_valid["hr@10"], abs=0.08)


# --- a data scientist's mistakes: a typed error, nothing written, one line at the CLI ---------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("dim", 65),  # not a multiple of heads=2
        ("lr", 0.0),
        ("lr", float("nan")),
        ("dropout", 1.0),
        ("cold_start", -0.1),
        ("epochs", 0),
        ("batch_size", 2.5),
    ],
)
def test_an_out_of_range_setting_is_refused_by_name(setting: str, value: object) -> None:
    with pytest.raises(InvalidTrainConfig, match=setting) as info:
        TrainConfig(data="chains.txt", out="run", heads=2, **{setting: value})  # type: ignore[arg-type]
    assert info.value.field == setting


def test_training_on_a_missing_data_file_says_so_and_writes_no_run_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidTrainingData, match="no such data file"):
        train(tiny_config(tmp_path / "missing.txt", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_data_file_that_is_not_text_is_invalid_training_data(tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_bytes(b"1 2 3\n\xff\xfe\x00\x81 binary\n")
    with pytest.raises(InvalidTrainingData, match=r"export\.txt") as info:
        read_events(path)
    assert info.value.path == str(path)


def test_a_malformed_categories_file_is_refused_before_training(tmp_path: Path) -> None:
    data = chain_file(tmp_path / "chains.txt", users=20)
    (tmp_path / "categories.json").write_text('{"1": "snacks",')
    config = tiny_config(data, tmp_path / "run", categories=str(tmp_path / "categories.json"))
    with pytest.raises(InvalidTrainingData, match=r"categories\.json: not valid JSON"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_too_little_data_to_validate_is_invalid_training_data(tmp_path: Path) -> None:
    data = tmp_path / "tiny.txt"
    data.write_text("1 1\n2 2\n")
    with pytest.raises(InvalidTrainingData, match="not enough data"):
        train(tiny_config(data, tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_an_unknown_on_error_mode_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="on_error"):
        read_events(chain_file(tmp_path / "chains.txt", users=5), on_error="ignore")  # type: ignore[arg-type]


def not_a_run(folder: Path, *, model: bytes | None = None, config: str | None = None) -> Path:
    """A folder that looks a little like a run folder (or is just empty)."""
    folder.mkdir()
    if model is not None:
        (folder / "model.pt").write_bytes(model)
    if config is not None:
        (folder / "config.json").write_text(config)
        (folder / "items.json").write_text('["a", "b"]')
    return folder


@pytest.mark.parametrize(
    ("contents", "says"),
    [
        ({}, "has no model.pt: is it a finished training run"),
        ({"model": b"junk", "config": "{"}, r"config\.json is not valid JSON"),
        ({"model": b"junk", "config": '{"data": "x"}'}, "not a run's configuration"),
        (
            {"model": b"junk", "config": '{"train": {"data": "x", "out": "y"}, "model": {}}'},
            "does not load as this run's model",
        ),
    ],
)
def test_export_of_a_folder_that_is_not_a_run_writes_no_bundle(
    tmp_path: Path, contents: dict[str, object], says: str
) -> None:
    from shelfwise.export.bundle import export_bundle

    run = not_a_run(tmp_path / "run", **contents)  # type: ignore[arg-type]
    with pytest.raises(InvalidRun, match=says) as info:
        export_bundle(run, tmp_path / "bundle")
    assert info.value.path == str(run)
    assert not (tmp_path / "bundle").exists()


def test_export_refuses_an_unknown_quantization_before_any_work(tmp_path: Path) -> None:
    from shelfwise.export.bundle import export_bundle

    with pytest.raises(InvalidInput, match="unknown quantization 'fp16'"):
        export_bundle(tmp_path / "no-such-run", tmp_path / "bundle", quantize="fp16")


def test_a_malformed_pem_signing_key_is_invalid_input(tmp_path: Path) -> None:
    from shelfwise.model.bundle import read_private_key

    key = tmp_path / "bundle.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
    with pytest.raises(InvalidInput, match=r"bundle\.key: not a usable PEM private key"):
        read_private_key(key)


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    from shelfwise.cli import main

    code = main(list(argv))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert "internal error" not in err and "Traceback" not in err
    return code, err


def test_back_office_commands_report_mistakes_in_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "seq.txt"
    bad.write_text("1 3 4\n2\n3 5 6\n")
    code, err = one_line_error(capsys, "train", "--data", str(bad), "--out", str(tmp_path / "r"))
    assert code == 2 and "seq.txt:2: expected" in err
    assert not (tmp_path / "r").exists()
    empty = not_a_run(tmp_path / "empty")
    for argv in (["evaluate", str(empty)], ["export", str(empty), "--out", str(tmp_path / "b")]):
        code, err = one_line_error(capsys, *argv)
        assert code == 2 and "is it a finished training run" in err
    key = tmp_path / "k.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    argv = ["export", str(empty), "--out", str(tmp_path / "b"), "--sign-key", str(key)]
    code, err = one_line_error(capsys, *argv)
    assert code == 2 and "not a usable PEM private key" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    "module_name",
    [
        "shelfwise.training.data",
        "shelfwise.training.model",
        "shelfwise.training.evaluate",
        "shelfwise.training.side_tables",
        "shelfwise.training.baselines",
        "shelfwise.training.train",
        "shelfwise.training.config",
        "shelfwise.export.bundle",
    ],
)
def test_back_office_docstring_examples_run(module_name: str) -> None:
    import doctest
    import importlib

    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(module_name), optionflags=flags)
    assert result.failed == 0


@pytest.mark.realdata
def test_real_files_read_with_the_published_counts() -> None:
    beauty = read_events(SHARED / "amazon-beauty" / "Beauty.txt")
    assert (len(beauty.events), len(beauty.users()), len(beauty.vocabulary())) == (
        198_502,
        22_363,
        12_101,
    )
    groceries = read_events(SHARED / "groceries-dated" / "Groceries_dataset.csv")
    assert (len(groceries.events), len(groceries.users())) == (38_765, 3_898)
    bakery = read_events(SHARED / "breadbasket" / "BreadBasket_DMS.csv")
    assert len(bakery.vocabulary()) == 94  # 95 names minus the NONE placeholder
    assert "hour:09" in compute(bakery).popularity
