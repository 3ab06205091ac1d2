"""The Reader's parts read only what ReaderBase declares (or what they define themselves), and the Reader sets
everything ReaderBase declares."""
from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from app.reader import Reader
from app.reader.base import ReaderBase
from app.reader.compare import CompareMixin
from app.reader.losses import LossesMixin
from app.reader.patterns import PatternsMixin
from app.reader.projection import ProjectionMixin
from app.reader.sentences import SentencesMixin


def _self_reads(cls: type) -> set[str]:
    """Every ``self.<name>`` a class's own source reads."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    return {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "self"}


def _declared(cls: type) -> set[str]:
    names: set[str] = set()
    for k in cls.__mro__:
        if k is object:
            continue
        names |= set(vars(k)) | set(getattr(k, "__annotations__", {}))
    return names


@pytest.mark.parametrize("part", [CompareMixin, LossesMixin, PatternsMixin, ProjectionMixin, SentencesMixin])
def test_each_part_reads_only_what_its_base_declares(part):
    assert issubclass(part, ReaderBase)
    own = set(vars(part))
    undeclared = _self_reads(part) - own - _declared(ReaderBase)
    assert not undeclared, f"{part.__name__} reads {sorted(undeclared)}, which ReaderBase does not declare"


def test_the_reader_sets_every_declared_attribute_and_defines_every_declared_read(tmp_path):
    r = Reader(tmp_path)
    for name in ReaderBase.__annotations__:
        assert hasattr(r, name), name
    assert not getattr(Reader, "__abstractmethods__", None)
    assert {"layer_data", "clusters"} <= ReaderBase.__abstractmethods__
    with pytest.raises(TypeError):
        SentencesMixin(tmp_path)                     # a part alone is not a reader
    r._prefetcher.shutdown()


def test_a_part_reading_an_undeclared_attribute_is_caught():
    class Sloppy(ReaderBase):
        def f(self):
            return self._secret_cache
    assert _self_reads(Sloppy) - set(vars(Sloppy)) - _declared(ReaderBase) == {"_secret_cache"}
