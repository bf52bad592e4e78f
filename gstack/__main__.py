from gstack.cli import main

main()
