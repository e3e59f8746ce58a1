import math

import pytest
import torch

import itemchest_utils.scenes as scenes_module
from itemchest_utils.scenes import (AMBIENT, CAMERA_CLEARANCE, DIFFUSE, FLOOR_COLOURS, FLOOR_TILE_DARKENING,
                                    FREE_CAMERA_EXTENT, FREE_CAMERA_HEIGHT_RANGE, FREE_CAMERA_PITCH_RANGE,
                                    LIGHT_DIRECTION, OBJECT_COLOURS, OBJECT_GAP, OBJECT_KINDS, RING_HEIGHT,
                                    RING_RADIUS, RING_TARGET, ROOM_HALF_WIDTH, SKY_COLOUR, WALL_COLOURS,
                                    render_views, ring_viewpoints, room_scene, rooms_dataset, sample_free_viewpoints,
                                    sample_rooms, viewpoint_pose, viewpoint_vector)

LIGHT = torch.tensor(LIGHT_DIRECTION)
# Walls and floor without red or blue, so that pixels of those colours can only be the test's objects.
NEUTRAL_ROOM = {"wall_colours": ("green", "yellow", "cerise", "orange"), "floor_colour": "white"}


def looking(position, yaw, pitch):
    """A (1, 1, 7) viewpoint: one scene, one view."""
    return viewpoint_vector(torch.tensor([position]), torch.tensor([yaw]), torch.tensor([pitch]))[None]


def mask_of(images, colour_name):
    """Pixels (..., H, W) whose colour is a shade of the named object colour (shading only scales it)."""
    colour = torch.tensor(OBJECT_COLOURS[colour_name])
    pixels = images.movedim(-3, -1)
    chromaticity = pixels / pixels.sum(-1, keepdim=True).clamp(min=1e-6)
    return ((chromaticity - colour / colour.sum()).abs().max(-1).values < 0.03) & (pixels.sum(-1) > 0.3)


def test_same_seed_same_data_and_other_seed_other_data():
    for camera in ("ring", "free"):
        first = rooms_dataset(6, 4, resolution=16, seed=3, camera=camera, supersample=1, cache=False)
        again = rooms_dataset(6, 4, resolution=16, seed=3, camera=camera, supersample=1, cache=False)
        other = rooms_dataset(6, 4, resolution=16, seed=4, camera=camera, supersample=1, cache=False)
        assert torch.equal(first.images, again.images) and torch.equal(first.viewpoints, again.viewpoints)
        assert all(torch.equal(value, again.scenes.as_dict()[name]) for name, value in first.scenes.as_dict().items())
        assert not torch.equal(first.images, other.images)
        assert not torch.equal(first.viewpoints, other.viewpoints)


def test_an_object_in_front_of_the_camera_is_seen_and_one_behind_a_box_is_hidden():
    sphere = {"kind": "sphere", "colour": "red", "position": (1.5, 0.0), "size": 0.7}
    wall_of_box = {"kind": "box", "colour": "blue", "position": (0.0, 0.0), "size": 0.6, "height": 2.4}
    near_side, far_side = ring_viewpoints(torch.tensor([[0.0, math.pi]])).unbind(1)   # at x = +3 and x = -3
    both = render_views(room_scene([sphere, wall_of_box], **NEUTRAL_ROOM), torch.stack([near_side, far_side], 1), 32)
    sphere_only = render_views(room_scene([sphere], **NEUTRAL_ROOM), far_side[:, None], 32)
    red, blue = mask_of(both, "red")[0], mask_of(both, "blue")[0]
    centre = (slice(12, 20), slice(12, 20))
    # From x = +3 the sphere stands between the camera and the box: it fills the centre of the image.
    assert red[0][centre].all() and red[0].float().mean() > 0.15
    # From x = -3 the box is in front: no red pixel at all, though without the box the sphere shows.
    assert blue[1][centre].all() and not red[1].any()
    assert mask_of(sphere_only, "red")[0, 0].sum() > 20


def test_image_is_upright_and_not_mirrored():
    scene = room_scene([{"kind": "sphere", "colour": "red", "position": (2.0, 1.0), "size": 0.4},
                        {"kind": "sphere", "colour": "blue", "position": (2.0, -1.0), "size": 0.4}], **NEUTRAL_ROOM)
    image = render_views(scene, looking((-1.0, 0.0, 0.4), yaw=0.0, pitch=0.0), 32)[0, 0]
    columns = torch.arange(32.0)
    red, blue = mask_of(image, "red"), mask_of(image, "blue")
    # Looking along +x with z up, +y is on the left.
    assert red.any() and blue.any()
    assert (red.float() * columns).sum() / red.sum() < 12 and (blue.float() * columns).sum() / blue.sum() > 20
    assert torch.allclose(image[:, 0, 16], torch.tensor(SKY_COLOUR))      # sky at the top ...
    white_floor = torch.tensor(FLOOR_COLOURS["white"])
    bottom = image[:, 31, 16]
    assert torch.allclose(bottom / bottom.sum(), white_floor / white_floor.sum(), atol=0.01)   # ... floor below
    # Yaw a quarter turn looks along +y: from behind the blue sphere, it fills the middle of the view.
    turned = render_views(scene, looking((2.0, -1.0 - 1.5, 0.4), yaw=math.pi / 2, pitch=0.0), 33)[0, 0]
    assert mask_of(turned, "blue")[14:19, 14:19].all()


