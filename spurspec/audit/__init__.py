"""Outside models: ONNX files with a card, audited on a dataset (`spurspec audit`), and spurspec
runs exported as ONNX files with their card (`spurspec export`)."""
