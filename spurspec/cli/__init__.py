"""The Typer command line: one module per command, each parsing options and calling one library
function. `main.py` assembles them and turns library errors into one-line messages."""
