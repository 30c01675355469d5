def test_package_imports():
    import marginkit.mmsb  # noqa: F401
