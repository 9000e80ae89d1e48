"""``python -m dattavani.cli``: the ``dattavani`` command."""

import sys

from . import main

sys.exit(main())
