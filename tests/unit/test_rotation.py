"""A round-robin with a bounded number of keys per round (the polling fallback's turns)."""

from __future__ import annotations

import pytest

from bot.rotation import Rotation


def test_few_keys_are_all_taken_every_round() -> None:
    rotation: Rotation[str] = Rotation(batch=3)
    assert rotation.take(["b", "a"]) == ["a", "b"]
    assert rotation.take(["b", "a"]) == ["a", "b"]


def test_many_keys_are_taken_a_batch_at_a_time_and_wrap_around() -> None:
    rotation: Rotation[int] = Rotation(batch=2)
    keys = [5, 1, 4, 2, 3]
    assert [rotation.take(keys) for _ in range(4)] == [[1, 2], [3, 4], [5, 1], [2, 3]]


def test_keys_added_or_removed_between_rounds_neither_skip_nor_repeat_the_others() -> None:
    rotation: Rotation[int] = Rotation(batch=2)
    assert rotation.take([1, 2, 3, 4]) == [1, 2]
    assert rotation.take([0, 1, 3, 4, 5]) == [3, 4]  # 2 removed, 0 and 5 added
    assert rotation.take([0, 1, 3, 4, 5]) == [5, 0]


def test_it_remembers_when_each_key_was_looked_at_and_forgets_removed_keys() -> None:
    rotation: Rotation[str] = Rotation(batch=5)
    assert rotation.looked_at("a") is None
    rotation.mark("a", 100.0)
    rotation.mark("b", 200.0)
    assert rotation.looked_at("a") == 100.0
    rotation.take(["b"])
    assert rotation.looked_at("a") is None and rotation.looked_at("b") == 200.0


def test_a_batch_must_take_something() -> None:
    with pytest.raises(ValueError):
        Rotation(batch=0)
