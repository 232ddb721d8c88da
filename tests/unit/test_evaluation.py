"""Evaluation: metrics against hand-computed values, and the eval command's JSON on a tiny BEIR set."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from bench.cli import bench as cli
from bench.evaluation import mrr_at, ndcg_at, recall_at


def test_ndcg_recall_mrr_by_hand():
    relevant = {"d1": 1, "d3": 1}
    ranked = ["d2", "d1", "d4", "d3"]
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at(ranked, relevant, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(["d1", "d3"], relevant) == pytest.approx(1.0)
    assert ndcg_at(ranked, relevant, 1) == 0.0
    assert recall_at(ranked, relevant, 2) == 0.5 and recall_at(ranked, relevant, 100) == 1.0
    assert mrr_at(ranked, relevant) == 0.5 and mrr_at(["x"], relevant) == 0.0
    graded = {"a": 2, "b": 1}
    assert ndcg_at(["b", "a"], graded) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))


def write_beir(folder):
    docs = [
        ("d1", "Mainframes", "The pension mainframe could not export weekly award data."),
        ("d2", "Agreements", "The data sharing agreement took fourteen months of legal review."),
        ("d3", "Dashboards", "A crisis dashboard was built in three weeks for ministers."),
        ("d4", "Skills", "A skills taxonomy described 300 roles across the department."),
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in docs))
    queries = [
        ("q1", "mainframe export of pension awards"),
        ("q2", "legal review of a data sharing agreement"),
        ("q3", "unjudged query"),
    ]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps({"_id": i, "text": t}) for i, t in queries))
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")


def test_eval_command_json_shape_and_cache(tmp_path):
    write_beir(tmp_path)
    args = [
        "eval",
        "--corpus",
        str(tmp_path / "corpus.jsonl"),
        "--queries",
        str(tmp_path / "queries.jsonl"),
        "--qrels",
        str(tmp_path / "qrels.tsv"),
        "--index",
        str(tmp_path / "eval-index"),
        "--json",
    ]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"bm25", "dense", "hybrid"}
    for figures in data.values():
        assert {"ndcg@10", "recall@100", "mrr@10", "p50_ms", "p95_ms"} <= set(figures)
        assert figures["queries"] == 2  # only judged queries count
    assert data["bm25"]["ndcg@10"] == pytest.approx(1.0) and data["hybrid"]["mrr@10"] == pytest.approx(1.0)
    only = json.loads(CliRunner().invoke(cli, [*args, "--mode", "bm25"], catch_exceptions=False).output)
    assert set(only) == {"bm25"}


def test_eval_reports_bad_input_in_one_line(tmp_path):
    write_beir(tmp_path)
    (tmp_path / "qrels.tsv").write_text("")
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--corpus",
            str(tmp_path / "corpus.jsonl"),
            "--queries",
            str(tmp_path / "queries.jsonl"),
            "--qrels",
            str(tmp_path / "qrels.tsv"),
        ],
    )
    assert result.exit_code == 1 and "expected a header" in result.output and "Traceback" not in result.output


def test_a_document_with_neither_title_nor_text_is_left_out_and_said(tmp_path):
    write_beir(tmp_path)
    with (tmp_path / "corpus.jsonl").open("a", encoding="utf-8") as corpus:
        corpus.write("\n" + json.dumps({"_id": "blank", "title": "", "text": ""}) + "\n")
        corpus.write(json.dumps({"_id": "spaces", "title": "  ", "text": "\n"}) + "\n")
    result = CliRunner().invoke(
        cli,
        [
            "--index",
            str(tmp_path / "index"),
            "eval",
            "--corpus",
            str(tmp_path / "corpus.jsonl"),
            "--queries",
            str(tmp_path / "queries.jsonl"),
            "--qrels",
            str(tmp_path / "qrels.tsv"),
            "--json",
        ],
    )
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "2 document(s) with neither title nor text left out: blank, spaces" in result.stderr
    assert json.loads(result.stdout)["bm25"]["queries"] == 2


def test_the_relevance_command_measures_every_threshold(tmp_path):
    from bench.relevance import THRESHOLDS
    from tests.conftest import SAMPLE_ENTRIES

    write_beir(tmp_path)
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels.tsv").rename(tmp_path / "qrels" / "train.tsv")
    args = ["relevance", "--data", str(tmp_path), "--entries", str(SAMPLE_ENTRIES), "--work-dir", str(tmp_path / "w")]
    result = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["claims"] == 2 and data["relevant_in_top10"] == 2  # judged claims; each finds its document
    assert [row["threshold"] for row in data["rows"]] == list(THRESHOLDS)
    for column in [c for c in data["rows"][0] if c != "threshold"]:
        shares = [row[column] for row in data["rows"]]
        assert all(0 <= s <= 1 for s in shares) and shares == sorted(shares, reverse=True), column
    text = CliRunner().invoke(cli, args, catch_exceptions=False).output
    assert "threshold" in text and "nonsense" in text
