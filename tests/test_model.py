import numpy as np
import pytest

from affcore import _jobs
from affcore import model as M
from affcore.errors import ModelNotFoundError


def test_loaded_model_has_the_documented_layout(model):
    assert model.neutral_vertices.shape == (26719, 3)
    assert model.identity_basis.shape == (100, 26719, 3)
    assert model.expression_basis.shape == (53, 26719, 3)
    assert model.expression_names == M.EXPRESSION_NAMES
    tris = model.triangles
    assert tris.shape[1] == 3 and tris.min() >= 0 and tris.max() < model.num_vertices
    quads = int((model.polygons[:, 3] >= 0).sum())
    assert len(tris) == len(model.polygons) + quads
    assert len(model.triangle_material) == len(tris)


def test_landmark_vertices_sit_where_the_landmarks_are(model):
    v = model.neutral_vertices[M.LANDMARK_VERTICES]
    # subject's right eye (36-41) is at -x, left eye (42-47) at +x; the chin (8) is lowest
    assert v[36:42, 0].mean() < 0 < v[42:48, 0].mean()
    assert v[8, 1] == v[:17, 1].min()
    # nose tip (30) is the most forward of the 68 points
    assert v[30, 2] == v[:, 2].max()


def test_lookup_order_explicit_then_env_then_cache(tmp_path, monkeypatch, data):
    real = data / "ict_face_model" / "ict_face_model.npz"
    monkeypatch.setenv("AFFCORE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AFFCORE_MODEL", raising=False)
    monkeypatch.setenv("AFFCORE_DATA_DIR", str(data))
    assert M.find_model() == real
    monkeypatch.setenv("AFFCORE_MODEL", str(tmp_path / "elsewhere.npz"))
    (tmp_path / "elsewhere.npz").write_bytes(b"x")
    assert M.find_model() == tmp_path / "elsewhere.npz"
    assert M.find_model(real) == real
    with pytest.raises(ModelNotFoundError, match="not found at"):
        M.find_model(tmp_path / "missing.npz")


def test_missing_model_error_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("AFFCORE_MODEL", raising=False)
    monkeypatch.delenv("AFFCORE_DATA_DIR", raising=False)
    monkeypatch.setenv("AFFCORE_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as e:
        M.load_model()
    msg = str(e.value)
    assert "ICT-FaceKit" in msg and "affcore model import" in msg and str(tmp_path) in msg


def test_import_obj_sample_matches_npz(tmp_path, data, model):
    out = M.import_obj_folder(data / "ict_face_model" / "obj_sample", tmp_path, progress=False)
    assert out == tmp_path / M.MODEL_FILENAME
    assert not list(tmp_path.glob(f"*{_jobs.TMP_MARK}*"))
    imported = M.load_model(out)
    np.testing.assert_array_equal(imported.neutral_vertices, model.neutral_vertices)
    np.testing.assert_array_equal(imported.polygons, model.polygons)
    np.testing.assert_array_equal(imported.polygon_uv_indices, model.polygon_uv_indices)
    np.testing.assert_array_equal(imported.uvs, model.uvs)
    np.testing.assert_array_equal(imported.polygon_material, model.polygon_material)
    assert imported.material_names == model.material_names
    assert imported.num_identity == 1
    np.testing.assert_allclose(imported.identity_basis[0], model.identity_basis[0], atol=1e-5)
    assert imported.expression_names == ("jawOpen", "mouthSmile_L")
    for k, name in enumerate(imported.expression_names):
        np.testing.assert_allclose(imported.expression_basis[k],
                                   model.expression_basis[model.expression_names.index(name)], atol=1e-5)


def test_import_refuses_a_folder_without_the_neutral_mesh(tmp_path):
    with pytest.raises(FileNotFoundError, match="FaceXModel"):
        M.import_obj_folder(tmp_path, tmp_path / "out.npz", progress=False)


def test_polygons_to_triangles_splits_quads():
    polys = np.array([[0, 1, 2, 3], [4, 5, 6, -1]])
    np.testing.assert_array_equal(M.polygons_to_triangles(polys), [[0, 1, 2], [4, 5, 6], [0, 2, 3]])
