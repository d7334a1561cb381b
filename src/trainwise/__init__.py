"""trainwise: measurements, not folklore, for batch size, learning rate, optimizer and data.

The core is framework-free PyTorch: :mod:`trainwise.noise` measures the gradient noise scale
(McCandlish et al. 2018), :mod:`trainwise.theory` holds its closed forms. Integrations,
plots and data pipelines are optional extras imported lazily.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "measure_noise_scale", "NoiseScaleMonitor", "NoiseScaleResult"]


def __getattr__(name: str):
    # Lazy top-level shortcuts, so `import trainwise` stays light.
    if name in ("measure_noise_scale", "NoiseScaleMonitor", "NoiseScaleResult"):
        import trainwise.noise as noise

        return getattr(noise, name)
    raise AttributeError(f"module 'trainwise' has no attribute {name!r}")
