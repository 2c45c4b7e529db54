from ganforge.cli.main import main

main()
