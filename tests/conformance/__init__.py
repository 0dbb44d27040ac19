"""The conformance suite of `--preset study` (issue 24): one file per row of the protocol table
(spurspec/presets/protocol.toml). A package, so its file names may repeat those of tests/unit."""
