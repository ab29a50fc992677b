import sys

from evaluator_agent.cli.main import main

sys.exit(main())
