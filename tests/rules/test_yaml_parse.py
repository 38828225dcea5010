"""One parse for YAML blocks (rule tests, allowlists, minerwatch.yaml): the data and node tree of two parses."""

from __future__ import annotations

import pytest
import yaml

from minerwatch.errors import ConfigError
from minerwatch.yamlfile import compose_and_load, parse_yaml

DOCUMENTS = [
    "",
    "# only a comment\n",
    "- name: a\n  file: f.jsonl\n  expect: {matches: 2, alerts: 1}\n",
    "base: &b {x: 1, y: [1, 2]}\nuse: *b\nmerged: {<<: *b, y: 3}\n",
    "when: 2026-12-07T06:00:00Z\nday: 2026-12-07\nn: 0x1f\nf: 1.5e3\nyes: yes\nnull_: ~\nbin: !!binary aGk=\n",
    "set: !!set {a, b}\nordered: !!omap [{a: 1}, {b: 2}]\npairs: !!pairs [{a: 1}, {a: 2}]\n",
    "=: value key\nother: {=: 1, b: 2}\n",
    "list: &l [1, 2]\ncopy: *l\n",
    "text: |\n  two\n  lines\nfolded: >\n  one\n  line\n",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_data_and_nodes_are_those_of_safe_load_and_compose(text: str) -> None:
    data, node = compose_and_load(text)
    assert data == yaml.safe_load(text)
    assert type(data) is type(yaml.safe_load(text))
    expected = yaml.compose(text, Loader=yaml.SafeLoader)
    assert (node is None) == (expected is None)
    if node is not None:
        assert yaml.serialize(node) == yaml.serialize(expected)


def test_a_shared_anchor_is_one_object_as_with_safe_load() -> None:
    data, _ = compose_and_load("a: &x [1]\nb: *x\n")
    assert data["a"] is data["b"]


def test_a_recursive_alias_is_constructed_as_with_safe_load() -> None:
    data, node = compose_and_load("a: &x [1, *x]\n")
    assert data["a"][1] is data["a"]
    assert node is not None


@pytest.mark.parametrize(
    "text",
    ["a: [unclosed\n", "a: b: c\n", "--- 1\n--- 2\n", "t: !!timestamp not-a-date\n", "k: !custom x\n"],
)
def test_errors_are_those_of_safe_load(text: str) -> None:
    with pytest.raises(Exception) as ours:  # noqa: PT011 (PyYAML raises AttributeError for a bad !!timestamp)
        compose_and_load(text)
    with pytest.raises(Exception) as theirs:  # noqa: PT011
        yaml.compose(text, Loader=yaml.SafeLoader)
        yaml.safe_load(text)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


def test_parse_yaml_names_file_line_and_column() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_yaml("ok: 1\nbad: [\n", "allow.yaml")
    assert (exc.value.file, exc.value.line) == ("allow.yaml", 3)
    assert "invalid YAML" in exc.value.message
