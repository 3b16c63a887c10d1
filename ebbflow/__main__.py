import sys

from ebbflow.cli import main

sys.exit(main())
