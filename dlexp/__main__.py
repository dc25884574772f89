from dlexp.cli.entry import main

main()
