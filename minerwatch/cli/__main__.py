from minerwatch.cli.main import main

main()
