"""The settings of one training run (`spurspec train`): a frozen dataclass of defaults, each with
the reason for its value. Resolved as defaults < --config TOML < CLI flags and written to
RUN/config.toml, which is also what `--resume` and `predict_split` read back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spurspec.artefacts.layout import RunLayout
from spurspec.artefacts.run import RunRecord
from spurspec.config import build, resolve, to_dict
from spurspec.training.models import summaries

# Settings that may change when a run is resumed (they do not change what is learned per epoch).
RESUMABLE_CHANGES = ("epochs", "patience", "device", "workers", "epochs_this_run", "threads")
# The checkpoints a run keeps: the best by its selection metric, and the latest (for --resume).
CHECKPOINTS = ("best", "last")
# The valid values of TrainConfig's choice fields, here (torch-free) so the CLI lists them in --help.
LOSSES = ("ce", "ce+dice")
BALANCES = ("subsample", "subsample-once", "study", "pos-weight", "none")
SELECT_METRICS = ("auroc", "dice")
SCHEDULES = ("cosine", "constant")
DICES = ("positives", "study")
# The share of negatives `subsample-once` keeps: the study's p = 0.33 on chest films.
KEEP_NEGATIVES = 0.33
AUGMENTS = ("standard", "study", "standard-cpu", "none")
# Where `rrr` and `cam-loss` read a positive's annotated region: its mask or the box around it.
REGIONS = ("seg", "bbox")


@dataclass(frozen=True)
class TrainConfig:
    dataset: Path = Path("dataset")  # a dataset directory written by `spurspec ingest`
    out: Path = Path("run")  # the run directory this command writes
    # binary | bbox | seg | grid:K: how much the supervision says about *where* (the study's axis).
    granularity: str = "binary"
    # A named setting in spurspec.training.models.MODELS; "small" trains fast on CPUs (the demo).
    model: str = "small"
    # A named training method in spurspec.training.methods.METHODS; "erm" is the study's baseline.
    # A method's own settings below keep their flat names (config.toml keys); its card in
    # methods/__init__.py names them and their ranges.
    method: str = "erm"
    # The study trained up to 100 epochs; early stopping (patience) ends most runs well before.
    epochs: int = 30
    # The study used 16 at 512 px; 32 keeps CPU throughput up at the demo's 128 px.
    batch_size: int = 32
    lr: float = 5e-4  # Adam at 5e-4, as the study
    weight_decay: float = 0.0  # the study used none
    seed: int = 0  # seeds weights, augmentation, sampling and the mask budget
    # Images whose masks (or boxes) are kept for pixel training: an integer count, a fraction in
    # (0, 1], or unset for all. Positives outside the budget leave pixel training.
    mask_budget: int | float | None = None
    # The study's `sample_ratio` (training/data/budget.py): each training image, positive or
    # negative, kept with this probability after the negative subsampling, every kept image
    # keeping its mask; unset = all. One of this and mask_budget, not both.
    train_fraction: float | None = None
    # How a pixel model's probability map becomes an image score during validation (the study: mean).
    summary: str = summaries.DEFAULT
    # Pixel classes: auto = three (background / region of a negative image / region of a positive
    # image, the study's ISIC head) when negatives have masks, else two; two-class = negatives'
    # regions are background. The image score is always P(region of a positive image).
    head: str = "auto"
    # Image-label (binary) models. one-logit: one logit with binary cross-entropy; two-logit: two
    # logits with softmax cross-entropy, the study's ResNet-50 (models/heads.py BinaryHead).
    binary_head: str = "one-logit"
    # A binary model's image score: probability = P(label 1); logit = the raw logit of class 1,
    # which the study's evaluation ranked by (with two logits it ranks unlike the softmax).
    # Validation AUROC, evaluate, probes and the report all use this score.
    binary_score: str = "probability"
    # Input normalisation of the ImageNet-shaped models (resnet18, resnet50, study; `small` takes
    # the image in [-1, 1]): imagenet = ImageNet's per-channel mean/std (grey: 0.485 / 0.229);
    # study = ISIC's own mean/std on ISIC, as the study's loader did, imagenet's elsewhere.
    normalisation: str = "imagenet"
    # Boxes for `bbox`: one filled box around the union mask (the study) or one per component.
    box_mode: str = "union"
    # Pixel loss. ce: unweighted per-pixel cross-entropy (the study's; binary CE with two
    # classes). ce+dice adds a soft Dice of the positive class: small masks (a few % of the image)
    # swamp plain CE with background, and seg learned nothing in short CPU runs without it.
    loss: str = "ce+dice"
    # subsample: negatives drawn afresh each epoch to match the positives; subsample-once: each
    # negative kept once with p = KEEP_NEGATIVES; study: subsample-once on chest films, none on
    # ISIC (the study's code); pos-weight: weight positives by n_neg/n_pos; none.
    balance: str = "subsample"
    # Checkpoint selection metric; unset = the study's choice (dice for seg and grid:K, else auroc).
    select_metric: str | None = None
    # positives: Dice at P > 0.5, averaged over validation images whose target holds the positive
    # class. study: the study's (src/utils.py), per image on the argmax class map, averaged with
    # its nanmean: an empty target with nothing predicted is 0/0 and left out, a false positive on
    # a negative image is 0. Before issue 24, `study` scored that 0/0 image 1 (rewarding empty
    # maps); a run recorded with it still reads, and the name now means the study's definition.
    dice: str = "positives"
    # Epochs without improvement of the selection metric before stopping; 0 = never stop early.
    patience: int = 10
    schedule: str = "cosine"  # cosine: cosine decay over `epochs`; constant: the study's fixed rate
    device: str = "auto"  # auto = cuda if available else cpu; chosen once and passed around
    # Mixed precision on CUDA only (bf16 where supported, else fp16 + scaler). The study preset
    # sets false (the study trained in fp32); --amp or amp = true in a config file still wins.
    amp: bool = True
    workers: int | None = None  # data-loader processes; unset = 0 on CPU (compute uses every core), else min(8, CPUs - 1)
    # Compute threads; unset = OMP_NUM_THREADS if set, else the cores this process may use
    # (affinity, Slurm, cgroup quota; spurspec.runtime). Pin it for bit-identical reruns elsewhere.
    threads: int | None = None
    # standard: flip, affine, intensity on the batch (training/augment.py); study: the study's
    # albumentations list on the batch; standard-cpu: standard per image on the CPU; none.
    augment: str = "standard"
    # Encoder weights: "imagenet" (the model's standard ImageNet weights, fetched once into torch's
    # hub cache and read offline after that; see spurspec.training.models.pretrained), a local state-dict
    # file, or unset / "none" for random initialisation ("none" is how a TOML file or a pipeline
    # turns off a preset's weights, since TOML has no null).
    pretrained: str | Path | None = None
    # Stop after this many epochs in this invocation and continue later with --resume
    # (for time-limited cluster jobs); unset = train to the end.
    epochs_this_run: int | None = None
    # A named protocol from spurspec/presets/ (e.g. "study"), layered under the TOML and flags.
    preset: str | None = None
    # --method seg-ssl (methods/seg_ssl.py: FixMatch-style pseudo-labels from a mean teacher).
    # Teacher decay: Tarvainen & Valpola's 0.99 for short runs (0.999 suits 10k+ steps).
    ssl_teacher_decay: float = 0.99
    ssl_threshold: float = 0.95  # a pixel's pseudo-label counts when the teacher's confidence reaches this (FixMatch)
    ssl_weight: float = 1.0  # weight of an image without a mask against one with (FixMatch's lambda_u)
    ssl_rampup: int = 5  # epochs over which that weight rises as exp(-5 (1 - t)^2) (Laine & Aila; Tarvainen & Valpola)
    # No longer read (issue 24): pseudo-labels come from the teacher's confidence alone, so nothing
    # forces a share of a positive's pixels in (min) or caps it (max). Kept so the config.toml of a
    # run made before, or a file that sets them, still loads.
    ssl_min_share: float = 0.005
    ssl_max_share: float = 0.5
    # --method seg-spl (methods/seg_spl.py: pixel-level supervised contrastive loss, Wang et al. 2021).
    spl_weight: float = 0.1  # weight of the contrastive term beside the segmentation loss (Wang et al.'s 0.1)
    spl_temperature: float = 0.1  # Wang et al.'s
    spl_pixels: int = 256  # pixels sampled per class per batch as anchors (and each other's positives/negatives)
    # The spurious attribute groupdro and dfr form groups with ((label, attribute) pairs); unset =
    # the dataset's one spurious attribute (a dataset with several must name one).
    attribute: str | None = None
    # --method rrr / cam-loss (methods/rrr.py, cam_loss.py): the annotated region of a training positive
    # whose mask the budget keeps: its mask (seg) or the box around it (bbox, derive-boxes').
    region: str = "seg"
    # rrr: weight of the input-gradient penalty (Ross et al.'s lambda_1, which they set so the two
    # terms are of one size); spurspec's penalty is a mean over pixels, so its scale is its own.
    rrr_weight: float = 10.0
    cam_weight: float = 1.0  # cam-loss: weight of the outside share (in [0, 1]) beside the BCE
    dro_step: float = 0.01  # groupdro: step size eta of the group weights (Sagawa et al.'s 0.01)
    # jtt: epochs of the identification model (Liu et al.'s T, 1-2 on CelebA and MultiNLI) and the
    # weight of its errors in the second training (their lambda_up, 6-100; spurspec's choice 20).
    jtt_epochs: int = 2
    jtt_upweight: float = 20.0
    dfr_subsamples: int = 10  # dfr: balanced subsamples whose logistic-regression weights are averaged (Kirichenko et al.'s 10)
    # torch.compile the model (GPU runs; the first epoch pays the compile time). Binary models
    # only: with torch 2.13 the U-Net decoders' compiled backward fails (trainer.check refuses it).
    compile: bool = False


NO_WEIGHTS = "none"  # the `pretrained` value that means random initialisation


def pretrained_source(cfg: TrainConfig) -> str | Path | None:
    """The weights to load: None for random initialisation (unset or "none")."""
    return None if cfg.pretrained is None or str(cfg.pretrained) == NO_WEIGHTS else cfg.pretrained


# Where the run and its dataset live: not part of a run's identity (`--resume` compares the
# dataset's content instead), so a run directory can be copied elsewhere and resumed there.
LOCATIONS = ("out", "dataset")
# Settings that name files: `--resume` compares them as resolved paths, so `w.pt` and
# `/home/me/w.pt` (or `./w.pt`) are the same weights.
PATH_SETTINGS = ("pretrained",)


def same_setting(key: str, old: Any, new: Any) -> bool:
    """Whether a resumed run's setting equals the one it was trained with."""
    if old == new:
        return True
    if key in PATH_SETTINGS and isinstance(old, str | Path) and isinstance(new, str | Path):
        return Path(old).resolve() == Path(new).resolve()
    return False


def resolve_train_config(toml: Path | None, overrides: dict[str, Any], resume: bool) -> TrainConfig:
    """Defaults < TOML < flags. With `resume` and no TOML, the run's own resolved settings
    (RunRecord.settings: its preset is not applied again) are the base, so `--resume` needs no
    other flags and a run keeps what it was trained with when a preset gains a key."""
    layout = RunLayout(Path(overrides["out"]))
    if toml is not None or not (resume and layout.config.exists()):
        return resolve(TrainConfig, toml, overrides)
    values = to_dict(RunRecord.open(layout.root).settings(TrainConfig))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return build(TrainConfig, values, where=str(layout.config))
