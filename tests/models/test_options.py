"""Settings are declared once (models/options.py) and the command line's flags, the Jobs form's fields, the checks
and docs/options.md all follow that declaration: a setting added there appears in all four."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from analytics import options_doc
from analytics.pipeline import AnalysisOptions
from app.cli.main import build_parser
from models.config import ModelConfig, TrainConfig
from models.options import ConfigError, check, declared, form_fields, option, options_table
from workers.errors import JobValidationError
from workers.planning import FORM_FIELDS, coerce


def _flags(parser: argparse.ArgumentParser, *command: str) -> set[str]:
    """The dests of the options of a subcommand, as argparse built them."""
    for word in command:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return {a.dest for a in parser._actions if a.option_strings and a.dest != "help"}


def _offered(*classes) -> set[str]:
    return {d.name for cls in classes for d in declared(cls) if d.option.offered}


def _out_of_range(d):
    """A value of setting ``d`` outside its range or choices."""
    if d.option.choices:
        return "no-such-choice"
    return d.option.high * 2 + 1 if d.option.high is not None else d.option.low - 1


def _documented(cls) -> set[str]:
    return {line.split("`")[1] for line in options_table(cls).splitlines()[2:]}


def test_training_settings_are_flags_form_fields_checks_and_docs():
    declared_names = _offered(ModelConfig, TrainConfig)
    parser = build_parser(["train", "submit"])
    own = {"preset", "model_id", "name", "corpus", "resume", "analyze"}
    assert _flags(parser, "train") - own - _offered(AnalysisOptions) == declared_names
    assert _flags(parser, "jobs", "submit") - own - {"format", "wait"} - _offered(AnalysisOptions) == declared_names
    assert set(FORM_FIELDS) == declared_names
    for cls in (ModelConfig, TrainConfig, AnalysisOptions):
        assert _documented(cls) == {f.name for f in dataclasses.fields(cls)}
        for d in declared(cls):
            if d.option.choices or d.option.low is not None:
                with pytest.raises(ConfigError, match=f"^{d.name} must be"):
                    check(dataclasses.replace(cls(), **{d.name: _out_of_range(d)}))
    for name in declared_names:                      # the form's check says the same
        with pytest.raises(JobValidationError) as e:
            coerce(name, _out_of_range(next(d for d in declared(TrainConfig) + declared(ModelConfig)
                                            if d.name == name)))
        assert name in e.value.errors


def test_analysis_options_are_flags_checks_and_docs():
    parser = build_parser(["analyze"])
    assert _flags(parser, "analyze") == _offered(AnalysisOptions)
    assert _flags(build_parser(["jobs", "analyze"]), "jobs", "analyze") - {"wait", "corpus", "format"} \
        == _offered(AnalysisOptions)
    with pytest.raises(ValueError, match="top_words must be at least 1, got 0"):
        AnalysisOptions(top_words=0).validate()


@dataclasses.dataclass
class Toy:
    widgets: int = option(3, "how many widgets", low=1, high=9, label="Widgets (count)")
    colour: str = option("red", "their colour", choices=("red", "blue"))
    hidden: float = option(0.5, "not the user's", low=0.0, high=1.0, offered=False)


def test_a_new_setting_appears_in_all_four():
    """A throwaway config declared the same way gets a flag, a form field, a check and a docs row."""
    p = argparse.ArgumentParser()
    from models.options import add_flags
    assert add_flags(p, Toy) == ["widgets", "colour"]
    assert p.parse_args(["--widgets", "4", "--colour", "blue"]) == argparse.Namespace(widgets=4, colour="blue")
    with pytest.raises(SystemExit):
        p.parse_args(["--colour", "green"])
    fields = form_fields(Toy)
    assert list(fields) == ["widgets", "colour"] and (fields["widgets"].low, fields["widgets"].high) == (1, 9)
    assert fields["widgets"].label == "Widgets (count)" and fields["colour"].choices == ("red", "blue")
    with pytest.raises(ConfigError, match="widgets must be between 1 and 9, got 10"):
        check(Toy(widgets=10))
    with pytest.raises(ConfigError, match="widgets must be a whole number, got 2.5"):
        check(Toy(widgets=2.5))
    with pytest.raises(ConfigError, match="colour must be one of red, blue, got 'green'"):
        check(Toy(colour="green"))
    check(Toy())
    assert "| `widgets` | `--widgets` | int | `3` | 1 to 9 | how many widgets |" in options_table(Toy)
    assert "| `hidden` | no |" in options_table(Toy)


def test_an_undeclared_setting_is_an_error():
    @dataclasses.dataclass
    class Loose:
        widgets: int = 3
    with pytest.raises(TypeError, match="Loose.widgets is not declared"):
        form_fields(Loose)


def test_docs_options_md_is_up_to_date():
    assert options_doc.DOC.read_text(encoding="utf-8") == options_doc.render(), \
        "docs/options.md is stale: run python -m analytics.options_doc"
    assert options_doc.main(["--check"]) == 0
