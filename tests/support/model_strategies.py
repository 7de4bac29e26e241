"""Hypothesis strategies that draw bodies a pydantic model accepts, read off the model itself.

Each field is drawn from its annotation and constraints (bounded ints, bounded strings, nullable
fields as ``None`` too, optional fields sometimes absent), so the property tests follow the models
as they change. ``overrides`` replaces the strategy of a field by name, to steer the draws towards
values the worker acts on (a known status, a path of the platform).
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from annotated_types import Ge, Le, Lt, MaxLen
from hypothesis import strategies as st
from pydantic import BaseModel

# Markdown, mentions, quotes and a few scripts: what a hostile or merely exotic body holds.
_ALPHABET = st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from("@~`*_[]()!<>#:/\\\"'\n")
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(_ALPHABET, max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)


def _bound(metadata: list[Any], kind: type, attribute: str, default: int, shift: int = 0) -> int:
    return next((int(getattr(m, attribute)) + shift for m in metadata if isinstance(m, kind)), default)


def _scalar(annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any]:
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low, high = _bound(metadata, Ge, "ge", -(2**63)), _bound(metadata, Lt, "lt", 2**63, -1)
        return st.integers(low, high) | st.integers(low, min(high, low + 1000))
    if annotation is float:
        low, high = _bound(metadata, Ge, "ge", -(10**9)), _bound(metadata, Le, "le", 10**9)
        return st.floats(low, high, allow_nan=False, allow_infinity=False) | st.integers(low, high)
    if annotation is str:
        size = min(next((m.max_length for m in metadata if isinstance(m, MaxLen)), 200), 200)
        return st.text(_ALPHABET, max_size=size)
    raise TypeError(f"no strategy for {annotation!r}")


def for_annotation(annotation: Any, metadata: list[Any], overrides: dict[str, Any]) -> st.SearchStrategy[Any]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return st.one_of([for_annotation(arg, metadata, overrides) for arg in get_args(annotation)])
    if annotation is type(None):
        return st.none()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return for_model(annotation, overrides)
    if origin is list:
        (item,) = get_args(annotation)
        return st.lists(for_annotation(item, [], overrides), max_size=4)
    if origin is dict:
        _, value = get_args(annotation)
        values = _JSON if value is Any else for_annotation(value, [], overrides)
        return st.dictionaries(st.text(max_size=10), values, max_size=3)
    if getattr(annotation, "__metadata__", None) is not None:  # Annotated[int, Field(...)]
        base, *extra = get_args(annotation)
        flat = [m for e in extra for m in getattr(e, "metadata", [e])]
        return for_annotation(base, flat, overrides)
    return _scalar(annotation, metadata)


@st.composite
def _drawn(draw: st.DrawFn, model: type[BaseModel], overrides: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if not info.is_required() and draw(st.integers(0, 4)) == 0:
            continue  # an optional field left out
        if name in overrides:
            body[name] = draw(overrides[name])
        else:
            body[name] = draw(for_annotation(info.annotation, list(info.metadata), overrides))
    if draw(st.booleans()):
        body.update(draw(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in body), _JSON, max_size=2)))
    return body


def for_model(model: type[BaseModel], overrides: dict[str, Any] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies (plain JSON values) that ``model`` accepts, unknown extra fields included."""
    return _drawn(model, overrides or {})
