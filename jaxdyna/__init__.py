"""jaxdyna: Dyna-style model-based RL (SAC, Dyna, MBPO, MVE, STEVE) as one compiled JAX loop."""

__version__ = "0.1.0"
