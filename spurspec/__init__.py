"""spurspec: train medical-image classifiers at every spatial specificity and measure their
reliance on spurious features with robust AUROC. The library lives here; `spurspec.cli` is a
thin Typer layer over it."""

import os

__version__ = "0.1.0"

# Idle OpenMP threads sleep instead of spinning. With spinning (the default), two runs sharing two
# cores each burned the cores waiting for the other: 7-8x the time of running them in turn. Set
# here, before any stage imports torch (its OpenMP runtime reads this once, when it loads); a
# value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
