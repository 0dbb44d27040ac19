"""The artefact contract: pyarrow schemas (schemas.py), directory layouts (layout.py), atomic
writes (io.py), provenance records (provenance.py) and whether an output is up to date with its
record (freshness.py), the preprocessed dataset arrays (dataset.py) and the one-writer-per-output
locks (locks.py). Nothing outside this package invents an artefact path or writes a table."""
