"""The shipped model's weights: package data read by ``splatnet.checkpoint.DEFAULT_MODEL``."""
