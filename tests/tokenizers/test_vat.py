"""VAT: catalogue, encode/decode shapes, first-scales decoding, mesh I/O, watertight checks, the
converter (our own layout: VAT released no weights), training-stage behaviour and bad input."""

import json

import pytest
import torch

import zoo
from zoo import registry
from zoo.tokenizers import vat as V
from zoo.train.vat import continuous_forward

trimesh = pytest.importorskip("trimesh")
M = pytest.importorskip("zoo.media.mesh")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return V.VAT(V.TINY_CONFIG).eval()


@pytest.fixture(scope="module")
def points(model):
    return model.example_input(2, torch.Generator().manual_seed(1))[0]


def sphere_mesh(radius=0.5):
    return trimesh.creation.icosphere(subdivisions=3, radius=radius)


# -- catalogue -----------------------------------------------------------------------------------
def test_catalogue_marks_everything_unofficial():
    assert "vat" in registry.FAMILIES
    assert {"vat-512b", "vat-tiny"} <= set(zoo.list_models("vat*"))
    spec, big = registry.lookup("vat-512b")
    assert big.pretrained is None and not big.official and big.config == V.VATConfig()
    _, tiny = registry.lookup("vat-tiny")
    assert tiny.pretrained is None and not tiny.official and tiny.embedded == "vat/tiny"
    with torch.device("meta"):
        m = V.VAT(V.VATConfig())
    assert m.token_rate == 511 and m.codebook_size == 256 and m.bytes_per_shape() == 511  # the "512-byte" setting


# -- encode / decode -----------------------------------------------------------------------------
def test_encode_decode_shapes_and_first_scales(model, points):
    t = model.encode(points)
    assert t.layout == "multiscale" and t.ids.shape == (2, 63) and t.ids.dtype == torch.int64
    assert t.meta["scale_sizes"] == [1, 2, 4, 8, 16, 32] and t.meta["family"] == "vat"
    assert torch.equal(model.encode(points).ids, t.ids)
    occ = model.decode(t, resolution=12)
    assert occ.shape == (2, 12, 12, 12) and 0 <= float(occ.min()) and float(occ.max()) <= 1
    coarse = t.first_scales(2)
    assert coarse.ids.shape == (2, 3)
    occ2 = model.decode(coarse, resolution=12)
    assert occ2.shape == (2, 12, 12, 12) and not torch.allclose(occ2, occ)
    # a prefix decodes from the quantiser's partial sum over its scales, at full token resolution
    with torch.inference_mode():
        z = model.quantizer.ids_to_quantized(coarse.ids)
    assert z.shape == (2, 32, 8)


def test_decode_mesh_output(model, points):
    t = model.encode(points[:1])
    occ = model.decode(t, resolution=16)[0]
    level = float(occ.median())  # an untrained model's field is flat; pick a level inside its range
    meshes = model.decode(t, resolution=16, output="mesh", level=level)
    assert len(meshes) == 1 and len(meshes[0].faces) > 0


def test_encode_meshes_is_seeded(model):
    a = model.encode(sphere_mesh(), seed=3)
    b = model.encode([sphere_mesh(), trimesh.creation.box((1, 1, 2))], seed=3)
    assert a.ids.shape == (1, 63) and b.ids.shape == (2, 63)
    assert torch.equal(a.ids[0], b.ids[0])


