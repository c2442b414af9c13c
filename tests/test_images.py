import numpy as np
import pytest
from PIL import Image

from affcore.errors import ImageError
from affcore.images import as_rgb8, read_image, write_image


def test_reads_a_photo_as_rgb8(data):
    img = read_image(data / "faces" / "london" / "005_neutral.jpg")
    assert img.shape == (1350, 1350, 3) and img.dtype == np.uint8
    # RGB, not BGR: the studio background is neutral grey and skin is redder than blue
    face = img[600:800, 550:800].reshape(-1, 3).mean(axis=0)
    assert face[0] > face[2]


@pytest.mark.parametrize("make, expect", [
    (lambda g: g, "grey"),
    (lambda g: np.dstack([g, g, g, np.full_like(g, 7)]), "rgba"),
    (lambda g: g.astype(np.uint16) * 257, "grey16"),
    (lambda g: g.astype(np.float32) / 255, "float"),
])
def test_layouts_are_converted(make, expect):
    g = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64).astype(np.uint8)
    out = as_rgb8(make(g))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :, 1], g)


def test_sixteen_bit_png_roundtrip(tmp_path):
    a = (np.arange(100 * 100, dtype=np.uint32).reshape(100, 100) * 6).astype(np.uint16)
    Image.fromarray(a).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(out[:, :, 0], ((a.astype(np.uint32) + 128) // 257).astype(np.uint8))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 1, 3), np.uint8), "at least"),
    (np.zeros((64, 64, 5), np.uint8), "shape"),
    (np.zeros((64, 64, 3), np.int64), "dtype"),
    (np.full((64, 64, 3), np.nan, np.float32), "NaN"),
    (np.full((64, 64, 3), 2.0, np.float32), r"\[0, 1\]"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_arrays_are_refused_with_a_reason(bad, message):
    with pytest.raises(ImageError, match=message):
        as_rgb8(bad)


def test_corrupt_text_and_missing_files_are_refused(tmp_path, data):
    (tmp_path / "text.jpg").write_text("this is not a jpeg")
    with pytest.raises(ImageError, match="not a readable image"):
        read_image(tmp_path / "text.jpg")
    raw = (data / "faces" / "london" / "005_neutral.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(raw[:2000])
    with pytest.raises(ImageError):
        read_image(tmp_path / "truncated.jpg")
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "nope.png")


def test_huge_image_is_refused_before_decoding(tmp_path):
    Image.new("1", (20000, 20000)).save(tmp_path / "huge.png")
    with pytest.raises(ImageError, match="too large"):
        read_image(tmp_path / "huge.png")
    Image.new("1", (9000, 8000)).save(tmp_path / "big.png")  # under PIL's own limit, over ours
    with pytest.raises(ImageError, match="too large: 9000x8000"):
        read_image(tmp_path / "big.png")


def test_write_is_atomic_and_roundtrips(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    p = write_image(tmp_path / "x.png", img)
    np.testing.assert_array_equal(read_image(p), img)
    assert [q.name for q in tmp_path.iterdir()] == ["x.png"]
