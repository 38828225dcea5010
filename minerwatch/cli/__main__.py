from minerwatch.cli.entry import main

main()
