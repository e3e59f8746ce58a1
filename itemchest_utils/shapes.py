"""Procedural images of one shape on a background, with the attributes that made them.

A stand-in for attribute datasets (CelebA and the like) that knows its own ground truth: every image comes
with its labels (shape, colour, background, style) and continuous factors (size, angle, position), and any
image can be rendered again with one attribute changed, which gives paired ground truth for unpaired
translation. Rendering is a vectorised signed-distance evaluation with a one-pixel anti-aliased edge.
"""

from __future__ import annotations

import dataclasses
import math

import torch

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (0.86, 0.16, 0.16), "orange": (0.96, 0.56, 0.10), "yellow": (0.95, 0.85, 0.15),
           "green": (0.20, 0.70, 0.25), "blue": (0.15, 0.35, 0.90), "purple": (0.60, 0.25, 0.75)}
BACKGROUNDS = {"black": (0.05, 0.05, 0.05), "grey": (0.45, 0.45, 0.45), "cream": (0.93, 0.90, 0.80)}
STYLES = ("filled", "outline")
# The categorical attributes, their class names (label i is ATTRIBUTE_VALUES[name][i]) and class counts.
ATTRIBUTE_VALUES = {"shape": SHAPES, "colour": tuple(COLOURS), "background": tuple(BACKGROUNDS), "style": STYLES}
SHAPE_ATTRIBUTE_SIZES = {name: len(values) for name, values in ATTRIBUTE_VALUES.items()}

SIZE_RANGE = (0.3, 0.55)      # half-extent of the shape, in units where the image spans [-1, 1]
POSITION_RANGE = 0.3          # the centre lies in [-0.3, 0.3]², so every shape stays inside the image
OUTLINE_WIDTH = 0.08          # stroke width of the outline style, in the same units


@dataclasses.dataclass(frozen=True)
class ShapeAttributes:
    """One row per image. Labels are class indices into SHAPES, COLOURS, BACKGROUNDS and STYLES."""

    shape: torch.Tensor       # (N,) long
    colour: torch.Tensor      # (N,) long
    background: torch.Tensor  # (N,) long
    style: torch.Tensor       # (N,) long
    size: torch.Tensor        # (N,) float, half-extent
    angle: torch.Tensor       # (N,) float, radians
    x: torch.Tensor           # (N,) float, centre
    y: torch.Tensor           # (N,) float, centre (positive is up)

    def __len__(self) -> int:
        return len(self.shape)

    def __getitem__(self, index) -> "ShapeAttributes":
        return ShapeAttributes(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def replace(self, **changes) -> "ShapeAttributes":
        """The same instances with some attributes changed; a scalar change applies to every row."""
        values = {}
        for name, value in changes.items():
            current = getattr(self, name)
            values[name] = torch.as_tensor(value, dtype=current.dtype).expand_as(current).clone()
        return dataclasses.replace(self, **values)

    def labels(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in ATTRIBUTE_VALUES}


def sample_shape_attributes(n: int, seed: int = 0, **fixed) -> ShapeAttributes:
    """Draw ``n`` independent scenes; keyword arguments fix an attribute (e.g. ``style=0``) for all of them."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(low, high):
        return low + (high - low) * torch.rand(n, generator=generator)

    def choice(options):
        return torch.randint(len(options), (n,), generator=generator)

    attributes = ShapeAttributes(
        shape=choice(SHAPES), colour=choice(COLOURS), background=choice(BACKGROUNDS), style=choice(STYLES),
        size=uniform(*SIZE_RANGE), angle=uniform(0, 2 * math.pi),
        x=uniform(-POSITION_RANGE, POSITION_RANGE), y=uniform(-POSITION_RANGE, POSITION_RANGE))
    unknown = set(fixed) - {f.name for f in dataclasses.fields(ShapeAttributes)}
    if unknown:
        raise ValueError(f"unknown attribute(s) {sorted(unknown)}; known: "
                         f"{[f.name for f in dataclasses.fields(ShapeAttributes)]}")
    return attributes.replace(**fixed) if fixed else attributes


def _signed_distance(shape: torch.Tensor, u: torch.Tensor, v: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Signed distance (negative inside) to a circle, square or equilateral triangle of half-extent ``size``."""
    circle = torch.sqrt(u ** 2 + v ** 2) - size
    qx, qy = u.abs() - size, v.abs() - size
    square = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2) + torch.maximum(qx, qy).clamp(max=0)
    # Equilateral triangle with circumradius `size`, pointing up (a fold-and-project distance).
    k = math.sqrt(3.0)
    side_half = size * k / 2
    px, py = u.abs() - side_half, v + size / 2
    fold = px + k * py > 0
    px, py = torch.where(fold, (px - k * py) / 2, px), torch.where(fold, (-k * px - py) / 2, py)
    px = px - torch.clamp(px, min=-2 * side_half, max=torch.zeros_like(px))
    triangle = -torch.sqrt(px ** 2 + py ** 2) * torch.sign(py)
    return torch.where(shape == 0, circle, torch.where(shape == 1, square, triangle))


def render_shapes(attributes: ShapeAttributes, resolution: int = 64) -> torch.Tensor:
    """Images (N, 3, resolution, resolution) in [0, 1], rendered from the attributes."""
    if resolution < 8:
        raise ValueError(f"resolution {resolution} is too small to draw a shape; use 8 or more")
    pixel = 2.0 / resolution
    centres = (torch.arange(resolution) + 0.5) * pixel - 1.0
    gy, gx = torch.meshgrid(-centres, centres, indexing="ij")          # y points up, rows go down
    a = attributes

    def column(t):
        return t.float().view(-1, 1, 1)

    dx, dy = gx - column(a.x), gy - column(a.y)
    cos, sin = torch.cos(column(a.angle)), torch.sin(column(a.angle))
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy                   # into the shape's own frame
    distance = _signed_distance(a.shape.view(-1, 1, 1), u, v, column(a.size))
    outline = (a.style == 1).view(-1, 1, 1)
    distance = torch.where(outline, distance.abs() - OUTLINE_WIDTH / 2, distance)
    coverage = (0.5 - distance / pixel).clamp(0, 1).unsqueeze(1)      # one-pixel linear edge: anti-aliasing
    colour = torch.tensor(list(COLOURS.values()))[a.colour].view(-1, 3, 1, 1)
    background = torch.tensor(list(BACKGROUNDS.values()))[a.background].view(-1, 3, 1, 1)
    return background + coverage * (colour - background)


def shapes_dataset(n: int, resolution: int = 64, seed: int = 0, **fixed) -> tuple[torch.Tensor, ShapeAttributes]:
    """``n`` rendered images and their attributes, deterministic for a seed."""
    attributes = sample_shape_attributes(n, seed=seed, **fixed)
    images = torch.cat([render_shapes(attributes[i:i + 1024], resolution) for i in range(0, n, 1024)])
    return images, attributes
