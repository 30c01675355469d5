"""``python -m marginkit.shared``: report what this machine offers to marginkit."""

from marginkit.shared.report import main

main()
