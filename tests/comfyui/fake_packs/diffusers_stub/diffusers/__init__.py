"""Stands in for the `diffusers` package (not in Debian) so the
WanVideoWrapper-shaped pack imports; tests put its parent folder on sys.path
only for the "WanVideoWrapper is importable" cases."""
__version__ = "0.0-distorch-test"
