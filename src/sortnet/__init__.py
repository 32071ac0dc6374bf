"""sortnet: a folder of photos or a famous dataset -> the best image classifier your machine can train."""
__version__ = "0.1.0"
