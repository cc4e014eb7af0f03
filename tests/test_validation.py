"""The one validation system: signatures as schemas, ``@checked`` calls, mappings, and the YAML reader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest

from graphmeta.errors import ConfigError, GraphError, SpecError
from graphmeta.validation import (
    BeforeValidator,
    Ge,
    Le,
    MinLen,
    NonNegativeFloat,
    OneOf,
    PositiveInt,
    check_arguments,
    checked,
    defaults,
    describe,
    keywords_checked,
    load_yaml,
    parameters,
)


@checked
@dataclass(frozen=True)
class Section:
    steps: PositiveInt = 10
    rate: NonNegativeFloat = 0.1
    widths: tuple[PositiveInt, ...] = (4,)
    mode: Annotated[str, OneOf(("fast", "slow"))] = "fast"
    name: str | None = None


def _named(value: Any) -> Any:
    if value == "bad":
        raise GraphError("no spec is called 'bad'")
    return value


@checked(where=lambda arguments: f"node {arguments.get('label')!r}", error=SpecError)
def make_node(label: Annotated[str, MinLen(1)], size: PositiveInt = 1,
              spec: Annotated[Any, BeforeValidator(_named)] = None) -> tuple[str, int]:
    return label, size


# ------------------------------------------------------------------ @checked
def test_an_unknown_keyword_names_the_closest_one():
    with pytest.raises(ConfigError, match=r"unknown keyword 'stpes' in Section \(did you mean 'steps'\?\); "
                                          r"valid keywords: mode, name, rate, steps, widths"):
        Section(stpes=3)


@pytest.mark.parametrize("keywords, message", [
    ({"steps": 0}, r"Section\.steps must be an integer >= 1, got 0 \(int\)"),
    ({"steps": 2.0}, r"Section\.steps must be an integer >= 1, got 2\.0 \(float\)"),
    ({"steps": True}, r"Section\.steps must be an integer >= 1, got True \(bool\)"),
    ({"steps": "3"}, r"Section\.steps must be an integer >= 1, got '3' \(str\)"),
    ({"rate": -1}, r"Section\.rate must be a number >= 0, got -1 \(int\)"),
    ({"rate": float("inf")}, r"Section\.rate must be a finite number >= 0, got inf \(float\)"),
    ({"widths": [4, 0]}, r"Section\.widths must be a list of integers >= 1, got \[4, 0\] \(list\)"),
    ({"mode": "fats"}, r"Section\.mode must be one of fast, slow, got 'fats' \(str\) \(did you mean 'fast'\?\)"),
    ({"name": 3}, r"Section\.name must be a string or null, got 3 \(int\)"),
])
def test_a_wrong_value_names_the_key_the_type_and_the_value(keywords, message):
    with pytest.raises(ConfigError, match=message):
        Section(**keywords)


def test_values_arrive_converted():
    section = Section(steps=np.int64(3), rate=1, widths=[2, 3])
    assert section == Section(steps=3, rate=1.0, widths=(2, 3))
    assert type(section.steps) is int and type(section.rate) is float and section.widths == (2, 3)


def test_where_and_error_follow_the_call():
    assert make_node("a", 2) == ("a", 2)
    with pytest.raises(SpecError, match=r"node 'a': size must be an integer >= 1, got 0"):
        make_node("a", size=0)
    with pytest.raises(GraphError, match=r"unknown keyword 'sise' in node 'a' \(did you mean 'size'\?\)"):
        make_node("a", sise=2)
    with pytest.raises(ConfigError, match="label must be a non-empty string"):
        make_node("")


def test_a_converter_keeps_its_own_message():
    with pytest.raises(GraphError, match="^no spec is called 'bad'$"):
        make_node("a", spec="bad")


def test_python_still_reports_positional_mistakes():
    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        make_node()
    with pytest.raises(TypeError, match="multiple values"):
        make_node("a", label="b")
    with pytest.raises(TypeError, match="takes from 1 to 3 positional arguments but 4 were given"):
        make_node("a", 1, None, "surplus")


def test_keywords_checked_checks_the_names_only():
    @keywords_checked
    def add(name: str, *, size: int = 1) -> tuple[str, int]:
        return name, size

    assert add("a", size="not checked here") == ("a", "not checked here")
    with pytest.raises(ConfigError, match=r"unknown keyword 'sizes' in .*add\(\) \(did you mean 'size'\?\)"):
        add("a", sizes=2)


def test_a_signature_with_kwargs_cannot_be_checked():
    with pytest.raises(TypeError, match=r"takes \*args or \*\*kwargs"):
        @checked
        def loose(**options: Any) -> None:
            pass


# ----------------------------------------------------------- check_arguments
def test_check_arguments_names_keys_by_their_path():
    assert check_arguments(Section, {"steps": 3, "widths": [1]}, "train") == {"steps": 3, "widths": (1,)}
    with pytest.raises(ConfigError, match=r"unknown key 'stpes' in train \(did you mean 'steps'\?\)"):
        check_arguments(Section, {"stpes": 3}, "train")
    with pytest.raises(ConfigError, match=r"^run\.yaml: train\.rate must be a number >= 0, got -2"):
        check_arguments(Section, {"rate": -2}, "run.yaml: train")
    with pytest.raises(ConfigError, match="unknown key 'label'"):
        check_arguments(make_node, {"label": "a"}, exclude=["label"])


def test_parameters_and_defaults_come_from_the_signature():
    assert list(parameters(Section)) == ["steps", "rate", "widths", "mode", "name"]
    assert defaults(make_node) == {"size": 1, "spec": None}


@pytest.mark.parametrize("annotation, words", [
    (Annotated[int, Ge(0)] | None, "an integer >= 0 or null"),
    (Annotated[float, Ge(0), Le(1)], "a number >= 0 and <= 1"),
    (tuple[float, float], "a pair of numbers"),
    (tuple[Annotated[int, Ge(1)], ...], "a list of integers >= 1"),
    (dict[str, Any], "a mapping"),
    (Annotated[str, OneOf(["a", "b"])], "one of a, b"),
    (bool, "true or false"),
    (Path, "a Path"),
])
def test_describe(annotation, words):
    assert describe(annotation) == words


# ------------------------------------------------------------------ YAML
def test_load_yaml_refuses_a_repeated_key_naming_it_and_both_lines():
    text = "train:\n  steps: 3\n  outer_lr: 0.1\n  steps: 5\n"
    with pytest.raises(ConfigError, match=r"^run\.yaml: duplicate key 'steps' on line 4 \(first on line 2\)"):
        load_yaml(text, "run.yaml")
    with pytest.raises(GraphError, match="duplicate key 'a' on line 2"):
        load_yaml("{a: 1,\n a: 2}", "g.yaml", GraphError)


def test_load_yaml_reads_safely_and_keeps_merge_keys():
    assert load_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n") == {"base": {"x": 1, "y": 2},
                                                                            "other": {"x": 1, "y": 3}}
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_yaml("!!python/object/apply:os.system ['true']", "evil.yaml")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_yaml("a: [1, 2", "broken.yaml")


def test_load_yaml_reads_a_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\na: 2\n")
    with pytest.raises(ConfigError, match=f"{path}: duplicate key 'a'"):
        load_yaml(path)
