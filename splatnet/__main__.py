import sys

from splatnet.cli import main

sys.exit(main())
