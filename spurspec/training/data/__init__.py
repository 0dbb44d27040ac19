"""The data side of training: `rows` (the dataset of rows a loader reads, samplers, epoch rows),
`augment` (per-item and per-batch augmentation), `granularity` (a granularity's pixel targets)
and `budget` (which training positives keep their mask). Reads a dataset directory; writes
nothing but the box and grid masks `granularity.prepare` derives when they are missing."""
