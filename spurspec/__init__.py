"""spurspec: train medical-image classifiers at every spatial specificity and measure their
reliance on spurious features with robust AUROC. The library lives here; `spurspec.cli` is a
thin Typer layer over it."""

__version__ = "0.1.0"
