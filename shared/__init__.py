"""Code both sides use: configuration, models, errors and the dump/compress/store drivers."""
