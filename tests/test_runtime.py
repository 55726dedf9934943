"""Device, precision and compile options (issue 19), on the CPU: every family's tiny config runs in
bf16 and fp16, fp32 stays bit-equal, the precision policy keeps quantizers in fp32, and the CLI and
`zoo bench` take the options."""

import json
import subprocess
import sys

import pytest
import torch

import zoo
from zoo import cli, registry, runtime
from zoo.quantizers import FSQ, LFQ, MultiScaleResidualQuantizer, Quantizer, ResidualVQ, VectorQuantizer


@pytest.fixture(params=list(registry.FAMILIES))
def tiny(request):
    spec = registry.family(request.param)
    torch.manual_seed(0)
    return spec.tokenizer(spec.tiny_config).eval()


def _run(tok, x, kw):
    t = tok.encode(x, **kw)
    dkw = {"generator": torch.Generator().manual_seed(0)} if tok.stochastic_decoder else {}
    y = tok.decode(t, **dkw)
    return t, (y if isinstance(y, torch.Tensor) else torch.stack(list(y)))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_runs_every_family(tiny, precision):
    x, kw = tiny.example_input(2, torch.Generator().manual_seed(0))
    tiny.setup(device="cpu", precision=precision)
    assert tiny.precision == precision
    t, y = _run(tiny, x, kw)
    assert t.ids.dtype == torch.int64 and t.ids.device == tiny.device
    assert int(t.ids.min()) >= 0 and int(t.ids.max()) < tiny.codebook_size
    assert y.dtype == torch.float32 and torch.isfinite(y).all()  # media come back as fp32


def test_fp32_is_bit_equal_after_a_round_trip_through_bf16(tiny):
    x, kw = tiny.example_input(2, torch.Generator().manual_seed(0))
    t0, y0 = _run(tiny, x, kw)
    tiny.precision = "bf16"
    _run(tiny, x, kw)
    tiny.precision = "fp32"  # hooks removed, no autocast: exactly the official numerics again
    t1, y1 = _run(tiny, x, kw)
    assert torch.equal(t0.ids, t1.ids) and torch.equal(y0, y1)


def test_fp32_modules_run_in_fp32_under_bf16(tiny):
    """The family's policy: each named submodule sees fp32 input with autocast off, inside a bf16 run."""
    seen = {}
    tiny.set_precision("bf16")
    for name in tiny.fp32_modules:
        module = tiny.get_submodule(name)  # every name in the policy is a real submodule

        def record(mod, args, name=name):
            dtypes = {a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()}
            seen.setdefault(name, []).append((dtypes, torch.is_autocast_enabled("cpu")))

        module.register_forward_pre_hook(record)  # runs after the policy's own pre-hook
    x, kw = tiny.example_input(1, torch.Generator().manual_seed(0))
    _run(tiny, x, kw)
    assert tiny.fp32_modules
    # a family that calls its quantizer's methods instead of its forward (WeTok: codes_to_ids) is held
    # to fp32 by the Quantizer methods themselves (test below)
    assert seen or isinstance(getattr(tiny, "quantizer", None), Quantizer), "no fp32 module of the policy ran"
    for name, calls in seen.items():
        for dtypes, autocast_on in calls:
            assert not autocast_on and dtypes <= {torch.float32}, (name, dtypes, autocast_on)


def test_bf16_modules_run_in_bf16_inside_their_fp32_islands_and_only_under_bf16():
    """A family's measured exceptions (WavTokenizer: the encoder's LSTM) autocast to bf16 inside their fp32
    island under bf16; under fp16 they stay fp32 with the island; the hooks go with precision fp32."""
    families = [f for f in registry.FAMILIES if registry.family(f).tokenizer(registry.family(f).tiny_config).bf16_modules]
    assert "wavtokenizer" in families
    for family in families:
        spec = registry.family(family)
        torch.manual_seed(0)
        tok = spec.tokenizer(spec.tiny_config).eval()
        seen = []

        def record(mod, args):
            seen.append(({a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()},
                         torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))

        for name in tok.bf16_modules:
            assert any(name.startswith(island + ".") for island in tok.fp32_modules), name
        x, kw = tok.example_input(1, torch.Generator().manual_seed(0))
        for precision, expect in (("bf16", True), ("fp16", False), ("fp32", False)):
            if precision not in tok.precisions:
                continue
            tok.set_precision(precision)
            handles = [tok.get_submodule(n).register_forward_pre_hook(record) for n in tok.bf16_modules]
            seen.clear()
            _run(tok, x, kw)
            for h in handles:
                h.remove()
            assert seen, (family, precision)
            for dtypes, autocast_on, dtype in seen:
                assert autocast_on == expect and (not expect or dtype == torch.bfloat16), (family, precision)


