import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from itemchest_utils import (History, image_grid, plot_history, save_animation, show_animation,  # noqa: E402
                             show_images, show_interpolation, smooth)


def test_image_grid_places_each_image():
    images = torch.zeros(5, 1, 4, 4)
    images[3] = 1.0
    grid = image_grid(images, nrow=3, padding=1, pad_value=0.5)
    assert grid.shape == (1 + 2 * 5, 1 + 3 * 5)
    assert np.all(grid[6:10, 1:5] == 1.0)  # image 3 is row 1, column 0
    assert np.all(grid[1:5, 1:5] == 0.0)
    colour = image_grid(torch.rand(4, 3, 2, 2), nrow=2)
    assert colour.shape[-1] == 3


def test_image_grid_rejects_wrong_rank():
    with pytest.raises(ValueError, match="N, C, H, W"):
        image_grid(torch.zeros(4, 4))


def test_smooth_is_a_trailing_mean():
    assert smooth([1, 3, 5, 7], 2).tolist() == [1, 2, 4, 6]
    assert smooth([2, 4], 1).tolist() == [2, 4]


def test_figures_draw_without_error():
    history = History(steps=list(range(10)), metrics={"loss": list(np.linspace(2, 1, 10))})
    assert plot_history(history).get_lines()
    assert show_images(torch.rand(6, 1, 5, 5), nrow=3, title="t").get_title() == "t"
    assert len(show_interpolation(torch.rand(2, 4, 1, 5, 5), labels=["a", "b"]).axes) == 2


def test_animation_is_saved_as_a_gif_with_every_frame(tmp_path):
    frames = torch.rand(6, 1, 8, 8)
    path = save_animation(frames, tmp_path / "a" / "walk.gif", fps=4, scale=2)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 6 and gif.size == (16, 16)
    shown = show_animation(torch.rand(3, 3, 8, 8), tmp_path / "colour.gif")
    assert shown.data[:6] in (b"GIF89a", b"GIF87a")
    with pytest.raises(ValueError, match="frame"):
        save_animation([], tmp_path / "empty.gif")


def test_plot_history_of_a_skipped_run_says_so_instead_of_failing():
    ax = plot_history(History(description="demo", skipped=True), keys=["loss"], title="loss")
    assert not ax.get_lines() and "skipped" in ax.texts[0].get_text()
