"""``python -m splatnet.train`` / ``torchrun -m splatnet.train``: one training process."""

import sys

from splatnet.train.loop import main

sys.exit(main())
