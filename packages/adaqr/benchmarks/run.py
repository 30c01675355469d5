"""Benchmarks of marginkit-adaqr (see the package README)."""

if __name__ == "__main__":
    from marginkit.adaqr.bench import main

    main()
