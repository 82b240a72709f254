"""The shipped model's weights: package data read by ``splatnet.io.checkpoint.DEFAULT_MODEL``."""
