"""The rnnvis command line: outputs, formats and bad input (exit 2, one clear line, nothing changed)."""
import json
import subprocess
import sys

import pytest

from app.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_presets_lists_the_papers_presets(capsys):
    code, out, _ = run(capsys, "presets")
    assert code == 0
    for name in ("lstm-small", "lstm-medium", "lstm-large", "gru-medium", "rnn-medium", "sentiment-gru",
                 "sentiment-lstm", "demo-lstm"):
        assert name in out


def test_sql_formats(capsys, tiny_store):
    code, out, _ = run(capsys, "--store", str(tiny_store), "sql",
                       "SELECT model_id, cell FROM models ORDER BY model_id", "--format", "json")
    assert code == 0 and json.loads(out) == [{"model_id": "tiny-gru", "cell": "gru"},
                                             {"model_id": "tiny-lstm", "cell": "lstm"}]
    code, out, _ = run(capsys, "--store", str(tiny_store), "sql", "SELECT count(*) AS n FROM vocab", "--format", "csv")
    assert code == 0 and out.splitlines()[0] == "n" and int(out.splitlines()[1]) > 0
    code, out, _ = run(capsys, "--store", str(tiny_store), "models")
    assert code == 0 and "tiny-lstm" in out and "tiny-gru" in out


@pytest.mark.parametrize("argv,message", [
    (["train", "--preset", "nope"], "unknown preset 'nope'"),
    (["train", "--preset", "demo-lstm", "--hidden-size", "0"], "hidden_size must be between 1 and 8192, got 0"),
    (["train", "--preset", "demo-lstm", "--epochs", "-1"], "epochs must be between 1 and 1000, got -1"),
    (["train", "--preset", "demo-lstm", "--corpus", "/no/such/corpus"], "unknown corpus"),
    (["analyze", "nope"], "unknown model 'nope'"),
    (["sql", "SELECT * FROM no_such_view"], "no_such_view"),
])
def test_bad_input_is_one_clear_line(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, "--store", str(tmp_path / "store"), *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "store" / "checkpoints").exists() or not any((tmp_path / "store" / "checkpoints").iterdir())


def test_corrupt_checkpoint_and_bad_csv(capsys, tmp_path):
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    (ck / "broken.pt").write_bytes(b"garbage")
    code, _, err = run(capsys, "--store", str(tmp_path), "analyze", "broken")
    assert code == 2 and "not a readable checkpoint" in err
    csv = tmp_path / "reviews.csv"
    csv.write_text("id,body\n1,nice\n")
    code, _, err = run(capsys, "--store", str(tmp_path), "train", "--preset", "demo-sentiment", "--corpus", str(csv))
    assert code == 2 and "text column" in err
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, _, err = run(capsys, "--store", str(tmp_path), "train", "--preset", "demo-lstm", "--corpus", str(empty))
    assert code == 2 and "empty" in err


def test_console_script_entry_point(tmp_path):
    """The installed `rnnvis` command (python -m app.cli here) exits 2 with a message, no traceback."""
    p = subprocess.run([sys.executable, "-m", "app.cli", "--store", str(tmp_path), "train", "--preset", "x"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "unknown preset" in p.stderr and "Traceback" not in p.stderr