def test_every_quantizer_computes_ids_in_fp32():
    for cls in (VectorQuantizer, ResidualVQ, FSQ, LFQ, MultiScaleResidualQuantizer):
        assert issubclass(cls, Quantizer)
        for method in ("forward", "codes_to_ids"):
            if method in cls.__dict__:
                assert getattr(cls.__dict__[method], "__zoo_fp32__", False), f"{cls.__name__}.{method} is not fp32"


def test_vq_ids_do_not_change_under_bf16_autocast():
    """Near ties that bf16 distances get wrong: the fp32 guard keeps the ids; without it they change."""
    g = torch.Generator().manual_seed(0)
    vq = VectorQuantizer(dim=64, codebook_size=512).eval()
    with torch.no_grad():
        vq.codebook.copy_(torch.randn(512, 64, generator=g) * 0.01 + 1.0)  # codes close to one another
    z = torch.randn(4, 200, 64, generator=g) * 0.01 + 1.0  # [B, N, D]
    ref = vq(z).ids
    with torch.autocast("cpu", dtype=torch.bfloat16):
        guarded = vq(z).ids
        unguarded = VectorQuantizer.forward.__wrapped__(vq, z).ids
    assert torch.equal(guarded, ref)
    assert not torch.equal(unguarded, ref), "this case no longer separates fp32 from bf16 distances"


def test_load_takes_device_and_precision_and_refuses_bad_ones():
    tok = zoo.load("wavtokenizer-tiny-24k", device="auto", precision="bfloat16")
    assert tok.device.type == ("cuda" if torch.cuda.is_available() else "cpu") and tok.precision == "bf16"
    assert zoo.load("wavtokenizer-tiny-24k").precision == "fp32" and not tok.compiled
    with pytest.raises(ValueError, match="accepted: 'fp32'"):
        zoo.load("wavtokenizer-tiny-24k", precision="int8")
    with pytest.raises(ValueError, match="accepted: 'cpu', 'cuda'"):
        zoo.load("wavtokenizer-tiny-24k", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            zoo.load("wavtokenizer-tiny-24k", device="cuda:0")


def test_inputs_on_another_device_type_are_moved():
    tok = zoo.load("wavtokenizer-tiny-24k")
    x = 0.1 * torch.randn(1, 1, 4800, generator=torch.Generator().manual_seed(0))
    t = tok.encode(x.to(torch.float64), sample_rate=24000)  # any float dtype, moved and checked
    assert t.ids.device == tok.device
    meta_tokens = t.to("cpu")
    assert tok.decode(meta_tokens).device == tok.device


def test_cli_runtime_flags(tmp_path, capsys):
    wav = "samples/speech_16k.wav"
    rc = cli.main(["reconstruct", "wavtokenizer-tiny-24k", wav, "--out", str(tmp_path / "o"), "-q",
                   "--device", "cpu", "--precision", "bf16", "--metrics"])
    assert rc == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["tokens"] == 1000 and row["si_sdr_db"] > -60
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="CUDA is not available"):
            cli.main(["encode", "wavtokenizer-tiny-24k", wav, "--out", str(tmp_path / "e"), "--device", "cuda"])
    with pytest.raises(SystemExit):
        cli.main(["decode", "wavtokenizer-tiny-24k", str(tmp_path), "--out", str(tmp_path / "d"), "--precision", "int8"])


