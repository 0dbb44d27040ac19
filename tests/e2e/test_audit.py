"""`spurspec audit` and `spurspec export` through the real CLI. Outside models are plain networks
defined in tests/e2e/outside_models.py (not spurspec's code), exported with torch.onnx.export: the
tube reader is caught by the insertion probe and by occlusion's evidence mass, the tube-blind
model is not; the audit's metrics equal `evaluate --predictions` on its own scores; `compare` and
`report` read an audit beside a spurspec run; hostile model files are refused with one line, exit
2, nothing written; an exported run scores as its own predictions.parquet to 1e-5."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow.parquet as pq
import pytest

from spurspec.artefacts.layout import RunLayout
from tests.e2e import outside_models as om

pytestmark = [pytest.mark.e2e]

SYNTHETIC = ["ingest", "synthetic", "--n", "200", "--size", "32", "--seed", "0"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A synthetic dataset and the two outside models as ONNX files."""
    from typer.testing import CliRunner

    from spurspec.cli.main import app

    d = tmp_path_factory.mktemp("audit")
    result = CliRunner().invoke(app, [*SYNTHETIC, "--out", str(d / "ds")])
    assert result.exit_code == 0, result.output
    om.to_onnx(om.TubeReader(), d / "reader.onnx")
    om.to_onnx(om.TubeBlind(), d / "blind.onnx")
    return d


def _audit(cli, d, name, *extra, expect=0):
    return cli(["audit", d / f"{name}.onnx", "--dataset", d / "ds", "--out", d / f"a-{name}", "--bootstrap", "200",
                "--force", *extra], expect=expect)


def _rows(run, name):
    return {(r["images"], r["map"], r["metric"]): r for r in pq.read_table(RunLayout(run).probe(name)).to_pylist()}


def _test_scores(run):
    p = pq.read_table(RunLayout(run).predictions).to_pandas()
    return p[p.split == "test"].score.to_numpy()


def test_probes_catch_the_tube_reader_not_the_blind_model(cli, made):
    for name in ("reader", "blind"):
        result = _audit(cli, made, name, "--insert", "tube", "--attribution")
        assert "forward passes" in result.output or "forward passes" in getattr(result, "stderr", "")
    shift = {}
    mass = {}
    for name in ("reader", "blind"):
        run = made / f"a-{name}"
        # The shift in units of the model's own score spread: scale-free between two models.
        shift[name] = _rows(run, "insert-tube-away")[("all", None, "median_shift")]["value"] / _test_scores(run).std()
        rows = _rows(run, "attribution")
        spurious = rows[("spurious", "occlusion", "mass_spurious")]["value"]
        area = rows[("spurious", "occlusion", "area_spurious")]["value"]
        mass[name] = spurious / area  # evidence in the tube relative to an even spread
    assert shift["reader"] > 1.0 and abs(shift["blind"]) < 0.2, shift
    assert mass["reader"] > 2.5 and mass["blind"] < 1.5, mass


def test_audit_metrics_equal_evaluate_predictions(cli, made):
    _audit(cli, made, "reader")
    run = made / "a-reader"
    cli(["evaluate", "--predictions", RunLayout(run).predictions, "--dataset", made / "ds", "--out", made / "ev",
         "--bootstrap", "200"])

    def robust(path):
        rows = pq.read_table(path).to_pylist()
        return next(r for r in rows if r["metric"] == "robust_auroc" and r["attribute"] == "chest_tube")

    a, b = robust(RunLayout(run).metrics), robust(made / "ev" / "metrics.parquet")
    assert (a["value"], a["ci_low"], a["ci_high"]) == (b["value"], b["ci_low"], b["ci_high"])
    assert a["value"] < 0.5  # the tube reader fails where the tube points the wrong way
    config = (run / "config.toml").read_text()
    assert "model_sha256" in config and "[card]" in config