def test_viewpoints_round_trip_through_poses():
    generator = torch.Generator().manual_seed(0)
    position = torch.randn(100, 3, generator=generator)
    yaw = (torch.rand(100, generator=generator) * 2 - 1) * math.pi
    pitch = (torch.rand(100, generator=generator) * 2 - 1) * 1.5
    vector = viewpoint_vector(position, yaw, pitch)
    assert vector.shape == (100, 7)
    back_position, back_yaw, back_pitch = viewpoint_pose(vector)
    assert torch.allclose(viewpoint_vector(back_position, back_yaw, back_pitch), vector, atol=1e-6)
    assert torch.allclose(back_yaw, yaw, atol=1e-5) and torch.allclose(back_pitch, pitch, atol=1e-5)
    assert torch.equal(back_position, position)
    ring = ring_viewpoints(torch.linspace(0, 2 * math.pi, 17))
    assert torch.allclose(ring[:, :2].norm(dim=-1), torch.full((17,), RING_RADIUS))
    assert torch.allclose(ring[:, 2], torch.full((17,), RING_HEIGHT))
    assert torch.allclose(ring[:, 3:5].norm(dim=-1), torch.ones(17))
    assert torch.allclose(ring[:, 5:].norm(dim=-1), torch.ones(17))


def test_ring_cameras_look_at_the_room_centre():
    # A sphere centred on the ring's target point must project to the middle of every ring view.
    assert RING_TARGET[:2] == (0.0, 0.0)
    scene = room_scene([{"kind": "sphere", "colour": "red", "position": (0.0, 0.0), "size": RING_TARGET[2]}],
                       **NEUTRAL_ROOM)
    angles = torch.linspace(0, 2 * math.pi, 9)[:-1] + 0.3
    red = mask_of(render_views(scene, ring_viewpoints(angles)[None], 32)[0], "red").float()   # (8, 32, 32)
    rows, columns = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    area = red.sum(dim=(1, 2))
    assert (area > 30).all()
    assert torch.allclose((red * rows).sum(dim=(1, 2)) / area, torch.full((8,), 15.5), atol=0.25)
    assert torch.allclose((red * columns).sum(dim=(1, 2)) / area, torch.full((8,), 15.5), atol=0.25)


def test_floor_and_walls_are_lambertian():
    scene = room_scene([], wall_colours=("red", "green", "cerise", "orange"), floor_colour="sand")
    floor = torch.tensor(FLOOR_COLOURS["sand"])
    viewpoints = torch.cat([
        looking((0.5, 0.5, 1.5), yaw=0.0, pitch=-math.pi / 2),       # straight down on an even floor tile
        looking((1.5, 0.5, 1.5), yaw=0.0, pitch=-math.pi / 2),       # ... and on an odd one
        looking((0.0, 0.0, 1.2), yaw=0.0, pitch=0.0),                # at the wall x = +3.5 (normal -x)
        looking((0.0, 0.0, 1.2), yaw=math.pi, pitch=0.0),            # at the wall x = -3.5 (normal +x)
    ], dim=1)
    centre = render_views(scene, viewpoints, 33)[0, :, :, 16, 16]    # odd size: a pixel ray on the optical axis
    lit_floor = floor * (AMBIENT + DIFFUSE * LIGHT[2])
    assert torch.allclose(centre[0], lit_floor, atol=1e-4)
    assert torch.allclose(centre[1], lit_floor * (1 - FLOOR_TILE_DARKENING), atol=1e-4)
    assert torch.allclose(centre[2], torch.tensor(WALL_COLOURS["red"]) * (AMBIENT + DIFFUSE * -LIGHT[0]), atol=1e-4)
    assert LIGHT[0] < 0  # the x = -3.5 wall faces away from the light: ambient only
    assert torch.allclose(centre[3], torch.tensor(WALL_COLOURS["cerise"]) * AMBIENT, atol=1e-4)


