import pytest

from models.corpora import CorpusError, load_brown, load_corpus, load_ptb, load_reviews_csv, load_text, load_yelp_json
from models.pos import UNIVERSAL_TAGS, brown_to_universal
from models.text import EOS


def test_ptb_keeps_tokens_and_appends_eos(fixtures):
    c = load_ptb(fixtures / "ptb")
    first = (fixtures / "ptb" / "ptb.train.txt").read_text().splitlines()[0].split()
    assert c.splits["train"][0] == first + [EOS]
    assert "N" in set(c.tokens("train")) and "<unk>" in set(c.tokens("train"))
    assert len(c.splits["valid"]) == 12 and len(c.splits["test"]) == 12


def test_brown_tags_and_splits_cover_every_genre(fixtures):
    c = load_brown(fixtures / "brown")
    assert c.task == "lm"
    assert all(c.splits[s] for s in ("train", "valid", "test"))
    assert c.pos_counts["the"].most_common(1)[0][0] == "DET"
    assert c.pos_counts["cat"].most_common(1)[0][0] == "NOUN"
    assert c.pos_counts["was"].most_common(1)[0][0] == "VERB"
    # 2 genres x 10 files: 8 train, 1 valid, 1 test per genre; 5 sentences a file
    assert [len(c.splits[s]) for s in ("train", "valid", "test")] == [80, 10, 10]
    assert load_brown(fixtures / "brown").splits == c.splits           # deterministic


@pytest.mark.parametrize("tag,universal", [("at", "DET"), ("np-tl", "NOUN"), ("ber*", "VERB"), ("nn$", "NOUN"),
                                           ("ppss+md", "PRON"), ("fw-nn", "X"), (".", "."), ("*", "ADV")])
def test_brown_to_universal(tag, universal):
    assert brown_to_universal(tag) == universal in UNIVERSAL_TAGS


def test_reviews_csv_labels_and_html(fixtures):
    c = load_reviews_csv(fixtures / "reviews.csv")
    assert c.task == "sentiment" and c.label_names == ["negative", "positive"]
    n = sum(len(c.splits[s]) for s in ("train", "valid", "test"))
    assert n == 80
    assert not any("<" in t for t in c.tokens("train"))
    assert set(c.labels["train"]) == {0, 1}


def test_yelp_json_drops_three_stars(fixtures):
    c = load_yelp_json(fixtures / "yelp.json")
    assert sum(len(c.splits[s]) for s in ("train", "valid", "test")) == 72   # 90 minus 18 three-star reviews


def test_plain_text_sentences(fixtures):
    c = load_text(fixtures / "novel.txt")
    assert all(seq[-1] == EOS for seq in c.splits["train"])
    assert len(c.splits["train"]) > len(c.splits["test"]) > 0


def test_detects_formats(fixtures):
    assert load_corpus(str(fixtures / "ptb")).source.endswith("ptb")
    assert load_corpus(str(fixtures / "yelp.json")).task == "sentiment"
    assert load_corpus(str(fixtures / "brown")).pos_counts


def test_builtin_demo_corpora_ship_with_the_repo():
    c = load_corpus("fine_foods")
    assert c.task == "sentiment" and len(c.splits["test"]) == 1000


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "nothing-here", "unknown corpus"),
    (lambda p: (p / "empty.txt").write_text("") and p / "empty.txt" or p / "empty.txt", "empty"),
    (lambda p: (p / "bin.txt").write_bytes(b"\x00\x01\x02" * 100) and p / "bin.txt", "binary"),
    (lambda p: (p / "x.csv").write_text("id,body\n1,hello\n") and p / "x.csv", "text column"),
    (lambda p: (p / "y.json").write_text('{"stars": 5}\n') and p / "y.json", "'text' and 'stars'"),
])
def test_bad_corpora_have_clear_messages(tmp_path, make, message):
    with pytest.raises(CorpusError, match=message):
        load_corpus(str(make(tmp_path)))


def test_empty_split_is_refused(tmp_path):
    d = tmp_path / "ptb"
    d.mkdir()
    (d / "ptb.train.txt").write_text("a b c\n")
    (d / "ptb.valid.txt").write_text("a b\n")
    (d / "ptb.test.txt").write_text("\n")
    with pytest.raises(CorpusError, match="empty test split"):
        load_ptb(d)
