"""Reading torch weight files (``torch.save`` state dicts) without unpickling code or warnings.

``torch.load(weights_only=True)`` runs a restricted unpickler that builds tensors and plain
containers only. On a file pickled with a protocol other than 2 (``torch.save(...,
pickle_protocol=3)``, common for older or third-party weights) it prints a ``UserWarning`` that
the protocol "might not" be fully supported; that is noise: what it cannot read it refuses with
an exception, which callers turn into one ``FormatError`` line. That warning (and the one for a
TorchScript archive, which weights_only then refuses) is silenced here, deliberately and only
around this call, so the CLI's one-line rule holds.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from typing import Any

#: Messages of torch.load's warnings that a refusal or success already answers.
_SILENCED = (r"Detected pickle protocol \d+ in the checkpoint",
             r"'torch\.load' received a zip file that looks like a TorchScript archive")


def load_torch_weights(path: str | os.PathLike, *, mmap: bool | None = None) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``, without its warnings about the
    file's pickle protocol. ``mmap`` (default: whenever the file is a zip archive, the format
    ``torch.save`` writes since torch 1.6) maps tensors instead of reading them all."""
    import torch

    if mmap is None:
        mmap = zipfile.is_zipfile(path)
    with warnings.catch_warnings():
        for message in _SILENCED:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