def test_sphere_brightness_follows_the_cosine_to_the_light():
    radius = RING_TARGET[2]
    scene = room_scene([{"kind": "sphere", "colour": "yellow", "position": (0.0, 0.0), "size": radius}],
                       **NEUTRAL_ROOM)
    angles = torch.linspace(0, 2 * math.pi, 13)[:-1]
    viewpoints = ring_viewpoints(angles)
    centre = render_views(scene, viewpoints[None], 33)[0, :, :, 16, 16]        # the ray through the sphere's centre
    to_camera = viewpoints[:, :3] - torch.tensor(RING_TARGET)
    normal = to_camera / to_camera.norm(dim=-1, keepdim=True)                  # where that ray meets the sphere
    expected = torch.tensor(OBJECT_COLOURS["yellow"]) * (AMBIENT + DIFFUSE * (normal @ LIGHT).clamp(min=0))[:, None]
    assert torch.allclose(centre, expected, atol=1e-4)
    assert (normal @ LIGHT).min() < 0 < (normal @ LIGHT).max()                 # both the lit and the dark side


def test_faces_of_a_turned_box_and_a_cylinder_top_are_shaded_by_their_own_normals():
    yaw, centre, size, height = 0.5, torch.tensor([0.3, -0.2]), 0.6, 1.2
    scene = room_scene([{"kind": "box", "colour": "green", "position": centre.tolist(), "size": size,
                         "height": height, "yaw": yaw},
                        {"kind": "cylinder", "colour": "green", "position": (-1.5, 1.5), "size": 0.5, "height": 1.0}],
                       **NEUTRAL_ROOM)
    face_angles = yaw + torch.arange(4) * math.pi / 2
    normals = torch.stack([torch.cos(face_angles), torch.sin(face_angles), torch.zeros(4)], -1)
    # Cameras 2 units in front of each side face, at half the box's height, looking straight at it ...
    positions = torch.cat([centre + (size + 2.0) * normals[:, :2], torch.full((4, 1), height / 2)], -1)
    viewpoints = viewpoint_vector(positions, face_angles + math.pi, torch.zeros(4))
    # ... and one above the cylinder, looking down on its top.
    viewpoints = torch.cat([viewpoints, looking((-1.5, 1.5, 2.0), yaw=0.0, pitch=-math.pi / 2)[0]])
    normals = torch.cat([normals, torch.tensor([[0.0, 0.0, 1.0]])])
    pixels = render_views(scene, viewpoints[None], 33)[0, :, :, 16, 16]
    expected = torch.tensor(OBJECT_COLOURS["green"]) * (AMBIENT + DIFFUSE * (normals @ LIGHT).clamp(min=0))[:, None]
    assert torch.allclose(pixels, expected, atol=1e-4)
    assert len(set((normals @ LIGHT).clamp(min=0).round(decimals=3).tolist())) >= 4   # faces differ in brightness


def test_an_object_casts_a_hard_shadow_on_the_floor():
    box = {"kind": "box", "colour": "blue", "position": (0.0, 0.0), "size": 0.5, "height": 2.0}
    over_the_shadow = looking((1.1, -0.2, 1.5), yaw=0.0, pitch=-math.pi / 2)
    with_box = render_views(room_scene([box], **NEUTRAL_ROOM), over_the_shadow, 33)[0, 0, :, 16, 16]
    without = render_views(room_scene([], **NEUTRAL_ROOM), over_the_shadow, 33)[0, 0, :, 16, 16]
    floor = torch.tensor(FLOOR_COLOURS["white"])
    # (1.1, -0.2) lies downwind of the box from the light: the ray towards the light enters the box.
    assert torch.allclose(with_box, floor * AMBIENT, atol=1e-4)
    assert torch.allclose(without, floor * (AMBIENT + DIFFUSE * LIGHT[2]), atol=1e-4)


def test_dataset_shapes_types_and_camera_ranges():
    for camera in ("ring", "free"):
        data = rooms_dataset(5, 3, resolution=16, camera=camera, supersample=2, cache=False)
        assert data.images.shape == (5, 3, 3, 16, 16) and data.images.dtype == torch.uint8
        assert data.viewpoints.shape == (5, 3, 7) and data.viewpoints.dtype == torch.float32
        assert len(data) == len(data.scenes) == 5
        position, yaw, pitch = viewpoint_pose(data.viewpoints)
        if camera == "ring":   # a ring view always shows floor, walls and objects (a free one may face a wall)
            assert all(len(view.unique()) > 20 for view in data.images.flatten(0, 1))
            assert torch.allclose(position[..., :2].norm(dim=-1), torch.full((5, 3), RING_RADIUS))
        else:
            assert (position[..., :2].abs() <= FREE_CAMERA_EXTENT).all()
            low, high = FREE_CAMERA_HEIGHT_RANGE
            assert ((position[..., 2] >= low) & (position[..., 2] <= high)).all()
            assert ((pitch >= FREE_CAMERA_PITCH_RANGE[0] - 1e-6) & (pitch <= FREE_CAMERA_PITCH_RANGE[1] + 1e-6)).all()


