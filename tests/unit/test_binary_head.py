"""heads.BinaryHead: one logit or two, scored by P(label 1) or the raw class-1 logit. What methods
read of it (log-probabilities for rrr, the score's weight vector for cam-loss, the log-odds DFR
writes) agrees with the head's own score for every combination; a binary network has one logit
or two, nothing else; and the report names the score a binary run was ranked by."""

from __future__ import annotations

import itertools

import pytest
import torch

from spurspec.errors import ConfigError
from spurspec.training import models
from spurspec.training.models.heads import BINARY_HEADS, BINARY_SCORES, BinaryHead

HEADS = [BinaryHead(h, s) for h, s in itertools.product(BINARY_HEADS, BINARY_SCORES)]


@pytest.mark.parametrize("head", HEADS, ids=lambda h: f"{h.logits}-{h.score_by}")
def test_what_methods_read_agrees_with_the_score(head):
    torch.manual_seed(0)
    linear = torch.nn.Linear(5, head.out_features)
    x = torch.randn(7, 5, requires_grad=True)
    logits = linear(x)
    logits = logits[:, 0] if head.out_features == 1 else logits
    prob = head.prob(logits)
    torch.testing.assert_close(head.log_probs(logits).exp().sum(1), torch.ones(7))
    torch.testing.assert_close(head.log_probs(logits)[:, 1].exp(), prob)
    # The score ranks as its evidence; a probability score is the probability.
    assert torch.equal(torch.argsort(head.score(logits)), torch.argsort(head.evidence(logits)))
    if head.score_by == "probability":
        torch.testing.assert_close(head.score(logits), prob)
    # cam-loss's weight vector is the evidence's gradient in the pooled features.
    (grad,) = torch.autograd.grad(head.evidence(logits).sum(), x)
    torch.testing.assert_close(grad, head.evidence_weight(linear.weight).expand(7, 5))
    # DFR's refit: the head then gives the refit log-odds, and both scores rank by them.
    w, b = torch.randn(5), 0.3
    head.set_log_odds(linear, w, b)
    refit = linear(x.detach())
    refit = refit[:, 0] if head.out_features == 1 else refit
    torch.testing.assert_close(head.log_odds(refit), x.detach() @ w + b)
    torch.testing.assert_close(head.evidence(refit), x.detach() @ w + b)


def test_two_logits_rank_by_class_one_not_by_the_softmax():
    z = torch.tensor([[3.0, 2.0], [0.0, 1.5]])  # class 1 ranks the first higher
    study = BinaryHead("two-logit", "logit")
    assert study.score(z).tolist() == [2.0, 1.5]
    assert (study.prob(z)[1] > study.prob(z)[0]).item()  # the softmax orders them the other way


def test_a_binary_network_has_one_logit_or_two():
    assert models.build("small", 1, pixel=False)(torch.zeros(2, 1, 32, 32)).shape == (2,)
    assert models.build("small", 1, pixel=False, out_channels=2)(torch.zeros(2, 1, 32, 32)).shape == (2, 2)
    with pytest.raises(ConfigError, match="a binary model has one logit or two"):
        models.build("small", 1, pixel=False, out_channels=3)


def test_the_report_names_the_binary_score():
    from types import SimpleNamespace

    from spurspec.report.build import _binary_scores

    run = lambda g, **c: SimpleNamespace(granularity=g, config=c)  # noqa: E731
    assert _binary_scores([run("seg")]) == ""
    assert _binary_scores([run("binary")]) == ", binary models by P(label 1)"  # a run from before the setting
    assert "raw class-1 logit" in _binary_scores([run("binary", binary_score="logit"), run("seg")])
