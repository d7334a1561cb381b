"""Deprecated: the sweep's Hessian probe is :func:`trainwise.experiments.noise_probe.default_noise_measure`."""

from trainwise._deprecated import moved

__all__ = ["default_noise_measure"]

__getattr__ = moved(__name__, {"default_noise_measure": "trainwise.experiments.noise_probe",
                               "QUANTITIES": "trainwise.experiments.noise_probe"})