def test_forward_stages(model, points):
    m = V.VAT(V.TINY_CONFIG).train()
    q = torch.rand(2, 64, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    occ = (q.norm(dim=-1) < 0.5).float()
    before = m.quantizer.codebook.cluster_size.clone()
    out = continuous_forward(m, points, queries=q, occupancy=occ)  # the VAE stage: the quantiser bypassed
    assert set(out.losses) == {"kl", "occupancy"} and out.recon.shape == (2, 64)
    assert torch.equal(before, m.quantizer.codebook.cluster_size)  # no quantiser statistics in stage 1
    out.losses["occupancy"].backward()
    assert m.quantizer.codebook.codebook.grad is None
    out = m(points, queries=q, occupancy=occ)
    assert {"kl", "occupancy", "commitment", "codebook"} <= set(out.losses)
    assert out.tokens.ids.shape == (2, 63)


# -- mesh media ----------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".obj", ".ply", ".stl", ".off", ".glb"])
def test_mesh_round_trip(tmp_path, suffix):
    mesh = sphere_mesh(0.7)
    path = M.save_mesh(tmp_path / f"s{suffix}", mesh)
    back = M.load_mesh(path)
    assert len(back.faces) == len(mesh.faces)
    assert back.volume == pytest.approx(mesh.volume, rel=1e-4)


def test_normalize_sample_and_occupancy():
    mesh = M.normalize_mesh(trimesh.creation.box((2.0, 1.0, 4.0)), bound=0.9)
    assert mesh.bounds[1].max() == pytest.approx(0.9) and mesh.bounds[0].min() == pytest.approx(-0.9)
    p = M.sample_surface(mesh, 500, seed=1)
    assert p.shape == (500, 6) and torch.equal(p, M.sample_surface(mesh, 500, seed=1))
    assert torch.allclose(p[:, 3:].norm(dim=-1), torch.ones(500), atol=1e-5)
    sphere = sphere_mesh(0.5)
    q = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.2, 0.0], [0.6, 0.0, 0.0], [0.9, 0.9, 0.9]])
    assert M.occupancy(sphere, q).tolist() == [True, True, False, False]


def test_marching_cubes_and_save_decoded(tmp_path):
    g = M.grid_points(32)
    occ = M.occupancy(sphere_mesh(0.6), g).float().reshape(32, 32, 32)
    mesh = M.marching_cubes(occ)
    assert mesh.volume == pytest.approx(4 / 3 * torch.pi * 0.6**3, rel=0.1)  # outward-facing, right size
    out = M.save_decoded(tmp_path / "item", occ)
    assert out.suffix == ".ply" and len(M.load_mesh(out).faces) == len(mesh.faces)
    with pytest.raises(ValueError, match="no surface"):
        M.marching_cubes(torch.zeros(8, 8, 8))


def test_load_points_for(model, tmp_path):
    path = M.save_mesh(tmp_path / "b.stl", trimesh.creation.box((3, 1, 1)))
    x = M.load_points_for(model, path)
    assert x.shape == (1, model.num_points, 6) and float(x[..., :3].abs().max()) <= 0.9 + 1e-5
    assert model.encode(x).ids.shape == (1, 63)


def test_not_watertight_is_a_clear_error(tmp_path):
    box = trimesh.creation.box()
    holed = trimesh.Trimesh(box.vertices, box.faces[:-1], process=False)
    with pytest.raises(ValueError, match="not watertight"):
        M.check_watertight(holed)
    with pytest.raises(ValueError, match="not watertight"):
        M.occupancy(holed, torch.zeros(1, 3))
    assert M.occupancy(holed, torch.zeros(1, 3), require_watertight=False).shape == (1,)
    from zoo.train.data import DataConfig, build_dataset

    holed.export(tmp_path / "holed.ply")
    sphere_mesh().export(tmp_path / "ball.ply")
    with pytest.raises(ValueError, match="not watertight"):
        build_dataset(DataConfig(kind="mesh_folder", paths=(str(tmp_path),)))
    ds = build_dataset(DataConfig(kind="mesh_folder", paths=(str(tmp_path),), on_error="skip", num_points=64, num_queries=32))
    assert len(ds) == 1
    s = ds[(0, 5)]
    assert s["x"].shape == (64, 6) and s["queries"].shape == (32, 3) and s["occupancy"].shape == (32,)


def test_mesh_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        M.load_mesh(tmp_path / "none.obj")
    (tmp_path / "a.xyz").write_text("0 0 0\n")
    with pytest.raises(ValueError, match="unsupported"):
        M.load_mesh(tmp_path / "a.xyz")
    (tmp_path / "bad.off").write_text("OFF\nnonsense\n")
    with pytest.raises(ValueError):
        M.load_mesh(tmp_path / "bad.off")
    with pytest.raises(ValueError, match="writes"):
        M.save_mesh(tmp_path / "a.vtk", sphere_mesh())


