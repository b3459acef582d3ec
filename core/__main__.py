from chute.core.cli import main

raise SystemExit(main())
