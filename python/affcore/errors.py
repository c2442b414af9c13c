"""Exceptions raised by affcore. All derive from :class:`AffcoreError`; most also derive
from the built-in exception a caller would expect (``ValueError``, ``FileNotFoundError``)."""


class AffcoreError(Exception):
    """Base class of affcore's own errors."""


class ModelNotFoundError(AffcoreError, FileNotFoundError):
    """The face model could not be found; the message says where it was looked for."""


class ImageError(AffcoreError, ValueError):
    """An image could not be read, or is unusable (too small, too large, wrong type)."""


class NoFaceError(AffcoreError, ValueError):
    """No face was detected in an image."""


class SeveralFacesError(AffcoreError, ValueError):
    """Several faces of similar size were detected, so which one is meant is ambiguous."""


class LandmarkError(AffcoreError, ValueError):
    """Landmarks of the wrong shape, dtype or with non-finite values."""


class NonNeutralPhotoWarning(UserWarning):
    """The photo's face does not look neutral (it smiles: :func:`affcore.fitting.fitted_smile`),
    and every target is rendered on top of what it shows."""
