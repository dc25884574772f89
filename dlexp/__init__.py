"""dlexp — a command-line laboratory for deep-learning fundamentals.

Importing the package is cheap on purpose: `dlexp --help` and `dlexp list` must not import torch.
"""

__version__ = "0.1.0"
