"""Metrics of a run or of outside predictions: AUROC, robust AUROC per spurious attribute,
within-subgroup and worst-subgroup AUROC, AUPRC, sensitivity/specificity at a validation
threshold, each with a patient-level bootstrap interval. Entry point: `spurspec.metrics.evaluate`."""