# -- converter (our layout only) ------------------------------------------------------------------
def test_convert_our_checkpoint_and_strictness(model, points, tmp_path):
    from safetensors.torch import save_file

    folder = model.save_pretrained(tmp_path / "m")
    back = zoo.convert("vat", checkpoint=folder / "model.safetensors", config=folder / "config.json")
    assert torch.equal(back.encode(points).ids, model.encode(points).ids)
    wrapped = {f"module.{k}": v.contiguous() for k, v in model.state_dict().items()}
    save_file(wrapped, tmp_path / "ddp.safetensors")
    cfg = json.loads((folder / "config.json").read_text())["config"]
    back = zoo.convert("vat", checkpoint=tmp_path / "ddp.safetensors", config=cfg)
    assert torch.equal(back.encode(points).ids, model.encode(points).ids)
    save_file({**wrapped, "extra.weight": torch.zeros(1)}, tmp_path / "extra.safetensors")
    with pytest.raises(ValueError, match="extra.weight"):
        zoo.convert("vat", checkpoint=tmp_path / "extra.safetensors", config=cfg)
    with pytest.raises(ValueError, match="no official release"):
        zoo.convert("vat", checkpoint=tmp_path / "ddp.safetensors")
    with pytest.raises(ValueError, match="flextok"):
        V.from_official_config({"family": "flextok", "config": {}})


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x, err, match",
    [
        (torch.rand(2, 100, 3), ValueError, "needs normals"),
        (torch.rand(100, 6), ValueError, "unsqueeze"),
        (torch.zeros(0, 100, 6), ValueError, "empty"),
        (torch.zeros(1, 0, 6), ValueError, "empty"),
        (torch.zeros(1, 10, 6, dtype=torch.int64), TypeError, "float"),
        (torch.full((1, 10, 6), float("nan")), ValueError, "NaN"),
        (torch.cat([torch.full((1, 10, 3), 2.0), torch.zeros(1, 10, 3)], -1), ValueError, "unit cube"),
        (torch.cat([torch.zeros(1, 10, 3), torch.full((1, 10, 3), 1.0)], -1), ValueError, "unit normals"),
        ("shape.obj", TypeError, "load_mesh"),
    ],
)
def test_bad_input(model, x, err, match):
    with pytest.raises(err, match=match):
        model.encode(x)


def test_bad_tokens_and_options(model, points):
    t = model.encode(points)
    with pytest.raises(ValueError, match="scale sizes"):
        model.decode(zoo.Tokens(t.ids[:, :5], layout="multiscale", meta={**t.meta, "scale_sizes": [1, 4]}))
    with pytest.raises(ValueError, match=r"\[B, n\]"):
        model.decode(zoo.Tokens(t.ids[:, :5], layout="multiscale", meta={"family": "vat"}))
    with pytest.raises(ValueError, match="flextok"):
        model.decode(zoo.Tokens(t.ids, layout="multiscale", meta={**t.meta, "family": "flextok"}))
    with pytest.raises(ValueError, match="output"):
        model.decode(t, output="pointcloud")
    with pytest.raises(ValueError, match="resolution"):
        model.decode(t, resolution=1)
    with pytest.raises(ValueError, match="queries"):
        model(points, occupancy=torch.zeros(2, 10))
    with pytest.raises(ValueError, match="finest scale"):
        V.VAT(V.VATConfig(num_latents=64, scales=(1, 2, 4)))


def test_coarse_to_fine_decode_keeps_the_level_set():
    tok = zoo.load("vat-tiny")  # the embedded trained model: a field with a real surface
    x, _ = tok.example_input(2, torch.Generator().manual_seed(0))
    tokens = tok.encode(x)
    dense = tok.decode(tokens, resolution=48)
    fast = tok.decode(tokens, resolution=48, coarse=12)
    assert fast.shape == dense.shape == (2, 48, 48, 48)
    assert 0 < float((dense > 0.5).float().mean()) < 1  # there is a surface to keep
    same_side = ((dense > 0.5) == (fast > 0.5)).float().mean()
    assert same_side > 0.999, f"coarse-to-fine moved {1 - float(same_side):.2%} of the voxels across the level"
    exact = (fast - dense).abs() < 1e-5
    assert 0.01 < float(exact.float().mean()) < 1  # some points evaluated exactly, the rest interpolated
    assert len(tok.decode(tokens, resolution=48, coarse=12, output="mesh")) == 2
    with pytest.raises(ValueError, match="coarse must lie in"):
        tok.decode(tokens, resolution=48, coarse=48)
