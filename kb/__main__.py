from kb.cli import main

main("python -m kb")