def test_zoo_bench_prints_throughput_memory_and_agreement(capsys):
    rc = cli.main(["bench", "wavtokenizer-tiny-24k", "--seconds", "1", "--repeats", "1", "--precision", "bf16",
                   "--against", "fp32", "--json", "--device", "cpu"])
    assert rc == 0
    row = json.loads(capsys.readouterr().out)
    assert row["precision"] == "bf16" and row["batch_size"] == 1 and row["tokens_per_item"] == 100  # 1 s at 100 tokens/s
    assert row["encode_items_per_s"] > 0 and row["decode_rtf"] > 0 and row["peak_memory_mb"] > 100
    assert 0.5 <= row["ids_equal"] <= 1.0 and row["decode_si_sdr_vs_fp32_db"] > 10
    rc = cli.main(["bench", "one-d-piece-tiny-64", "--repeats", "1", "--batch-size", "2"])
    assert rc == 0 and "decode_items_per_s" in capsys.readouterr().out


def test_compile_is_off_unless_asked():
    tok = zoo.load("wavtokenizer-tiny-24k")
    assert not tok.compiled
    assert all(getattr(m, "_compiled_call_impl", None) is None for m in tok.modules())


@pytest.mark.slow
def test_compile_gives_the_same_ids():
    x = 0.1 * torch.randn(1, 1, 24000, generator=torch.Generator().manual_seed(0))
    ref = zoo.load("wavtokenizer-tiny-24k").encode(x, sample_rate=24000)
    tok = zoo.load("wavtokenizer-tiny-24k", compile=True)
    assert tok.compiled and tok.encoder._compiled_call_impl is not None
    assert (tok.encode(x, sample_rate=24000).ids == ref.ids).float().mean() > 0.95


def test_device_names():
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_precision(torch.float16) == "fp16"
    with pytest.raises(ValueError, match="accepted"):
        runtime.resolve_device("gpu0")


def test_gpu_check_says_so_without_cuda():
    import subprocess
    import sys
    from pathlib import Path

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: run benchmarks/gpu_check.py itself")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "no CUDA device" in out.stdout, out.stdout + out.stderr


