"""landmarks: open, reproducible landmark recognition and retrieval."""
__version__ = "0.1.0"

# TensorFlow imported before triton (pulled in by torch) segfaults the process, even when torch loads triton
# lazily later; importing triton first, when it is installed, makes every later import order safe.
try:
    import triton  # noqa: F401
except ImportError:
    pass
