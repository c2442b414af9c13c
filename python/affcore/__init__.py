"""affcore: photorealistic facial-affect synthesis from a single photo.

Plain functions on numpy arrays: images are (H, W, 3) uint8 RGB, landmarks (68, 2) float
pixels (x right, y down).
"""
from ._core import build_info
from .augment import augment
from .errors import (AffcoreError, ImageError, LandmarkError, ModelNotFoundError, NoFaceError, NonNeutralPhotoWarning,
                     SeveralFacesError)
from .fitting import FitResult, fit, fit_landmarks, fit_landmarks_batch
from .images import read_image, write_image
from .landmarks import detect_faces, detect_landmarks, load_landmarks, read_pts
from .model import FaceModel, find_model, import_obj_folder, load_model
from .synthesis import Synthesizer, synthesize

__all__ = [
    "augment", "build_info", "AffcoreError", "ImageError", "LandmarkError", "ModelNotFoundError", "NoFaceError",
    "SeveralFacesError", "NonNeutralPhotoWarning", "FitResult", "fit", "fit_landmarks", "fit_landmarks_batch",
    "read_image", "write_image", "detect_faces", "detect_landmarks", "load_landmarks", "read_pts", "FaceModel",
    "find_model", "import_obj_folder", "load_model", "Synthesizer", "synthesize",
]
__version__ = "0.1.0"
