"""The test suite: a package, so every module imports its shared helpers one way
(``from tests.helpers import ...``)."""
