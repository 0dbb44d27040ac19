"""The artefact contract: pyarrow schemas (schemas.py), directory layouts (layout.py), atomic
writes (io.py), provenance records (provenance.py) and the preprocessed dataset arrays
(dataset.py). Nothing outside this package invents an artefact path or writes a table."""
