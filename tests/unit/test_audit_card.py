"""The model card (spurspec.audit.card): layers override in order, every value is checked, and a
card survives its own TOML."""

from __future__ import annotations

import dataclasses

import pytest

from spurspec.audit import card as cards
from spurspec.errors import ConfigError, InputError


def test_later_layers_win_and_none_leaves_a_value():
    model = {"size": 64, "channels": 1, "output": "probability"}
    file = cards.parse('output = "pixel"\nsummary = "max"\nmean = 0.4\n', "card.toml")
    card = cards.combine(model, file, {"summary": "topk:5", "index": None}).check("here")
    assert (card.size, card.channels, card.output, card.summary, card.mean, card.index) == (
        64, 1, "pixel", "topk:5", (0.4,), 0)


def test_a_card_round_trips_through_its_toml():
    card = cards.Card(32, 3, (0.1, 0.2, 0.3), (0.5,), "logit", 1).check("here")
    assert cards.combine(cards.parse(card.to_toml(), "again")) == card


@pytest.mark.parametrize(("values", "words"), [
    ({"output": "softmax"}, "output 'softmax'"),
    ({"size": None}, "does not fix its size"),
    ({"mean": (0.1, 0.2)}, "mean must hold 1 or 1"),
    ({"std": (0.0,)}, "std must be > 0"),
    ({"mean": (float("nan"),)}, "finite"),
    ({"output": "pixel", "summary": "median"}, "summarising function"),
])
def test_bad_values_are_one_config_error(values, words):
    card = dataclasses.replace(cards.Card(size=32, channels=1), **values)
    with pytest.raises(ConfigError, match=words):
        card.check("card.toml")


@pytest.mark.parametrize(("text", "words"), [
    ("colour = 1", "unknown card key"), ("size = 1.5", "whole number"), ("mean = 'grey'", "number"),
    ("size = ", "not a valid card"), ("output = 3", "must be text"),
])
def test_bad_card_text_is_one_input_error(text, words):
    with pytest.raises(InputError, match=words):
        cards.parse(text, "card.toml")
