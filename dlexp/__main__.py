from dlexp.entry import main

main()
