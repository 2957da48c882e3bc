import sys

from lspilot.cli import main

sys.exit(main())
