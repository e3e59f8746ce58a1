import random

import numpy as np
import pytest
import torch

from itemchest_utils import describe_device, pick_device, seed_everything


def test_seed_everything_repeats_all_three_generators():
    def draw():
        seed_everything(123)
        return random.random(), np.random.rand(), torch.rand(3)

    first, second = draw(), draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])


def test_seed_everything_returns_a_seeded_generator():
    a = torch.rand(4, generator=seed_everything(5))
    b = torch.rand(4, generator=seed_everything(5))
    assert torch.equal(a, b)


def test_pick_device_prefers_an_accelerator_when_present():
    device = pick_device()
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif torch.backends.mps.is_available():
        assert device.type == "mps"
    else:
        assert device.type == "cpu"
    assert describe_device(device).startswith(device.type)


def test_pick_device_override(monkeypatch):
    monkeypatch.setenv("ITEMCHEST_DEVICE", "cpu")
    assert pick_device().type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_missing_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pick_device("cuda")


def test_output_dir_is_created_under_the_configured_folder(tmp_path, monkeypatch):
    from itemchest_utils import output_dir

    monkeypatch.setenv("ITEMCHEST_OUTPUTS", str(tmp_path))
    path = output_dir("vae", "gifs")
    assert path == tmp_path / "vae" / "gifs" and path.is_dir()


def test_default_folders_live_in_the_user_cache(tmp_path, monkeypatch):
    from itemchest_utils import checkpoint_dir, data_dir

    monkeypatch.delenv("ITEMCHEST_DATA", raising=False)
    monkeypatch.delenv("ITEMCHEST_CHECKPOINTS", raising=False)
    monkeypatch.delenv("ITEMCHEST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert data_dir() == tmp_path / "itemchest" / "data"
    assert checkpoint_dir() == tmp_path / "itemchest" / "checkpoints"
    monkeypatch.setenv("ITEMCHEST_DATA", str(tmp_path / "elsewhere"))
    assert data_dir() == tmp_path / "elsewhere"


def test_itemchest_cache_overrides_the_user_cache(tmp_path, monkeypatch):
    from itemchest_utils import checkpoint_dir
    from itemchest_utils.runtime import cache_root

    monkeypatch.delenv("ITEMCHEST_CHECKPOINTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("ITEMCHEST_CACHE", str(tmp_path / "isolated"))
    assert cache_root() == tmp_path / "isolated"
    assert checkpoint_dir() == tmp_path / "isolated" / "checkpoints"
    monkeypatch.delenv("ITEMCHEST_CACHE")
    assert cache_root() == tmp_path / "xdg" / "itemchest"
