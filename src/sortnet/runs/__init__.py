"""The run layer: prepare, fit, train, ensembles, pretrained runs; the conductors above the engines.

Engines (training/, transfer/, models/, data/) never import this package; compare/, nas/, labels/, the CLI and
the one-call API (sortnet.train / prepare / fit) sit on it.
"""
