import pytest

from fgclip_utils.profiles import PROFILE_ENV, get_profile


def test_profile_comes_from_argument_then_environment_then_smoke(monkeypatch):
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert get_profile().name == "smoke"
    monkeypatch.setenv(PROFILE_ENV, "full")
    assert get_profile().name == "full" and get_profile("smoke").name == "smoke"


def test_unknown_profile_names_where_it_came_from(monkeypatch):
    monkeypatch.setenv(PROFILE_ENV, "huge")
    with pytest.raises(ValueError, match=r"'huge' \(from \$FGCLIP_PROFILE\)"):
        get_profile()
    with pytest.raises(ValueError, match=r"'tiny' \(from argument 'profile'\)"):
        get_profile("tiny")
