import sys

from modeldeck.cli.main import main

sys.exit(main())