def test_gpu_check_dry_run_on_cpu_checks_every_fixture_and_times():
    """`gpu_check.py --device cpu` runs the script's own checks (so they work when a GPU is lent): each
    family's fixture through its case (fp32 ids equal to the fixture) and one timing row per mode."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import parity_dir

    root = parity_dir("wavtokenizer").parent
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    out = subprocess.run([sys.executable, str(script), "--device", "cpu", "--parity-dir", str(root), "--models",
                          "wavtokenizer-tiny-24k", "--batches", "1", "--seconds", "1", "--skip-compile"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    for family in ("wavtokenizer", "xy_tokenizer", "flextok", "one_d_piece", "wetok", "selftok"):
        row = next((line for line in lines if line.startswith(family + " ")), "")
        assert "fp32 ids EQUAL to the fixture" in row, out.stdout
    for mode in ("fp32", "bf16"):
        assert any(line.startswith("wavtokenizer-tiny-24k") and f" {mode} " in line and "FAILED" not in line
                   for line in lines), out.stdout


def test_big_batches_run_in_exact_chunks(tiny):
    """A family's `batch_split` methods give the same result at max_batch=2 as in one pass (5 items:
    chunks of 2, 2, 1; noise drawn in the same order), and no layer then sees all 5 items at once;
    the other methods run whole whatever max_batch says."""
    x, kw = tiny.example_input(5, torch.Generator().manual_seed(0))
    tiny.setup(max_batch=None)
    t0, y0 = _run(tiny, x, kw)
    leading: list[int] = []

    def record(mod, args):
        leading.extend(a.shape[0] for a in args if isinstance(a, torch.Tensor) and a.dim() >= 2)

    for m in tiny.modules():
        m.register_forward_pre_hook(record)
    tiny.setup(max_batch=2)
    t1 = tiny.encode(x, **kw)
    whole_encode, leading[:] = 5 in leading, []
    dkw = {"generator": torch.Generator().manual_seed(0)} if tiny.stochastic_decoder else {}
    y1 = tiny.decode(t1, **dkw)
    y1 = y1 if isinstance(y1, torch.Tensor) else torch.stack(list(y1))
    whole_decode = 5 in leading
    assert whole_encode == ("encode" not in tiny.batch_split)
    assert whole_decode == ("decode" not in tiny.batch_split)
    assert torch.equal(t0.ids, t1.ids) and t0.meta == t1.meta
    assert (t0.lengths is None) == (t1.lengths is None)
    assert torch.allclose(y0, y1, atol=1e-5, rtol=0)


def test_max_batch_is_checked():
    spec = registry.family("one_d_piece")
    tok = spec.tokenizer(spec.tiny_config).eval()
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="max_batch"):
            tok.setup(max_batch=bad)


def test_tokens_cat_inverts_slicing():
    from zoo.api import Tokens

    t = Tokens(ids=torch.arange(24).reshape(4, 6), lengths=torch.tensor([6, 3, 5, 1]), meta={"family": "x", "source": ["a", "b", "c", "d"]})
    back = Tokens.cat([t[0:1], t[1:3], t[3:4]])
    assert torch.equal(back.ids, t.ids) and torch.equal(back.lengths, t.lengths) and back.meta == t.meta
    with pytest.raises(ValueError, match="meta differ"):
        Tokens.cat([t[0:1], Tokens(ids=t.ids[1:2], meta={"family": "y"})])
    with pytest.raises(ValueError, match="layout"):
        Tokens.cat([t, Tokens(ids=torch.zeros(1, 5, dtype=torch.long))])


def test_low_precision_weight_cache_changes_nothing_but_speed(tiny):
    """bf16 with the cached bf16 weights gives exactly what autocast's own per-call cast gives
    (`weight_copy=False`); the fp32 parameters stay fp32; a weight changed in place is picked up in the next call."""
    x, kw = tiny.example_input(2, torch.Generator().manual_seed(0))
    saved = {k: v.clone() for k, v in tiny.state_dict().items()}
    tiny.set_precision("bf16")
    t_cached, y_cached = _run(tiny, x, kw)
    assert all(p.dtype == torch.float32 for p in tiny.parameters())
    hooks_with_copy = len(tiny._fp32_hooks)
    tiny.setup(weight_copy=False)
    assert tiny.precision == "bf16" and len(tiny._fp32_hooks) < hooks_with_copy  # the copy's hooks are gone
    t_plain, y_plain = _run(tiny, x, kw)
    assert torch.equal(t_cached.ids, t_plain.ids) and torch.equal(y_cached, y_plain)
    with torch.no_grad():
        for p in tiny.parameters():
            p.mul_(0.9)
    t_changed, y_changed = _run(tiny, x, kw)
    tiny.setup(weight_copy=True)  # the cache again
    t_again, y_again = _run(tiny, x, kw)
    assert torch.equal(t_again.ids, t_changed.ids) and torch.equal(y_again, y_changed)
    tiny.load_state_dict(saved)  # in place (copy_), after the cache was filled
    t_back, y_back = _run(tiny, x, kw)
    assert torch.equal(t_back.ids, t_cached.ids) and torch.equal(y_back, y_cached)


_FAULTS = """
import resource, sys, torch
from zoo.runtime import keep_freed_cpu_memory
assert keep_freed_cpu_memory()  # mallopt took both settings
def cycle():  # activations of a conv stack: a few MB each, several alive at once, then all freed
    xs = [torch.ones(mb << 18) for mb in (8, 4, 8, 8, 2, 16, 8)]
    del xs
for _ in range(6):  # the heap grows to hold them
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_keep_freed_cpu_memory_stops_refaulting_big_activations():
    """After keep_freed_cpu_memory, memory freed by one op is reused by the next instead of being returned to
    the OS and faulted in again: 10 cycles of 54 MB of activations fault in (almost) no page. (glibc's default
    here refaults all of it, ~80k pages, in some runs and none in others, depending on the heap's layout.)"""
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, check=True)
    assert int(out.stdout.split()[-1]) < 1000, out.stdout


def test_cli_keeps_freed_memory_unless_told_not_to(monkeypatch):
    calls = []
    monkeypatch.setattr(runtime, "keep_freed_cpu_memory", lambda: calls.append(1) or True)
    cli.main(["list"])
    monkeypatch.setenv("ZOO_KEEP_FREED_MEMORY", "0")
    cli.main(["list"])
    assert calls == [1]


def test_load_takes_weight_copy():
    with_copy = zoo.load("one-d-piece-tiny-64", precision="bf16")
    without = zoo.load("one-d-piece-tiny-64", precision="bf16", weight_copy=False)
    assert with_copy.weight_copy and not without.weight_copy
    assert len(without._fp32_hooks) < len(with_copy._fp32_hooks)
