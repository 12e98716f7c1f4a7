"""The CLI in-process (Typer's CliRunner, and `main` for exit codes) over the fake stack:
JSON shapes of the contract, usage errors, one-line errors and their exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ragapp.cli import cli, main


def run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_ingest_status_retrieve_ask_json_shapes(docs: Path) -> None:
    report = json.loads(run("ingest", str(docs), "--json").stdout)
    assert {"added", "updated", "removed", "unchanged", "failed", "chunks", "seconds"} <= set(
        report
    )
    assert (report["added"], report["failed"]) == (3, [])
    status = json.loads(run("status", "--json").stdout)
    assert status == {
        "documents": 3,
        "chunks": report["chunks"],
        "embedding_model": "fake-hash-64",
        "llm": "fake:bundled",
        "store": "memory://unit",
        "missing": {
            "unrecorded_chunks": 0,
            "files_without_windows": 0,
            "chunks_without_windows": 0,
        },
    }
    results = json.loads(run("retrieve", "membership fee", "-k", "2", "--json").stdout)["results"]
    assert len(results) == 2 and set(results[0]) == {"source", "page", "score", "text"}
    assert Path(results[0]["source"]).name == "fees.md"
    answer = json.loads(run("ask", "What is the membership fee?", "--json").stdout)
    assert set(answer) >= {"answer", "refused", "sources", "timings"}
    assert answer["answer"].endswith("[1]") and "forty-two" in answer["answer"]
    assert answer["sources"][0]["n"] == 1 and not answer["refused"]


def test_batch_retrieve_keeps_order(docs: Path, tmp_path: Path) -> None:
    run("ingest", str(docs))
    batch = tmp_path / "q.jsonl"
    batch.write_text('{"question": "board meeting", "id": 1}\n\n{"question": "harbour"}\n')
    lines = [json.loads(x) for x in run("retrieve", "--batch", str(batch)).stdout.splitlines()]
    assert [x["question"] for x in lines] == ["board meeting", "harbour"]
    assert Path(lines[1]["results"][0]["source"]).name == "notes.txt"


def test_sources_remove_reset(docs: Path) -> None:
    run("ingest", str(docs))
    listed = json.loads(run("sources", "--json").stdout)["sources"]
    assert sorted(Path(s["path"]).name for s in listed) == ["board.txt", "fees.md", "notes.txt"]
    removed = json.loads(run("remove", str(docs / "sub"), "--json").stdout)
    assert [Path(p).name for p in removed["removed"]] == ["board.txt"] and removed["chunks"] == 1
    result = run("reset", "--yes")
    assert "collection 'default' deleted" in result.stderr
    assert json.loads(run("status", "--json").stdout)["chunks"] == 0


def test_dry_run_changes_nothing(docs: Path) -> None:
    plan = json.loads(run("ingest", str(docs), "--dry-run", "--json").stdout)
    assert plan["dry_run"] is True and plan["added"] == 3
    assert json.loads(run("status", "--json").stdout)["documents"] == 0


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(capsys, "retrieve")
    assert code == 2 and "give either a QUESTION or --batch FILE" in err
    code, _, err = run_main(capsys, "ask", "q", "-k", "0")
    assert code == 2
    code, _, err = run_main(capsys, "no-such-command")
    assert code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingset", "x"], "No such command 'ingset'. Did you mean 'ingest'?"),
        (["ask", "q", "-k", "abc"], "Invalid value for '-k' / '--top-k'"),
        (["ask", "q", "-k", "500"], "less than or equal to 100"),
        (["--bogus"], "No such option: --bogus"),
        (["ask"], "Missing argument 'QUESTION'"),
        (["ask", ""], "the question is empty"),
        (["ask", "   "], "the question is empty"),
        (["ingest", "/no/such/folder"], "'/no/such/folder' does not exist"),
    ],
)
def test_each_usage_error_is_clicks_message_and_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    """Through the real entry point: typer bundles its own click, so these must not be
    reported as internal errors."""
    code, out, err = run_main(capsys, *args)
    assert code == 2 and out == "", err
    assert message in " ".join(err.split()) and "unexpected" not in err


def test_bare_ragapp_prints_help_and_no_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys)
    assert code == 2 and "Usage: ragapp" in out + err and "error" not in (out + err).lower()


def test_settings_errors_name_their_origin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RAGAPP_TOP_K", "abc")
    code, _, err = run_main(capsys, "status")
    assert code == 1 and "invalid setting top_k (from RAGAPP_TOP_K='abc')" in err
    monkeypatch.delenv("RAGAPP_TOP_K")
    config = tmp_path / "ragapp.toml"
    config.write_text("chunk_sise = 300\n")
    code, _, err = run_main(capsys, "--config", str(config), "status")
    assert code == 1
    assert f"unknown setting chunk_sise (in {config}); did you mean chunk_size?" in err


def test_declining_reset_says_so_and_deletes_nothing(docs: Path) -> None:
    run("ingest", str(docs))
    res = CliRunner().invoke(cli, ["reset"], input="n\n", catch_exceptions=False)
    assert res.exit_code == 0 and "kept: nothing deleted" in res.stderr
    assert json.loads(run("status", "--json").stdout)["documents"] == 3


def test_chat_commands_are_not_questions(docs: Path) -> None:
    run("ingest", str(docs))
    said = "/help\n/sources\nWhat is the membership fee?\n/sources\n/reset\n/bogus\n/exit\n"
    res = CliRunner().invoke(cli, ["chat"], input=said, catch_exceptions=False)
    assert res.exit_code == 0, res.stderr
    assert "/reset    forget the conversation" in res.stdout
    assert "no sources yet" in res.stdout
    assert res.stdout.count("forty-two") == 1  # one question reached the LLM
    assert res.stdout.count("Sources") == 2  # after the answer, and for /sources
    assert "conversation cleared" in res.stdout
    assert "unknown command /bogus (/help lists them)" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "anything"], "collection 'default' is empty: run `ragapp ingest PATH` first"),
        (["--collection", "x", "status"], "invalid setting collection"),
        (["remove", "/nowhere"], "nothing ingested under /nowhere"),
    ],
)
def test_errors_are_one_line_with_exit_1(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run_main(capsys, *args)
    assert code == 1 and out == ""
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_partial_failure_exits_3(capsys: pytest.CaptureFixture[str], docs: Path) -> None:
    (docs / "empty.txt").write_text("")
    code, out, _ = run_main(capsys, "ingest", str(docs), "--json")
    report = json.loads(out)
    assert code == 3 and report["added"] == 3
    assert [(Path(f["path"]).name, f["reason"]) for f in report["failed"]] == [
        ("empty.txt", "empty file")
    ]


def test_path_filter_without_a_match(capsys: pytest.CaptureFixture[str], docs: Path) -> None:
    run("ingest", str(docs))
    code, _, err = run_main(capsys, "retrieve", "fee", "--path", "*.pdf")
    assert code == 1 and "no ingested file matches --path *.pdf" in err


def test_status_reports_missing_windows_and_backfill_makes_them(
    capsys: pytest.CaptureFixture[str], docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (docs / "long.md").write_text("# Long\n\n" + " ".join(f"word{i}" for i in range(200)))
    monkeypatch.setenv("RAGAPP_WINDOW_CHARS", "0")  # an earlier ragapp, or windows off
    assert run("ingest", str(docs), "--json").exit_code == 0
    monkeypatch.setenv("RAGAPP_WINDOW_CHARS", "300")
    missing = json.loads(run("status", "--json").stdout)["missing"]
    assert missing["files_without_windows"] == 4 and missing["fix"] == "run `ragapp backfill`"
    code, _, err = run_main(capsys, "status")
    assert code == 0 and "4 files" in err and "have no window vectors: run `ragapp backfill`" in err
    made = json.loads(run("backfill", "--json").stdout)
    assert (made["windowed_files"], made["recorded_files"]) == (4, 0) and made["windows"] >= 5
    assert "fix" not in made["missing"]
    assert "fix" not in json.loads(run("status", "--json").stdout)["missing"]
