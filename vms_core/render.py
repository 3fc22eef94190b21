"""Human renderings of the transition table: text, Mermaid and Graphviz DOT."""

from __future__ import annotations

from collections.abc import Callable

from vms_core.states import TRANSITIONS, Action, State

FORMATS = ("text", "mermaid", "dot")


def _label(action: Action) -> str:
    return "(waiting)" if action is Action.NONE else str(action)


def _edges() -> list[tuple[State, Action, State]]:
    """Every table pair, states in declaration order, actions in declaration order."""
    return [
        (state, action, TRANSITIONS[(state, action)])
        for state in State
        for action in Action
        if (state, action) in TRANSITIONS
    ]


def render_text() -> str:
    """The table as ``vms states`` prints it (one line per state)."""
    lines = []
    for state in State:
        moves = [
            f"{_label(action)} -> {target}"
            for source, action, target in _edges()
            if source is state
        ]
        lines.append(f"{state.value:<14}  {',  '.join(moves)}\n")
    return "".join(lines)


def render_mermaid() -> str:
    """A Mermaid ``stateDiagram-v2``; waiting self-loops are left out as noise."""
    lines = ["stateDiagram-v2", f"    [*] --> {State.INITIAL}"]
    for source, action, target in _edges():
        if action is Action.NONE:
            continue
        lines.append(f"    {source} --> {target}: {action}")
    lines.append(f"    {State.DELETED} --> [*]")
    return "\n".join(lines) + "\n"


def render_dot() -> str:
    """A Graphviz digraph; transient states are drawn dashed."""
    lines = ["digraph lifecycle {", "    rankdir=LR;", "    node [shape=box, style=rounded];"]
    for state in State:
        style = ', style="rounded,dashed"' if state.is_transient else ""
        lines.append(f'    "{state}" [label="{state}"{style}];')
    for source, action, target in _edges():
        if action is Action.NONE:
            continue
        lines.append(f'    "{source}" -> "{target}" [label="{action}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[], str]] = {
    "text": render_text,
    "mermaid": render_mermaid,
    "dot": render_dot,
}


def render(fmt: str = "text") -> str:
    try:
        return RENDERERS[fmt]()
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}") from None
