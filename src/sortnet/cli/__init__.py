"""The `sortnet` command: one module per verb in this package, registered in one place (cli/main.py).

Each verb module has `register(subparsers)` (its arguments and help) and `run(args) -> exit status`,
which only parses and calls one API function. Heavy imports (torch) happen inside `run`, so
`sortnet --help` stays fast.

Usage:
    sortnet train photos/ --epochs 10
    python -m sortnet evaluate runs/photos/model.safetensors photos/
    from sortnet.cli import main; main(["models", "--json"])
"""
from sortnet.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
