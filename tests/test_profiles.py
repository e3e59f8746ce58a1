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


def test_gates_are_kept_apart_from_the_hyperparameters():
    config = pick_config(**CONFIGS, gates=dict(smoke=dict(margin=1), book=dict(margin=2), full=dict(margin=3)),
                         profile="book")
    assert config.gates.margin == 2 and config.steps == 10
    assert config.hyperparameters == {"profile": "book", "steps": 10}
    shown = config._repr_markdown_()
    assert "| `steps` | 10 |" in shown and "| gate `margin` | 2 |" in shown


def test_gates_must_be_given_for_every_profile_and_not_reuse_a_setting():
    with pytest.raises(ValueError, match="each of smoke, book, full"):
        pick_config(**CONFIGS, gates=dict(smoke={}, book={}))
    with pytest.raises(ValueError, match="same gate keys"):
        pick_config(**CONFIGS, gates=dict(smoke=dict(a=1), book=dict(a=1), full=dict(b=1)))
    with pytest.raises(ValueError, match="steps"):
        pick_config(**CONFIGS, gates=dict(smoke=dict(steps=1), book=dict(steps=1), full=dict(steps=1)))
