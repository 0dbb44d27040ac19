"""`spurspec theory` through the real CLI: table, plot, printed rows, overlap, bad input."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from spurspec.artefacts import schemas

pytestmark = pytest.mark.e2e

ARGS = ["theory", "--n", "256", "--y-shape", "12,12", "--s-shape", "2,8", "--samples", "400"]


def test_theory_writes_table_and_plot(cli, tmp_path):
    out = tmp_path / "th"
    result = cli([*ARGS, "--r", "1,16,256", "--overlap", "--p-ys", "0.45,0.05,0.05,0.45", "--p-ys", "0.25,0.25,0.25,0.25", "--out", out])
    assert "theory.png written" in result.stdout and "Var(X|Ỹ=1)" in result.stdout
    table = schemas.check(pq.read_table(out / "theory.parquet"), schemas.THEORY)
    assert table.num_rows == 2 * 2 * 3 * 2  # joints x overlap x r x measures
    rows = table.to_pylist()
    assert {r["r"] for r in rows} == {1, 16, 256} and {r["overlap"] for r in rows} == {False, True}
    mask_var = [r for r in rows if r["r"] == 256 and r["measure"] == "var_x" and not r["overlap"]]
    assert all(r["exact"] == pytest.approx(0.25) for r in mask_var)  # sigma^2 with full masks
    png = (out / "theory.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    again = cli([*ARGS, "--r", "1,16,256", "--overlap", "--p-ys", "0.45,0.05,0.05,0.45", "--p-ys", "0.25,0.25,0.25,0.25", "--out", out])
    assert "up to date" in again.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--r", "1,9"], "r=9"),
        (["--p-ys", "0.5,0.5"], "four numbers"),
        (["--n", "300"], "n=300"),
        (["--r", "x"], "comma-separated"),
    ],
)
def test_bad_input_is_one_clear_line(cli, tmp_path, extra, message):
    result = cli([*ARGS, *extra, "--out", tmp_path / "th"], expect=2)
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "th" / "theory.parquet").exists()
