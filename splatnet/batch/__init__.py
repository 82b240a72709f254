"""Fleet scale: reconstruct or evaluate many clips on the worker processes of this machine or on a
Ray cluster, resumably (``splatnet batch``; docs/cluster.md).

::

    from splatnet.batch import BatchSpec, run_batch
    result = run_batch(["clips/*"], "out", BatchSpec("reconstruct", format="ply"), workers=2)
    result.summary["ok"], result.summary["this_run"]["clips_per_minute"]

:func:`run_batch` plans against ``OUT_DIR/results.jsonl`` (complete outputs are skipped, checked
from the files), runs the rest on a pool (:mod:`.engines`: ``local`` processes or ``ray``
actors, each loading the model once), appends one line per clip as it finishes and writes
``summary.json`` / ``summary.md``. Names load on first use: importing this package imports no
torch.
"""

from splatnet._lazy import lazy_exports

_EXPORTS = {
    "BatchResult": "splatnet.batch.run",
    "BatchSpec": "splatnet.batch.job",
    "ClipTask": "splatnet.batch.job",
    "Worker": "splatnet.batch.work",
    "output_stems": "splatnet.batch.naming",
    "run_batch": "splatnet.batch.run",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
__all__ = sorted(_EXPORTS)
