import sys

from featurekit.cli.main import main

sys.exit(main())
