"""The clusters CSV of Explore (issue 25): every word's frequency is its count in the training split, ``<eos>`` too."""
from __future__ import annotations

from app.logic import explore
from app.reader import Reader
from models.text import EOS, Vocab


def test_sentence_ends_keep_their_count_in_the_vocabulary():
    v = Vocab.build(["a", "b", "<eos>", "a", "c", "<eos>", "b", "a", "<eos>"])
    assert v.freq[v.eos_id] == 3 and v.freq[v.index["a"]] == 3


def test_the_clusters_csv_gives_eos_its_training_frequency(app_store, fixtures):
    df = explore.clusters_csv(Reader(app_store), "tiny-lstm", 1, "h", 3)
    eos = df[(df["axis"] == "word") & (df["word"] == EOS)]
    assert len(eos) == 1, "the tiny LSTM clusters <eos> (every line ends with one)"
    lines = sum(1 for line in (fixtures / "ptb" / "ptb.train.txt").read_text().splitlines() if line.strip())
    assert int(eos["freq"].iloc[0]) == lines
