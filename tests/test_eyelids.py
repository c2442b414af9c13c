"""The upper lids' layout (affcore._eyelids): the lash line's height above the margin."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from affcore import _eyelids
from affcore.images import read_image


@settings(max_examples=100, deadline=None)
@given(st.floats(0.0, 20.0), st.floats(-0.3, 0.3), st.floats(0.05, 0.35), st.integers(120, 230))
def test_the_lash_line_reaches_as_high_as_the_dark_band_above_the_margin(band, tilt, darkness, skin):
    """A lid of skin (grey level ``skin``) with a dark band (``darkness`` of it, below
    LASH_DARK) from its margin up to ``band`` px, turned by ``tilt`` radians: the lash line
    reaches the band's top, but not below UPPER_LID_RIGID nor above UPPER_LID_RIGID_MAX (at
    50 px per cm: 6.5 and 17.5 px), within a sampling step. (The band leaves most of the
    lid's 35 px below UPPER_LID_REACH to the skin, whose level is read there.)"""
    scale = 50.0
    down = np.array([np.sin(tilt), np.cos(tilt)])
    across = np.array([down[1], -down[0]])
    yy, xx = np.mgrid[0:240, 0:240].astype(float)
    centre = np.array([120.0, 150.0])
    height = -((np.stack([xx, yy], -1) - centre) @ down)  # px above the margin's line
    image = np.where((height >= 0) & (height < band), darkness * skin, skin).astype(np.uint8)
    image = np.repeat(image[..., None], 3, axis=2)
    margin = centre + np.linspace(-60, 60, 41)[:, None] * across
    got = _eyelids._lash_line(image, margin, down, scale)
    expected = np.clip(band, _eyelids.UPPER_LID_RIGID * scale, _eyelids.UPPER_LID_RIGID_MAX * scale)
    assert abs(got - expected) <= _eyelids._RIGID_STEP * scale + 1.0, (got, expected)


def test_heavy_lashes_and_eyeliner_get_a_taller_lash_line(data, model):
    """The lash line moves with the margin unstretched. 1.3 mm tall, it left the made-up
    lashes and eyeliner of `jennifer_aniston` and `scarlett_johansson` above it to the
    stretch: a dark band under surprise, a dark ring above a closed lid. Their lash lines
    are now 1.7 mm tall or more; of the 60 lids of the London photos (no make-up), at most
    10 get taller than 1.3 mm (5 do: deep shadows at the lashes)."""
    from affcore.synthesis import Synthesizer

    for name in ("jennifer_aniston", "scarlett_johansson"):
        s = Synthesizer(read_image(data / "faces" / "wild" / f"{name}.jpg"), model=model, threads=1)
        assert len(s._upper_lids) == 2
        assert all(lid.rigid >= 0.16 * s.fit.scale for lid in s._upper_lids), name
    london = sorted((data / "faces" / "london").glob("*_neutral.jpg"))
    if not london:
        pytest.skip("no London photos")
    taller = 0
    for path in london:
        s = Synthesizer(read_image(path), model=model, threads=1)
        taller += sum(lid.rigid > _eyelids.UPPER_LID_RIGID * s.fit.scale + 1e-3 for lid in s._upper_lids)
    assert taller <= 10, taller