def test_compare_and_report_read_audits(cli, made):
    _audit(cli, made, "reader")
    _audit(cli, made, "blind")
    result = cli(["compare", made / "a-reader", made / "a-blind", "--bootstrap", "100"])
    assert "a-reader" in result.output or "audit" in result.output
    cli(["report", made / "a-reader", made / "a-blind", "--out", made / "report", "--force"])
    text = (made / "report" / "report.md").read_text()
    assert "sha256" in text.lower() and "reader.onnx" in text


HOSTILE = {"truncated": "not a valid ONNX model", "not_onnx": "not a valid ONNX model", "pickle_pt2": "unpickling",
           "pickle_onnx": "not a valid ONNX model", "external_data": "external files",
           "rank3": "rank 3", "nan": "not finite", "rgb_model": "the model's card says 3x32x32",
           "card_channels": "the card says channels 3", "card_index": "outside the output's 1 classes"}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_model_files_are_refused(cli, made, tmp_path, case):
    """Each refused with one `error:` line saying what differs, exit 2, and nothing written."""
    path, extra = _hostile(case, made, tmp_path)
    out = tmp_path / "out"
    result = cli(["audit", path, "--dataset", made / "ds", "--out", out, *extra], expect=2)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and HOSTILE[case] in errors[0], result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def _hostile(case, made, tmp_path):
    if case == "card_channels":
        return made / "reader.onnx", ["--channels", "3"]
    if case == "card_index":
        return made / "reader.onnx", ["--index", "1"]
    return _hostile_file(case, made, tmp_path), []


