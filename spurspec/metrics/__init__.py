"""The maths of metrics, below training: AUROC, robust AUROC per spurious attribute, within- and
worst-subgroup AUROC, AUPRC, sensitivity/specificity at a validation threshold, each with a
patient-level bootstrap interval, and the SQL that groups them. Reads and writes nothing itself;
the `evaluate` stage that runs them over a run is `spurspec.evaluation.evaluate`."""
