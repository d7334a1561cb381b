"""trainwise: measurements, not folklore, for batch size, learning rate, optimizer and data.

The core is framework-free PyTorch: :mod:`trainwise.noise` measures the gradient noise scale
(McCandlish et al. 2018), :mod:`trainwise.theory` holds its closed forms. Integrations,
plots and data pipelines are optional extras imported lazily.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