def test_dataset_images_are_the_rendered_views_of_its_scenes():
    # What a localisation experiment relies on: the stored scene and pose re-render the stored image.
    data = rooms_dataset(4, 3, resolution=16, seed=5, supersample=2, cache=False)
    again = render_views(data.scenes[2], data.viewpoints[2:3], 16, supersample=2)
    assert ((again * 255).round() - data.images[2:3].float()).abs().max() <= 1


def test_objects_stay_apart_inside_the_room_and_away_from_cameras():
    scenes = sample_rooms(2000, seed=0)
    present, position, bounding = scenes.object_present, scenes.object_position, scenes.bounding_radius()
    distance = (position[:, :, None] - position[:, None]).norm(dim=-1)
    needed = bounding[:, :, None] + bounding[:, None] + OBJECT_GAP
    pairs = present[:, :, None] & present[:, None] & ~torch.eye(3, dtype=torch.bool)
    assert (distance[pairs] > needed[pairs]).all()
    reach = (position.norm(dim=-1) + bounding)[present]
    assert reach.max() < RING_RADIUS - 0.3 < ROOM_HALF_WIDTH                # the ring never enters an object
    counts = present.sum(dim=1)
    assert set(counts.tolist()) == {1, 2, 3} and (counts == 3).float().mean() > 0.31
    assert set(scenes.object_kind[present].tolist()) == set(range(len(OBJECT_KINDS)))
    free = sample_free_viewpoints(scenes[:200], 10, seed=0)
    gap = (free[:, :, None, :2] - position[:200, None]).norm(dim=-1) - bounding[:200, None]   # (200, 10, 3)
    assert (gap[present[:200, None].expand_as(gap)] > CAMERA_CLEARANCE).all()


def test_cache_returns_the_same_data_and_rebuilds_a_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.delenv("ITEMCHEST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    renders = []
    real_render = scenes_module.render_views

    def counted(*args, **kwargs):
        renders.append(1)
        return real_render(*args, **kwargs)

    monkeypatch.setattr(scenes_module, "render_views", counted)
    first = rooms_dataset(3, 2, resolution=16, seed=1)
    again = rooms_dataset(3, 2, resolution=16, seed=1)
    assert len(renders) == 1
    assert torch.equal(first.images, again.images) and torch.equal(first.viewpoints, again.viewpoints)
    assert torch.equal(first.scenes.object_position, again.scenes.object_position)
    (cached,) = (tmp_path / "itemchest" / "scenes").glob("*.pt")
    assert not list(cached.parent.glob("*.partial"))
    cached.write_bytes(b"not a tensor file")
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt = rooms_dataset(3, 2, resolution=16, seed=1)
    assert len(renders) == 2 and torch.equal(rebuilt.images, first.images)
    rooms_dataset(3, 2, resolution=16, seed=2)                       # other arguments: another file
    assert len(renders) == 3 and len(list(cached.parent.glob("*.pt"))) == 2


def test_bad_input_is_refused_with_advice():
    with pytest.raises(ValueError, match="unknown camera mode"):
        rooms_dataset(2, camera="orbit", cache=False)
    with pytest.raises(ValueError, match="too small"):
        rooms_dataset(2, resolution=4, cache=False)
    with pytest.raises(ValueError, match="at least one view"):
        rooms_dataset(2, views_per_scene=0, cache=False)
    with pytest.raises(ValueError, match="at least one scene"):
        rooms_dataset(0, cache=False)
    with pytest.raises(ValueError, match="one row per scene"):
        render_views(sample_rooms(2), ring_viewpoints(torch.zeros(3, 1)), 16)
    with pytest.raises(ValueError, match="unknown object colour"):
        room_scene([{"kind": "sphere", "colour": "teal", "position": (0, 0), "size": 0.5}])


def test_view_rendering_speed_relative_to_a_reference_workload(speed_ratio):
    scenes = sample_rooms(40, seed=0)
    viewpoints = ring_viewpoints(torch.rand(40, 10, generator=torch.Generator().manual_seed(0)) * 2 * math.pi)
    images = render_views(scenes, viewpoints, 32, supersample=2)
    assert images.shape == (40, 10, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    # 400 views cost 3.5-13 reference workloads (one element-wise pass over 2,000 64x64 RGB images) on the 2-core
    # test machine, busy or not (~600 views/s on one thread); a renderer that loops in Python over pixels or
    # objects, or several times slower than today, fails (GQN renders 2,000 scenes x 10 views).
    ratio = speed_ratio(lambda: render_views(scenes, viewpoints, 32, supersample=2))
    assert ratio < 20, f"rendering 400 views took {ratio:.1f} times the reference workload"
