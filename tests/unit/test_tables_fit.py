"""Tables that fit a terminal (spurspec.cli.common.print_rows) and p-values people can read
(spurspec.evaluation.paired.format_p): a file or pipe is 80 columns unless COLUMNS says otherwise,
a table too wide for that switches to its long format or to key | value lines, no cell ever ends
in "…", and a bootstrap p of 0 prints as below the bootstrap's resolution."""

import os
import re

import numpy as np
import pytest

from spurspec.cli import common
from spurspec.evaluation import paired
from spurspec.metrics import bootstrap

NUMBER = re.compile(r"[-+]?\d+\.\d+")


def printed(monkeypatch, columns: str | None, *args, **kwargs) -> str:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    with common.out.capture() as cap:
        common.print_rows(*args, **kwargs)
    return cap.get()


def wide_rows(n_columns: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"summary": s, **{f"robust AUROC attribute_{i}": f"{v:.3f} [{v - 0.1:.2f}, {v + 0.1:.2f}]"
                             for i, v in enumerate(rng.uniform(0.2, 0.8, n_columns))}} for s in ("mean", "max")]


def numbers(text: str) -> list[str]:
    return sorted(NUMBER.findall(text))


def test_a_pipe_is_80_columns_unless_columns_says_otherwise(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert not common.out.is_terminal  # pytest captures stdout: a pipe, whatever stderr is
    assert common.out.width == common.PIPE_COLUMNS == 80
    monkeypatch.setenv("COLUMNS", "200")  # read when printing, not when the module was imported
    assert common.out.width == 200


def test_a_table_that_fits_stays_wide(monkeypatch):
    rows = wide_rows(7)
    text = printed(monkeypatch, "250", "t", rows)
    header = next(line for line in text.splitlines() if "summary" in line)
    assert header.count("robust AUROC") == 7  # one row per summary, every attribute a column
    assert "…" not in text and numbers(text) == numbers(str(rows))


def test_a_wide_table_that_does_not_fit_switches_to_its_long_format(monkeypatch):
    rows = wide_rows(7)
    long = [{"summary": r["summary"], "metric": k, "value": v} for r in rows for k, v in r.items() if k != "summary"]
    text = printed(monkeypatch, None, "t", rows, long=[("per metric", long)])
    lines = text.splitlines()
    assert "…" not in text and max(len(line) for line in lines) <= 80
    assert "per metric" in lines and sum("robust AUROC attribute_3" in line for line in lines) == 2
    for row in long:  # every value whole on one line
        assert any(row["value"] in line for line in lines), row


def test_cells_wrap_at_spaces_but_no_word_is_cut(monkeypatch):
    rows = wide_rows(3)  # natural width ~ 90: fits 80 only with the intervals wrapped
    text = printed(monkeypatch, "80", "t", rows)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in text
    assert sum("robust AUROC" in line for line in lines) == 1  # still the wide table
    assert numbers(text) == numbers(str(rows))  # each number whole, on one line


def test_without_a_long_format_a_too_wide_table_prints_key_value_lines(monkeypatch):
    rows = [{f"column {i}": f"{i}.123456789{i}" for i in range(12)} for _ in range(2)]
    text = printed(monkeypatch, "60", "t", rows)
    assert max(len(line) for line in text.splitlines()) <= 60 and "…" not in text
    assert numbers(text) == numbers(str(rows))
    a_path = [{"run": "/" + "very-long-directory/" * 8 + "run", "AUROC": 0.5}]
    text = printed(monkeypatch, "60", "t", a_path)  # a word longer than the width folds, never "…"
    assert "…" not in text and "".join(re.findall(r"[\w/-]+", text)).count("very-long-directory") == 8


@pytest.mark.parametrize(("p", "n_boot", "shown"), [
    (0.0, 1000, "< 0.002"),  # no replicate crossed 0: below 2/B, the smallest two-sided p it can tell
    (0.0, 200, "< 0.01"),
    (0.0, 900, "< 0.0023"),  # 2/900 = 0.00222..., rounded up: never claims more than the bootstrap says
    (0.002, 1000, "0.002"),
    (0.066, 1000, "0.066"),
    (0.152, 1000, "0.15"),
    (1.0, 1000, "1.0"),
    (None, 1000, "—"),
    (3.1e-12, None, "3.1e-12"),  # DeLong's p, from a formula: no floor
])
def test_format_p(p, n_boot, shown):
    assert paired.format_p(p, n_boot) == shown


def test_a_p_of_zero_is_below_the_floor_and_the_floor_is_the_smallest_nonzero_p():
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    ids = np.arange(n).astype(str)
    a = paired.Scored(ids, bootstrap.Sample.from_ids(rng.normal(size=n), y, ids))
    b = paired.Scored(ids, bootstrap.Sample.from_ids(y * 3 + rng.normal(size=n), y, ids))
    d = next(x for x in paired.differences(a, b, n_boot=200, seed=0) if x.metric == "auroc")
    assert d.p_value == 0 and paired.format_p(d.p_value, d.n_boot) == "< 0.01"
    # p is 2 x a share of replicates: its steps are 2/B, so the smallest p above 0 is the floor
    assert paired.p_floor(200) == 2 / 200 and paired.p_floor(1) == 1.0


def test_one_attribute_gives_one_worst_subgroup_per_pair_two_give_three():
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 2, n)
    ids = np.arange(n).astype(str)
    tube = np.where(rng.random(n) < 0.8, y, 1 - y)
    marker = rng.integers(0, 2, n)

    def worst(attrs):
        s = paired.Scored(ids, bootstrap.Sample.from_ids(y + rng.normal(size=n), y, ids, attrs))
        keys = [(d.metric, d.attribute) for d in paired.differences(s, s, n_boot=20)]
        assert len(keys) == len(set(keys))
        return [a for m, a in keys if m == "worst_subgroup_auroc"]

    assert worst({"chest_tube": tube}) == ["chest_tube"]  # not also "over all attributes": the same number
    assert set(worst({"chest_tube": tube, "marker": marker})) == {"chest_tube", "marker", None}


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_stdout_piped_while_stderr_is_a_wide_terminal_is_80_columns(tmp_path):
    """`spurspec ... | cat` in a 200-column terminal: rich alone would take the terminal's width
    from stderr; a pipe counts as 80 columns."""
    import fcntl
    import struct
    import subprocess
    import sys
    import termios

    parent, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    code = ("from spurspec.cli.common import out, print_rows; print(out.width); "
            "print_rows('t', [{f'column {i}': f'{i}.123456789' for i in range(12)}])")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    try:
        res = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=child, env=env, text=True, timeout=60, check=True)
    finally:
        os.close(child)
        os.close(parent)
    lines = res.stdout.splitlines()
    assert lines[0] == "80"
    assert max(len(line) for line in lines) <= 80 and "…" not in res.stdout
