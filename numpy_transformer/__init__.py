"""numpy_transformer: the Transformer with hand-written forward and backward passes in NumPy."""
__version__ = "0.1.0"
