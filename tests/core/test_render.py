from __future__ import annotations

import re

import pytest

from vms_core import TRANSITIONS, Action
from vms_core.render import render, render_dot, render_mermaid, render_text

EXPECTED_TEXT = (
    "Initial         Clone -> Cloning,  Delete -> Deleting\n"
    "Cloning         (waiting) -> Cloning\n"
    "Starting        (waiting) -> Starting\n"
    "Running         Stop -> Stopping,  Suspend -> Suspending\n"
    "Stopping        (waiting) -> Stopping\n"
    "Stopped         Start -> Starting,  Stop -> Stopped,  Delete -> Deleting\n"
    "Suspending      (waiting) -> Suspending\n"
    "Suspended       Start -> Starting,  Suspend -> Suspended,  Delete -> Deleting\n"
    "Deleting        (waiting) -> Deleting\n"
    "Deleted         Clone -> Cloning\n"
    "ErrorUnknown    Delete -> Deleting\n"
)


def test_text_table_byte_for_byte() -> None:
    assert render_text() == EXPECTED_TEXT
    assert render("text") == EXPECTED_TEXT


def _non_waiting_edges() -> set[tuple[str, str, str]]:
    return {(str(s), str(a), str(t)) for (s, a), t in TRANSITIONS.items() if a is not Action.NONE}


def test_mermaid_has_every_edge_of_the_table_and_no_other() -> None:
    text = render_mermaid()
    assert text.startswith("stateDiagram-v2\n")
    edges = set(re.findall(r"^\s+(\w+) --> (\w+): (\w+)$", text, re.M))
    assert {(s, a, t) for s, t, a in edges} == _non_waiting_edges()


def test_dot_has_every_edge_of_the_table_and_no_other() -> None:
    text = render_dot()
    assert text.startswith("digraph lifecycle {") and text.rstrip().endswith("}")
    edges = set(re.findall(r'"(\w+)" -> "(\w+)" \[label="(\w+)"\]', text))
    assert {(s, a, t) for s, t, a in edges} == _non_waiting_edges()
    assert '"Cloning" [label="Cloning", style="rounded,dashed"]' in text


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="text, mermaid, dot"):
        render("svg")
