from r1tune.cli import main

main()
