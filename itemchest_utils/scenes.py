"""Procedural 3-D rooms seen from camera poses: a stand-in for GQN's ``rooms_ring_camera`` data.

DeepMind's GQN datasets cannot be downloaded here, so this module renders scenes of the same kind: a
square room (floor and four walls, each from a small palette) holding one to three objects (spheres,
yaw-rotated boxes, cylinders, cones) of saturated colours, lit by one directional light with hard shadows
plus ambient light, and seen from cameras on a ring around the room's centre (``camera="ring"``, the
``rooms_ring_camera`` setting) or from free positions inside the room (``camera="free"``). Every image
comes with its camera pose as GQN's 7-d viewpoint vector, and any scene can be rendered again from any
pose, which is what a localisation experiment needs (score candidate poses by how well a model predicts
the image). Rendering is analytic ray casting, vectorised in torch over all the pixels of many views.

Coordinate convention (right-handed, units of the room: the room is ``2 * ROOM_HALF_WIDTH`` = 7 wide):

- ``z`` is up. The floor is the plane ``z = 0``; the room spans ``x, y`` in ``[-3.5, 3.5]`` and its walls
  rise to ``z = WALL_HEIGHT``; above them is a sky colour (the room has no ceiling).
- A camera at ``position`` with ``yaw`` and ``pitch`` (radians) looks along
  ``(cos pitch cos yaw, cos pitch sin yaw, sin pitch)``: yaw 0 looks along +x, yaw pi/2 along +y (yaw
  turns counter-clockwise seen from above), positive pitch looks up. There is no roll: the image's up is
  the world's up tilted by the pitch, and its right is ``(sin yaw, -cos yaw, 0)``, so when looking along
  +x, +y appears on the left of the image.
- The viewpoint vector is ``(x, y, z, cos yaw, sin yaw, cos pitch, sin pitch)``, the order of Eslami et
  al. (2018). (DeepMind's data readers put sine before cosine; a model does not care, as long as one
  order is used throughout.)
- Images are ``(3, H, W)`` with row 0 at the top.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F

from .dry_run import dry_run_steps, procedural_count
from .runtime import cache_root

# Bump when anything that changes the rendered pixels or the sampled scenes changes, so stale caches
# are not reused.
SCENES_VERSION = 1

# --- the room -------------------------------------------------------------------------------------
ROOM_HALF_WIDTH = 3.5         # GQN's rooms are 7 x 7
WALL_HEIGHT = 2.5
# Muted wall and floor colours (GQN's rooms use red, green, cerise, orange and yellow walls and
# yellow, white and blue floors), so that the saturated objects stand out against them.
WALL_COLOURS = {"red": (0.86, 0.36, 0.30), "green": (0.46, 0.76, 0.42), "cerise": (0.90, 0.42, 0.66),
                "orange": (0.97, 0.64, 0.30), "yellow": (0.95, 0.90, 0.45)}
FLOOR_COLOURS = {"sand": (0.80, 0.72, 0.48), "white": (0.86, 0.86, 0.82), "blue": (0.42, 0.52, 0.76),
                 "grey": (0.55, 0.55, 0.55)}
SKY_COLOUR = (0.72, 0.82, 0.94)
FLOOR_TILE = 1.0              # side of a floor checker tile
FLOOR_TILE_DARKENING = 0.12   # odd tiles are this fraction darker: a faint texture that shows perspective

# --- the objects ----------------------------------------------------------------------------------
OBJECT_KINDS = ("sphere", "box", "cylinder", "cone")
OBJECT_COLOURS = {"red": (0.90, 0.12, 0.10), "orange": (1.00, 0.50, 0.05), "yellow": (0.98, 0.88, 0.10),
                  "green": (0.10, 0.75, 0.20), "cyan": (0.05, 0.75, 0.85), "blue": (0.12, 0.25, 0.95),
                  "magenta": (0.80, 0.15, 0.85)}
MAX_OBJECTS = 3
OBJECT_SIZE_RANGE = (0.4, 0.7)       # radius of spheres, cylinders and cones; half-width of boxes
# Height as a multiple of the size (spheres are always 2 x size tall).
OBJECT_HEIGHT_FACTOR = {"box": (1.2, 2.6), "cylinder": (1.2, 3.0), "cone": (1.8, 3.2)}
OBJECT_PLACEMENT_RADIUS = 1.4         # object centres lie in this disc around the room's centre ...
OBJECT_GAP = 0.15                     # ... at least this far apart (between bounding circles)

# --- lighting -------------------------------------------------------------------------------------
# Direction towards the light (unit vector): high and to one side, so that shadows fall on the floor
# beside the objects, two walls are lit directly and the other two by the ambient term only.
LIGHT_DIRECTION = tuple(c / math.sqrt(0.55 ** 2 + 0.35 ** 2 + 1.0) for c in (-0.55, 0.35, 1.0))
AMBIENT = 0.55                # brightness of a surface facing away from the light (or in shadow)
DIFFUSE = 0.45                # added brightness of a surface facing the light: ambient + diffuse <= 1

# --- cameras --------------------------------------------------------------------------------------
FIELD_OF_VIEW = math.radians(60.0)    # horizontal and vertical (images are square)
RING_RADIUS = 3.0                     # ring cameras: this far from the room's vertical axis ...
RING_HEIGHT = 1.6                     # ... at this height ...
RING_TARGET = (0.0, 0.0, 0.6)         # ... looking at this point: the room's centre, at object height
FREE_CAMERA_EXTENT = 3.0              # free cameras: x, y in [-3, 3] (half a unit from the walls) ...
FREE_CAMERA_HEIGHT_RANGE = (0.7, 1.8)
FREE_CAMERA_PITCH_RANGE = (-0.35, 0.15)   # ... looking slightly down or up (radians)
CAMERA_CLEARANCE = 0.35               # free cameras stay this far outside every object's bounding circle
CAMERA_MODES = ("ring", "free")

_EPSILON = 1e-4


@dataclasses.dataclass(frozen=True)
class RoomScenes:
    """One row per scene; objects are padded to MAX_OBJECTS slots, of which ``object_present`` are real.

    Colours and kinds are indices into WALL_COLOURS, FLOOR_COLOURS, OBJECT_COLOURS and OBJECT_KINDS. Each
    object stands on the floor: it occupies heights ``[0, object_height]``, and its footprint is a disc of
    radius ``object_size`` (sphere, cylinder, cone; a sphere's height is twice its size) or a square of
    half-width ``object_size`` turned by ``object_yaw`` about the vertical (box).
    """

    wall_colour: torch.Tensor      # (N, 4) long: the walls at x = +3.5, y = +3.5, x = -3.5, y = -3.5
    floor_colour: torch.Tensor     # (N,) long
    object_present: torch.Tensor   # (N, MAX_OBJECTS) bool
    object_kind: torch.Tensor      # (N, MAX_OBJECTS) long
    object_colour: torch.Tensor    # (N, MAX_OBJECTS) long
    object_position: torch.Tensor  # (N, MAX_OBJECTS, 2) float: x, y of the centre of the footprint
    object_size: torch.Tensor      # (N, MAX_OBJECTS) float
    object_height: torch.Tensor    # (N, MAX_OBJECTS) float
    object_yaw: torch.Tensor       # (N, MAX_OBJECTS) float, radians

    def __len__(self) -> int:
        return len(self.floor_colour)

    def __getitem__(self, index) -> "RoomScenes":
        """Rows of scenes; an integer gives one scene that is still a batch (of one), ready for render_views."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return RoomScenes(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})

    def to(self, device: torch.device | str) -> "RoomScenes":
        return RoomScenes(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def bounding_radius(self) -> torch.Tensor:
        """(N, MAX_OBJECTS) radius of the circle around each object's footprint (a box's half-diagonal)."""
        return _bounding_radius(self.object_kind, self.object_size)


def _bounding_radius(kind: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    return torch.where(kind == OBJECT_KINDS.index("box"), size * math.sqrt(2.0), size)


def _first_true(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the first True along the last dimension, and whether there is one."""
    return mask.int().argmax(dim=-1), mask.any(dim=-1)


def sample_rooms(num_scenes: int, seed: int = 0, candidates: int = 128) -> RoomScenes:
    """Draw ``num_scenes`` random rooms, deterministic for a seed.

    Each room has four different wall colours (so that a view shows which way it faces, which a
    localisation experiment relies on), a floor colour and 1-3 objects of random kind, colour, size,
    height and yaw. Objects are placed one after another: each takes the first of ``candidates`` random
    spots in the placement disc that keeps its bounding circle clear of the objects already there. In a
    crowded room (about 5% of the three-object rooms) an object with no clear spot is shrunk to the
    smallest size and placed again; should that fail too, it is left out (under 0.2% of the rooms).
    """
    if num_scenes < 1:
        raise ValueError(f"num_scenes is {num_scenes}; ask for at least one scene")
    generator = torch.Generator().manual_seed(seed)
    n, m = num_scenes, MAX_OBJECTS

    def uniform(low, high, *shape):
        return low + (high - low) * torch.rand(*shape, generator=generator)

    wall_colour = torch.argsort(torch.rand(n, len(WALL_COLOURS), generator=generator), dim=1)[:, :4]
    floor_colour = torch.randint(len(FLOOR_COLOURS), (n,), generator=generator)
    count = torch.randint(1, m + 1, (n,), generator=generator)
    kind = torch.randint(len(OBJECT_KINDS), (n, m), generator=generator)
    colour = torch.randint(len(OBJECT_COLOURS), (n, m), generator=generator)
    size = uniform(*OBJECT_SIZE_RANGE, n, m)
    yaw = uniform(0, 2 * math.pi, n, m)
    height_factor = torch.rand(n, m, generator=generator)
    height = 2 * size
    for name, (low, high) in OBJECT_HEIGHT_FACTOR.items():
        height = torch.where(kind == OBJECT_KINDS.index(name), size * (low + (high - low) * height_factor), height)
    # Uniform in the disc: radius ~ sqrt(uniform).
    radius = OBJECT_PLACEMENT_RADIUS * torch.sqrt(torch.rand(n, m, candidates, generator=generator))
    angle = uniform(0, 2 * math.pi, n, m, candidates)
    spots = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)   # (n, m, c, 2)

    bounding = _bounding_radius(kind, size)
    position = torch.zeros(n, m, 2)
    present = torch.zeros(n, m, dtype=torch.bool)
    rows = torch.arange(n)
    for slot in range(m):
        def first_clear_spot():
            clear = torch.ones(n, candidates, dtype=torch.bool)
            for other in range(slot):
                distance = (spots[:, slot] - position[:, other, None]).norm(dim=-1)
                needed = (bounding[:, slot] + bounding[:, other] + OBJECT_GAP)[:, None]
                clear &= (distance > needed) | ~present[:, other, None]
            return _first_true(clear)

        first, found = first_clear_spot()
        crowded = ~found & (slot < count)
        if crowded.any():  # shrink the object to the smallest size and try again, rather than drop it
            shrink = torch.where(crowded, OBJECT_SIZE_RANGE[0] / size[:, slot], 1.0)
            for values in (size, height, bounding):
                values[:, slot] *= shrink
            first, found = first_clear_spot()
        position[:, slot] = spots[rows, slot, first]
        present[:, slot] = found & (slot < count)
    return RoomScenes(wall_colour=wall_colour, floor_colour=floor_colour, object_present=present, object_kind=kind,
                      object_colour=colour, object_position=position, object_size=size, object_height=height,
                      object_yaw=yaw)


def room_scene(objects: Sequence[dict], wall_colours: Sequence[str] = ("red", "green", "cerise", "orange"),
               floor_colour: str = "white") -> RoomScenes:
    """One hand-made room, e.g. to check what a known object looks like from a known pose.

    ``objects`` is a list of at most MAX_OBJECTS dicts with keys ``kind`` (a name in OBJECT_KINDS),
    ``colour`` (a name in OBJECT_COLOURS), ``position`` ((x, y) of the footprint's centre), ``size``, and
    optionally ``height`` (default twice the size, which a sphere always has) and ``yaw`` (default 0).
    Nothing checks that the objects are apart: overlapping objects render as their union.
    """
    if len(objects) > MAX_OBJECTS:
        raise ValueError(f"{len(objects)} objects given; a room holds at most {MAX_OBJECTS}")
    if len(wall_colours) != 4:
        raise ValueError(f"give four wall colours (for the walls at +x, +y, -x, -y), not {len(wall_colours)}")

    def index(palette, name, what):
        if name not in palette:
            raise ValueError(f"unknown {what} {name!r}; choose from {list(palette)}")
        return list(palette).index(name)

    m = MAX_OBJECTS
    present, kind, colour = torch.zeros(1, m, dtype=torch.bool), torch.zeros(1, m, dtype=torch.long), \
        torch.zeros(1, m, dtype=torch.long)
    position, size, height, yaw = torch.zeros(1, m, 2), torch.ones(1, m), torch.ones(1, m), torch.zeros(1, m)
    for slot, spec in enumerate(objects):
        present[0, slot] = True
        kind[0, slot] = index(OBJECT_KINDS, spec["kind"], "object kind")
        colour[0, slot] = index(OBJECT_COLOURS, spec["colour"], "object colour")
        position[0, slot] = torch.tensor(spec["position"], dtype=torch.float)
        size[0, slot] = float(spec["size"])
        is_sphere = spec["kind"] == "sphere"
        height[0, slot] = 2 * float(spec["size"]) if is_sphere else float(spec.get("height", 2 * spec["size"]))
        yaw[0, slot] = float(spec.get("yaw", 0.0))
    walls = torch.tensor([[index(WALL_COLOURS, name, "wall colour") for name in wall_colours]])
    floor = torch.tensor([index(FLOOR_COLOURS, floor_colour, "floor colour")])
    return RoomScenes(wall_colour=walls, floor_colour=floor, object_present=present, object_kind=kind,
                      object_colour=colour, object_position=position, object_size=size, object_height=height,
                      object_yaw=yaw)


# --- poses ----------------------------------------------------------------------------------------

def viewpoint_vector(position: torch.Tensor, yaw: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
    """GQN's viewpoint (..., 7) = (x, y, z, cos yaw, sin yaw, cos pitch, sin pitch) from a pose.

    ``position`` is (..., 3); ``yaw`` and ``pitch`` are (...) radians. Cosines and sines instead of the
    angles themselves keep the input continuous where yaw wraps around from 2 pi to 0.
    """
    position, yaw, pitch = (torch.as_tensor(t, dtype=torch.float) for t in (position, yaw, pitch))
    yaw, pitch = torch.broadcast_tensors(yaw, pitch)
    return torch.cat([position, torch.stack([torch.cos(yaw), torch.sin(yaw), torch.cos(pitch),
                                             torch.sin(pitch)], dim=-1)], dim=-1)


def viewpoint_pose(viewpoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inverse of ``viewpoint_vector``: (position (..., 3), yaw in (-pi, pi], pitch (...)) in radians."""
    if viewpoints.shape[-1] != 7:
        raise ValueError(f"viewpoints have {viewpoints.shape[-1]} numbers each; GQN viewpoints have 7 "
                         "(x, y, z, cos yaw, sin yaw, cos pitch, sin pitch)")
    yaw = torch.atan2(viewpoints[..., 4], viewpoints[..., 3])
    pitch = torch.atan2(viewpoints[..., 6], viewpoints[..., 5])
    return viewpoints[..., :3], yaw, pitch


def look_at(position: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(yaw, pitch) of a camera at ``position`` (..., 3) that looks at ``target`` (..., 3)."""
    offset = torch.as_tensor(target, dtype=torch.float) - torch.as_tensor(position, dtype=torch.float)
    yaw = torch.atan2(offset[..., 1], offset[..., 0])
    pitch = torch.atan2(offset[..., 2], offset[..., :2].norm(dim=-1))
    return yaw, pitch


def ring_viewpoints(angles: torch.Tensor) -> torch.Tensor:
    """Viewpoints (..., 7) of ring cameras at the given angles around the room's vertical axis.

    A camera at angle ``a`` stands at ``RING_RADIUS * (cos a, sin a)``, height RING_HEIGHT, and looks at
    RING_TARGET, so its yaw is ``a + pi`` (wrapped to (-pi, pi]) and its pitch is the same for all.
    """
    angles = torch.as_tensor(angles, dtype=torch.float)
    position = torch.stack([RING_RADIUS * torch.cos(angles), RING_RADIUS * torch.sin(angles),
                            torch.full_like(angles, RING_HEIGHT)], dim=-1)
    yaw, pitch = look_at(position, torch.tensor(RING_TARGET).expand_as(position))
    return viewpoint_vector(position, yaw, pitch)


def sample_ring_viewpoints(num_scenes: int, views_per_scene: int, seed: int = 0) -> torch.Tensor:
    """(num_scenes, views_per_scene, 7) ring viewpoints at uniformly random angles in [0, 2 pi)."""
    _check_counts(num_scenes, views_per_scene)
    generator = torch.Generator().manual_seed(seed)
    return ring_viewpoints(2 * math.pi * torch.rand(num_scenes, views_per_scene, generator=generator))


def sample_free_viewpoints(scenes: RoomScenes, views_per_scene: int, seed: int = 0,
                           candidates: int = 32) -> torch.Tensor:
    """(len(scenes), views_per_scene, 7) viewpoints anywhere in the room, outside the objects.

    Position: x, y uniform in [-FREE_CAMERA_EXTENT, FREE_CAMERA_EXTENT], the first of ``candidates``
    draws that keeps CAMERA_CLEARANCE from every object's bounding circle; height, yaw and pitch uniform
    in their ranges. The camera may face a wall: free-camera views are harder than ring views.
    """
    _check_counts(len(scenes), views_per_scene)
    generator = torch.Generator().manual_seed(seed)
    n, k = len(scenes), views_per_scene

    def uniform(low, high, *shape):
        return low + (high - low) * torch.rand(*shape, generator=generator)

    spots = uniform(-FREE_CAMERA_EXTENT, FREE_CAMERA_EXTENT, n, k, candidates, 2)
    distance = (spots[:, :, :, None] - scenes.object_position[:, None, None]).norm(dim=-1)   # (n, k, c, m)
    needed = (scenes.bounding_radius() + CAMERA_CLEARANCE)[:, None, None]
    clear = ((distance > needed) | ~scenes.object_present[:, None, None]).all(dim=-1)
    first, found = _first_true(clear)
    if not found.all():
        raise RuntimeError("no free camera position found outside the objects; raise `candidates`")
    xy = torch.gather(spots, 2, first[:, :, None, None].expand(n, k, 1, 2))[:, :, 0]
    z = uniform(*FREE_CAMERA_HEIGHT_RANGE, n, k)
    yaw = uniform(-math.pi, math.pi, n, k)
    pitch = uniform(*FREE_CAMERA_PITCH_RANGE, n, k)
    return viewpoint_vector(torch.cat([xy, z[..., None]], dim=-1), yaw, pitch)


def _check_counts(num_scenes: int, views_per_scene: int) -> None:
    if num_scenes < 1:
        raise ValueError(f"num_scenes is {num_scenes}; ask for at least one scene")
    if views_per_scene < 1:
        raise ValueError(f"views_per_scene is {views_per_scene}; ask for at least one view per scene")


# --- ray casting ----------------------------------------------------------------------------------

def camera_rays(viewpoints: torch.Tensor, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray origins (V, 1, 3) (each view's camera position) and unit directions (V, resolution**2, 3).

    The rays go through the pixel centres, row by row from the top row, each row from left to right.
    """
    position, yaw, pitch = viewpoint_pose(viewpoints)
    cy, sy, cp, sp = torch.cos(yaw), torch.sin(yaw), torch.cos(pitch), torch.sin(pitch)
    forward = torch.stack([cp * cy, cp * sy, sp], dim=-1)
    right = torch.stack([sy, -cy, torch.zeros_like(sy)], dim=-1)
    up = torch.stack([-sp * cy, -sp * sy, cp], dim=-1)                     # right x forward
    scale = math.tan(FIELD_OF_VIEW / 2)
    offsets = ((torch.arange(resolution, device=viewpoints.device) + 0.5) * 2 / resolution - 1) * scale
    v, u = torch.meshgrid(-offsets, offsets, indexing="ij")                # v up, rows go down
    u, v = u.reshape(1, -1, 1), v.reshape(1, -1, 1)
    directions = forward[:, None] + u * right[:, None] + v * up[:, None]
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return position[:, None], directions


def _safe(d: torch.Tensor) -> torch.Tensor:
    """``d`` with zeros nudged away from zero, keeping the sign, so that 1 / d is finite."""
    return torch.where(d.abs() < 1e-9, torch.where(d < 0, -1e-9, 1e-9), d)


def _hit_sphere(o, d, size, height):
    oc = o.clone()
    oc[..., 2] -= size[:, None]                                            # centre at height `size`
    b = (oc * d).sum(-1)
    c = (oc * oc).sum(-1) - size[:, None] ** 2
    discriminant = b * b - c
    t = -b - torch.sqrt(discriminant.clamp(min=0))
    return torch.where((discriminant >= 0) & (t > _EPSILON), t, torch.inf)


def _hit_box(o, d, size, height):
    # Slab method: the ray is inside the box between the last entry and the first exit of the three slabs.
    low = torch.stack([-size, -size, torch.zeros_like(size)], dim=-1)[:, None]
    high = torch.stack([size, size, height], dim=-1)[:, None]
    inverse = 1 / _safe(d)
    t1, t2 = (low - o) * inverse, (high - o) * inverse
    t_near = torch.minimum(t1, t2).amax(dim=-1)
    t_far = torch.maximum(t1, t2).amin(dim=-1)
    return torch.where((t_near <= t_far) & (t_near > _EPSILON), t_near, torch.inf)


def _hit_cylinder(o, d, size, height):
    radius, top = size[:, None], height[:, None]
    a = d[..., 0] ** 2 + d[..., 1] ** 2
    b = o[..., 0] * d[..., 0] + o[..., 1] * d[..., 1]
    c = o[..., 0] ** 2 + o[..., 1] ** 2 - radius ** 2
    discriminant = b * b - a * c
    t_side = (-b - torch.sqrt(discriminant.clamp(min=0))) / _safe(a)
    z_side = o[..., 2] + t_side * d[..., 2]
    t_side = torch.where((discriminant >= 0) & (t_side > _EPSILON) & (z_side >= 0) & (z_side <= top), t_side,
                         torch.inf)
    t_top = (top - o[..., 2]) / _safe(d[..., 2])
    x_top, y_top = o[..., 0] + t_top * d[..., 0], o[..., 1] + t_top * d[..., 1]
    t_top = torch.where((t_top > _EPSILON) & (x_top ** 2 + y_top ** 2 <= radius ** 2), t_top, torch.inf)
    return torch.minimum(t_side, t_top)          # the base disc lies on the floor and is never seen


def _hit_cone(o, d, size, height):
    # Apex up: points with x^2 + y^2 = k^2 (height - z)^2, 0 <= z <= height, k = size / height. The
    # quadratic also describes the mirrored cone above the apex, which the height test removes.
    k2 = (size / height)[:, None] ** 2
    q0, q1 = height[:, None] - o[..., 2], -d[..., 2]
    a = d[..., 0] ** 2 + d[..., 1] ** 2 - k2 * q1 ** 2
    b = o[..., 0] * d[..., 0] + o[..., 1] * d[..., 1] - k2 * q0 * q1
    c = o[..., 0] ** 2 + o[..., 1] ** 2 - k2 * q0 ** 2
    discriminant = b * b - a * c
    root = torch.sqrt(discriminant.clamp(min=0))
    a = _safe(a)
    best = torch.full_like(a, torch.inf)
    for t in ((-b - root) / a, (-b + root) / a):
        z = o[..., 2] + t * d[..., 2]
        valid = (discriminant >= 0) & (t > _EPSILON) & (z >= 0) & (z <= height[:, None])
        best = torch.minimum(best, torch.where(valid, t, torch.inf))
    return best


_HITS = {"sphere": _hit_sphere, "box": _hit_box, "cylinder": _hit_cylinder, "cone": _hit_cone}


def _to_local(v, cos, sin):
    """Turn vectors (..., 3) by minus the object's yaw about the vertical: into the object's frame."""
    return torch.stack([cos * v[..., 0] + sin * v[..., 1], -sin * v[..., 0] + cos * v[..., 1], v[..., 2]], -1)


def _to_world(v, cos, sin):
    return torch.stack([cos * v[..., 0] - sin * v[..., 1], sin * v[..., 0] + cos * v[..., 1], v[..., 2]], -1)


def _hit_objects(origins, directions, scenes: RoomScenes) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to the nearest object along each ray (V, R) (inf for none) and which slot it is (V, R).

    ``scenes`` has one row per view. Rays are moved into each object's own frame (footprint centred at
    the origin, turned by minus its yaw), and each kind's intersection is computed only for the
    (view, slot) pairs holding that kind: an average room costs two intersections per ray, not twelve.
    """
    views, rays = directions.shape[:2]
    device = origins.device
    t_all = torch.full((views * MAX_OBJECTS, rays), torch.inf, device=device)
    kinds, present = scenes.object_kind.reshape(-1), scenes.object_present.reshape(-1)
    for kind_index, kind in enumerate(OBJECT_KINDS):
        pairs = torch.nonzero(present & (kinds == kind_index)).squeeze(1)
        if len(pairs) == 0:
            continue
        view, slot = pairs // MAX_OBJECTS, pairs % MAX_OBJECTS
        centre = torch.cat([scenes.object_position[view, slot], torch.zeros(len(pairs), 1, device=device)], -1)
        yaw = scenes.object_yaw[view, slot][:, None]
        cos, sin = torch.cos(yaw), torch.sin(yaw)
        o = _to_local(origins[view] - centre[:, None], cos, sin)
        d = _to_local(directions[view], cos, sin)
        t_all[pairs] = _HITS[kind](o, d, scenes.object_size[view, slot], scenes.object_height[view, slot])
    return t_all.view(views, MAX_OBJECTS, rays).min(dim=1)


def _object_normals(points, slot, scenes: RoomScenes) -> torch.Tensor:
    """World normals (V, R, 3) of the objects in ``slot`` (V, R) at ``points`` on their surfaces."""
    def of_slot(values):
        return torch.gather(values, 1, slot)

    kind, size, height, yaw = (of_slot(t) for t in (scenes.object_kind, scenes.object_size,
                                                    scenes.object_height, scenes.object_yaw))
    centre = torch.stack([of_slot(scenes.object_position[..., 0]), of_slot(scenes.object_position[..., 1])], -1)
    cos, sin = torch.cos(yaw), torch.sin(yaw)
    offset = points[..., :2] - centre
    x, y = cos * offset[..., 0] + sin * offset[..., 1], -sin * offset[..., 0] + cos * offset[..., 1]
    z = points[..., 2]
    zeros, ones = torch.zeros_like(z), torch.ones_like(z)
    sphere = torch.stack([x, y, z - size], -1)
    # A box's face is the one the point is relatively nearest to; a cylinder's, its side or its top.
    q = torch.stack([x / size, y / size, (2 * z - height) / height], -1)
    box = torch.sign(q) * F.one_hot(q.abs().argmax(-1), 3).to(q.dtype)
    rho = torch.sqrt(x ** 2 + y ** 2).clamp(min=1e-9)
    on_top = (height - z).abs() < (size - rho).abs()
    cylinder = torch.where(on_top[..., None], torch.stack([zeros, zeros, ones], -1), torch.stack([x, y, zeros], -1))
    cone = torch.stack([x, y, (size / height) ** 2 * (height - z)], -1)
    local = cone
    for name, normal in (("cylinder", cylinder), ("box", box), ("sphere", sphere)):
        local = torch.where((kind == OBJECT_KINDS.index(name))[..., None], normal, local)
    local = local / local.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    return _to_world(local, cos, sin)


def _palette(colours: dict, device) -> torch.Tensor:
    return torch.tensor(list(colours.values()), device=device)


def _shade(origins, directions, scenes: RoomScenes) -> torch.Tensor:
    """Colours (V, R, 3) of the rays: the nearest of objects, floor, walls and sky, Lambertian with shadows."""
    device = origins.device
    ox, oy, oz = origins.unbind(-1)
    dx, dy, dz = (_safe(d) for d in directions.unbind(-1))
    # The rays start inside the room, so each leaves it through exactly one wall plane (or the open top).
    t_x = (torch.where(dx > 0, ROOM_HALF_WIDTH, -ROOM_HALF_WIDTH) - ox) / dx
    t_y = (torch.where(dy > 0, ROOM_HALF_WIDTH, -ROOM_HALF_WIDTH) - oy) / dy
    t_wall = torch.minimum(t_x, t_y)
    wall = torch.where(t_x <= t_y, torch.where(dx > 0, 0, 2), torch.where(dy > 0, 1, 3))    # +x, +y, -x, -y
    t_floor = torch.where(dz < 0, -oz / dz, torch.inf)
    hits_floor = t_floor <= t_wall
    t_room = torch.where(hits_floor, t_floor, torch.where(oz + t_wall * dz <= WALL_HEIGHT, t_wall, torch.inf))

    t_object, slot = _hit_objects(origins, directions, scenes)
    hits_object = t_object < t_room
    hits_floor &= ~hits_object
    t = torch.minimum(t_object, t_room)
    sky = torch.isinf(t)
    point = origins + t.nan_to_num(posinf=0.0)[..., None] * directions

    # Albedo and normal of whatever each ray hit.
    floor_albedo = _palette(FLOOR_COLOURS, device)[scenes.floor_colour][:, None]
    tile = (torch.floor(point[..., 0] / FLOOR_TILE) + torch.floor(point[..., 1] / FLOOR_TILE)) % 2
    floor_albedo = floor_albedo * (1 - FLOOR_TILE_DARKENING * tile)[..., None]
    wall_albedo = _palette(WALL_COLOURS, device)[torch.gather(scenes.wall_colour, 1, wall)]
    object_albedo = _palette(OBJECT_COLOURS, device)[torch.gather(scenes.object_colour, 1, slot)]
    albedo = torch.where(hits_object[..., None], object_albedo,
                         torch.where(hits_floor[..., None], floor_albedo, wall_albedo))
    wall_normals = torch.tensor([[-1.0, 0, 0], [0, -1.0, 0], [1.0, 0, 0], [0, 1.0, 0]], device=device)
    up = torch.tensor([0.0, 0, 1], device=device)
    normal = torch.where(hits_object[..., None], _object_normals(point, slot, scenes),
                         torch.where(hits_floor[..., None], up, wall_normals[wall]))

    light = torch.tensor(LIGHT_DIRECTION, device=device)
    facing = (normal * light).sum(-1).clamp(min=0)
    # Hard shadows: a point is lit if a ray from it towards the light reaches no object (the walls cast
    # none: with the light this high their shadows would only darken the room's edges).
    t_blocked, _ = _hit_objects(point + 1e-3 * normal, light.expand_as(point), scenes)
    lit = (facing > 0) & torch.isinf(t_blocked)
    colour = albedo * (AMBIENT + DIFFUSE * facing * lit)[..., None]
    return torch.where(sky[..., None], torch.tensor(SKY_COLOUR, device=device), colour)


def render_views(scenes: RoomScenes, viewpoints: torch.Tensor, resolution: int = 32, supersample: int = 1,
                 max_rays: int = 1 << 16) -> torch.Tensor:
    """Images (N, K, 3, resolution, resolution) in [0, 1] of each scene from each of its K viewpoints.

    ``viewpoints`` is (N, K, 7), one row of poses per scene (see the module docstring for the
    convention); to score many candidate poses of one scene, pass ``scenes[i]`` and viewpoints
    (1, M, 7). ``supersample`` renders at that factor larger and averages blocks of pixels: anti-aliased
    edges. Views are rendered in chunks of at most ``max_rays`` rays to bound memory; the computation
    runs on the device of ``viewpoints``.
    """
    if resolution < 8:
        raise ValueError(f"resolution {resolution} is too small to show a room; use 8 or more (GQN uses 64)")
    if supersample < 1:
        raise ValueError(f"supersample is {supersample}; use 1 (no anti-aliasing) or more")
    if viewpoints.dim() != 3 or viewpoints.shape[-1] != 7:
        raise ValueError(f"viewpoints have shape {tuple(viewpoints.shape)}; pass (num_scenes, views, 7) "
                         "GQN viewpoints (x, y, z, cos yaw, sin yaw, cos pitch, sin pitch)")
    if viewpoints.shape[0] != len(scenes):
        raise ValueError(f"{viewpoints.shape[0]} rows of viewpoints for {len(scenes)} scenes; pass one row per "
                         "scene (index the scenes, e.g. scenes[3], to render one scene from many poses)")
    n, k = viewpoints.shape[:2]
    fine = resolution * supersample
    per_view = scenes.to(viewpoints.device)[torch.arange(n, device=viewpoints.device).repeat_interleave(k)]
    flat = viewpoints.reshape(n * k, 7).float()
    chunk = max(1, max_rays // fine ** 2)
    images = []
    for start in range(0, n * k, chunk):
        origins, directions = camera_rays(flat[start:start + chunk], fine)
        colour = _shade(origins, directions, per_view[start:start + chunk])
        image = colour.view(-1, fine, fine, 3).permute(0, 3, 1, 2)
        images.append(F.avg_pool2d(image, supersample) if supersample > 1 else image)
    return torch.cat(images).clamp(0, 1).view(n, k, 3, resolution, resolution)


# --- the dataset ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RoomsDataset:
    """Rendered views of procedural rooms: what a GQN trains on.

    ``images`` are uint8 (N, K, 3, H, W) to save memory (a float copy of 2,000 scenes x 10 views at 64 x 64
    takes 1 GB); use ``images[i].float() / 255`` per batch. ``viewpoints`` are (N, K, 7) float.
    """

    images: torch.Tensor
    viewpoints: torch.Tensor
    scenes: RoomScenes

    def __len__(self) -> int:
        return len(self.images)


def rooms_dataset(num_scenes: int, views_per_scene: int = 10, resolution: int = 32, seed: int = 0,
                  camera: str = "ring", supersample: int = 2, cache: bool = True) -> RoomsDataset:
    """``num_scenes`` random rooms, each rendered from ``views_per_scene`` random cameras; deterministic.

    ``camera="ring"`` is GQN's rooms_ring_camera setting (cameras on a circle, facing the centre);
    ``camera="free"`` puts them anywhere in the room, facing any way. With ``cache=True`` the result is
    kept under ``cache_root() / "scenes"``, keyed by every argument and SCENES_VERSION; an unreadable
    cache file is rendered again, with a warning.
    """
    if camera not in CAMERA_MODES:
        raise ValueError(f"unknown camera mode {camera!r}; use one of {CAMERA_MODES}")
    if dry_run_steps():  # a dry run times training, not rendering: a few hundred rooms, never cached
        num_scenes, cache = procedural_count(num_scenes, f"rooms at {resolution}×{resolution}"), False
    _check_counts(num_scenes, views_per_scene)
    if resolution < 8:
        raise ValueError(f"resolution {resolution} is too small to show a room; use 8 or more (GQN uses 64)")
    if supersample < 1:
        raise ValueError(f"supersample is {supersample}; use 1 (no anti-aliasing) or more")

    def build() -> RoomsDataset:
        scenes = sample_rooms(num_scenes, seed=seed)
        # Separate streams for cameras and scenes: the same seed gives the same rooms in both modes.
        if camera == "ring":
            viewpoints = sample_ring_viewpoints(num_scenes, views_per_scene, seed=seed + 1_000_003)
        else:
            viewpoints = sample_free_viewpoints(scenes, views_per_scene, seed=seed + 1_000_003)
        images = []
        for start in range(0, num_scenes, 256):
            rendered = render_views(scenes[start:start + 256], viewpoints[start:start + 256], resolution, supersample)
            images.append((rendered * 255).round().to(torch.uint8))
        return RoomsDataset(torch.cat(images), viewpoints, scenes)

    if not cache:
        return build()
    name = (f"rooms-v{SCENES_VERSION}-{camera}-n{num_scenes}-k{views_per_scene}-r{resolution}"
            f"-ss{supersample}-seed{seed}.pt")
    path = cache_root() / "scenes" / name
    expected = (num_scenes, views_per_scene, 3, resolution, resolution)
    if path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if tuple(state["images"].shape) != expected:
                raise ValueError(f"images have shape {tuple(state['images'].shape)}, expected {expected}")
            return RoomsDataset(state["images"], state["viewpoints"], RoomScenes(**state["scenes"]))
        except Exception as error:  # an unreadable cache is rendered again: that takes seconds to minutes
            warnings.warn(f"Cached scenes {path} are unreadable ({error}); rendering them again.", stacklevel=2)
    dataset = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")  # two test workers may render it at once
    torch.save({"images": dataset.images, "viewpoints": dataset.viewpoints, "scenes": dataset.scenes.as_dict()},
               partial)
    partial.replace(path)
    return dataset
