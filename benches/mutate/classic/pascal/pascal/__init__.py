"""Pascal's triangle.

`_version.py` is written by the build backend (setuptools_scm style) and is
ignored by git, as in a checkout after `pip install -e .`.
"""

from ._version import __version__
from .triangle import pascal

__all__ = ["pascal", "__version__"]
