"""The sortnet version string, in a module of its own so any module can read it without importing the package API.

Usage:
    from sortnet.version import __version__
"""
__version__ = "0.1.0"