def _hostile_file(case, made, tmp_path):
    if case == "truncated":
        data = (made / "reader.onnx").read_bytes()
        path = tmp_path / "truncated.onnx"
        path.write_bytes(data[: len(data) // 2])
    elif case == "not_onnx":
        path = tmp_path / "model.onnx"
        path.write_text("this is not a model\n")
    elif case in ("pickle_pt2", "pickle_onnx"):  # never unpickled: refused by name, or as no protobuf
        path = tmp_path / ("model.pt2" if case == "pickle_pt2" else "model.onnx")
        path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    elif case == "external_data":  # weights in a second file, named by path inside the model
        import onnx

        proto = onnx.load(str(made / "reader.onnx"))
        path = tmp_path / "external.onnx"
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="weights.bin", size_threshold=0)
    elif case == "rank3":
        path = om.to_onnx(om.TubeReader(), tmp_path / "rank3.onnx", rank=3)
    elif case == "nan":
        path = om.to_onnx(om.NaNOut(), tmp_path / "nan.onnx")
    else:
        path = om.to_onnx(om.TubeReader(), tmp_path / "rgb.onnx", channels=3)
    return path


def test_export_round_trip(cli, made):
    """A trained spurspec run, exported, scores its test split as evaluate did, to 1e-5."""
    from spurspec.audit.model import OnnxModel

    d = made
    cli(["train", d / "ds", "--out", d / "run", "--epochs", "1", "--granularity", "binary", "--workers", "0"])
    cli(["evaluate", d / "run", "--bootstrap", "20"])
    cli(["export", d / "run", "--onnx", d / "run.onnx"])
    assert (d / "run.onnx.card.toml").exists()
    model = OnnxModel.open(d / "run.onnx")  # the card from the file's own metadata
    preds = pq.read_table(RunLayout(d / "run").predictions).to_pandas()
    test = preds[preds.split == "test"]

    _same_scores(model, d / "ds", test)
    # The export audits like any outside model, with no card given, and beside its own run the
    # paired differences on the same test images are zero: the same model, scored twice.
    cli(["audit", d / "run.onnx", "--dataset", d / "ds", "--out", d / "a-run", "--bootstrap", "20"])
    cli(["compare", d / "run", d / "a-run", "--bootstrap", "50", "--out", d / "paired.parquet"])
    diffs = [r for r in pq.read_table(d / "paired.parquet").to_pylist() if r["metric"].startswith("robust_auroc")]
    assert diffs and all(abs(r["diff"]) < 1e-9 for r in diffs), diffs


def test_evaluate_probe_and_export_say_an_audit_is_no_run(cli, made):
    _audit(cli, made, "blind")
    run = made / "a-blind"
    before = sorted(p.name for p in run.rglob("*"))
    for args in (["evaluate", run], ["probe", run, "--insert", "tube"], ["export", run, "--onnx", made / "x.onnx"]):
        result = cli(args, expect=2)
        assert "an audit of" in result.output and "blind.onnx" in result.output
    assert sorted(p.name for p in run.rglob("*")) == before and not (made / "x.onnx").exists()


def test_card_file_and_pixel_output(cli, made, tmp_path):
    """A pixel model (a probability map) read through a card file; an unknown card key is exit 2."""
    path = om.to_onnx(om.PixelReader(), tmp_path / "pixel.onnx")
    card = tmp_path / "card.toml"
    card.write_text('output = "pixel"\nsummary = "max"\nmean = 0.5\nstd = [0.5]\n')
    cli(["audit", path, "--dataset", made / "ds", "--out", tmp_path / "a", "--card", card, "--bootstrap", "50"])
    preds = pq.read_table(RunLayout(tmp_path / "a").predictions).to_pandas()
    assert set(preds.summary) == {"max"} and preds.score.between(0, 1).all()
    assert 'output = "pixel"' in (tmp_path / "a" / "config.toml").read_text()
    card.write_text('output = "pixel"\ncolour = "red"\n')
    result = cli(["audit", path, "--dataset", made / "ds", "--out", tmp_path / "b", "--card", card], expect=2)
    assert "unknown card key(s) colour" in result.output and not (tmp_path / "b").exists()


def _same_scores(model, ds_path, test):
    """The ONNX model's scores of the test images equal `test`'s (predictions.parquet) to 1e-5."""
    from spurspec.artefacts.dataset import Dataset

    ds = Dataset.open(ds_path)
    ids = ds.manifest.column("image_id").to_pylist()
    rows = np.asarray([ids.index(i) for i in test.image_id])
    scores = model.scores(model.normalise(np.asarray(ds.images()[rows])))
    assert np.max(np.abs(scores - test.score.to_numpy())) < 1e-5


def test_export_round_trip_pixel(cli, made):
    """A mask-trained run exports its P(region) map; the card's summary (the run's) scores it."""
    from spurspec.audit.model import OnnxModel

    d = made
    cli(["train", d / "ds", "--out", d / "seg", "--epochs", "1", "--granularity", "seg", "--workers", "0"])
    cli(["evaluate", d / "seg", "--bootstrap", "20"])
    cli(["export", d / "seg", "--onnx", d / "seg.onnx"])
    model = OnnxModel.open(d / "seg.onnx")
    assert model.card.output == "pixel"
    preds = pq.read_table(RunLayout(d / "seg").predictions).to_pandas()
    _same_scores(model, d / "ds", preds[(preds.split == "test") & (preds.summary == model.card.summary)])


def test_a_probe_that_cannot_run_leaves_nothing(cli, made, tmp_path):
    """A dataset that does not record the spurious region cannot be probed by removal: exit 2
    after scoring, and the half-made audit is removed; a bad probe setting stops before scoring."""
    from tests.e2e.tiny_dataset import make

    make(tmp_path / "tiny", n=40, size=32)
    out = tmp_path / "a"
    result = cli(["audit", made / "reader.onnx", "--dataset", tmp_path / "tiny", "--out", out, "--remove"], expect=2)
    assert len([x for x in result.output.splitlines() if x.startswith("error:")]) == 1 and not out.exists()
    result = cli(["audit", made / "reader.onnx", "--dataset", made / "ds", "--out", out, "--insert", "tube",
                  "--insert", "tube"], expect=2)
    assert "insert lists a feature twice" in result.output and not out.exists()
