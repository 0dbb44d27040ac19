"""The `evaluate` stage and paired comparisons of evaluated runs: above training (it scores a
run's model through `training.predict`), below probes and reports. The AUROC, bootstrap and SQL
maths it calls live in `spurspec.metrics`, below training."""
