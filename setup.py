"""Build script for the one thing pyproject.toml cannot say: the optional C accelerator.

``twelvelabs_async._speedups`` parses embedding vectors straight from JSON text into float32
(see ``twelvelabs_async/types/_vector.py``). It is optional: without a C compiler the build
goes on without it and the package uses its pure-Python path, which gives identical values.
Set ``TWELVELABS_ASYNC_NO_EXTENSIONS=1`` to skip building it.
"""

import os

from setuptools import Extension, setup

extensions = []
if not os.environ.get("TWELVELABS_ASYNC_NO_EXTENSIONS"):
    extensions.append(
        Extension(
            "twelvelabs_async._speedups",
            sources=["twelvelabs_async/_speedups.c"],
            optional=True,  # a failed compile leaves the pure-Python path, not a failed install
        )
    )

setup(ext_modules=extensions)
