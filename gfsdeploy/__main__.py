from gfsdeploy.cli import main

raise SystemExit(main())
