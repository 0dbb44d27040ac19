"""Counts in words (spurspec.text.plural, and the robust cells' counts built on it) and the
report's cell-size rule (spurspec.metrics.cells.small_cell), which the report and the terminal's
tables share: importable without matplotlib, so the command line can mark the same cells."""

import subprocess
import sys

import pytest

from spurspec.metrics.cells import MIN_CELL_IMAGES, cell_count, count_words, small_cell
from spurspec.text import plural


@pytest.mark.parametrize(("n", "word", "many", "expected"), [
    (0, "run", None, "0 runs"), (1, "run", None, "1 run"), (2, "run", None, "2 runs"),
    (1, "negative", None, "1 negative"), (3, "negative", None, "3 negatives"),
    (1, "box", "boxes", "1 box"), (2, "box", "boxes", "2 boxes"), (1000, "replicate", None, "1,000 replicates"),
])
def test_plural(n, word, many, expected):
    assert plural(n, word, many) == expected


def test_counts_in_words_agree_in_number():
    assert count_words(1, 2) == "3 robust test images: 1 positive, 2 negatives"
    assert count_words(1, 0) == "1 robust test image: 1 positive, 0 negatives"
    assert count_words(12, 1, "trap-test image") == "13 trap-test images: 12 positives, 1 negative"
    assert cell_count((1, 0), 1, "chest_tube") == "1 positive without chest_tube"
    assert cell_count((0, 1), 2, "chest_tube") == "2 negatives with chest_tube"


def test_the_cell_size_rule_is_either_class_under_the_minimum():
    assert MIN_CELL_IMAGES == 10
    assert small_cell(1, 2) and small_cell(9, 500) and small_cell(500, 9) and small_cell(0, 0)
    assert not small_cell(10, 10) and not small_cell(300, 40)
    assert small_cell(10, 10, min_images=11) and not small_cell(3, 3, min_images=0)
    assert not small_cell(None, 5)  # counts unknown: not judged


def test_the_rule_imports_without_matplotlib():
    code = "import sys, spurspec.metrics.cells, spurspec.text; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
