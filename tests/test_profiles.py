import pytest

from itemchest_utils import PROFILES, UnknownProfileError, active_profile, pick_config

CONFIGS = dict(smoke={"steps": 1}, book={"steps": 10}, full={"steps": 100})


def test_default_profile_is_book(monkeypatch):
    monkeypatch.delenv("ITEMCHEST_PROFILE", raising=False)
    assert active_profile() == "book"
    assert pick_config(**CONFIGS).steps == 10


@pytest.mark.parametrize("name", PROFILES)
def test_each_profile_picks_its_own_config(monkeypatch, name):
    monkeypatch.setenv("ITEMCHEST_PROFILE", name)
    config = pick_config(**CONFIGS)
    assert config.profile == name
    assert config.steps == CONFIGS[name]["steps"]


def test_unknown_profile_names_the_valid_ones(monkeypatch):
    monkeypatch.setenv("ITEMCHEST_PROFILE", "huge")
    with pytest.raises(UnknownProfileError, match="smoke, book, full"):
        pick_config(**CONFIGS)


def test_explicit_profile_argument_is_checked():
    assert pick_config(**CONFIGS, profile="full").steps == 100
    with pytest.raises(UnknownProfileError):
        pick_config(**CONFIGS, profile="Book")


def test_profiles_must_set_the_same_keys():
    with pytest.raises(ValueError, match="missing"):
        pick_config(smoke={"steps": 1}, book={"steps": 2, "lr": 0.1}, full={"steps": 3})
