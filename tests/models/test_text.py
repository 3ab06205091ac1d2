import pytest

from models.text import EOS, PAD, UNK, Vocab, normalize, tokenize


def test_tokenize_keeps_contractions_and_drops_html():
    assert tokenize("I don't like it.<br /><br />Atlanta's term-end -- 1,000 times...") == [
        "I", "don't", "like", "it", ".", "Atlanta's", "term-end", "--", "1,000", "times", "..."]


def test_tokenize_escapes_nothing_and_splits_html_entities():
    assert tokenize("5 &gt; 3 <script>x</script>") == ["5", ">", "3", "x"]


@pytest.mark.parametrize("raw,norm", [("The", "the"), ("1,000", "N"), ("3.5", "N"), ("1960s", "N"), ("N", "N"),
                                      ("<unk>", "<unk>"), ("``", '"'), ("''", '"')])
def test_normalize(raw, norm):
    assert normalize(raw) == norm


def test_vocab_build_encode_decode_roundtrip():
    toks = ["b", "a", "a", "c", "c", "c", "d"]
    v = Vocab.build(toks, size=5)
    assert v.words[:3] == [PAD, UNK, EOS]
    assert v.words[3:] == ["c", "a"]            # most frequent first, ties alphabetical
    assert v.freq[v.unk_id] == 2                 # b and d fell out
    assert v.encode(["C", "a", "zzz"]) == [3, 4, v.unk_id]
    assert v.decode([3, 4]) == ["c", "a"]
    assert Vocab.from_dict(v.to_dict()).words == v.words


def test_vocab_rejects_empty_and_tiny():
    with pytest.raises(ValueError, match="empty"):
        Vocab.build([], size=10)
    with pytest.raises(ValueError, match="greater than"):
        Vocab.build(["a"], size=2)
