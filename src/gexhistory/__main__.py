from gexhistory.cli import main

main()
