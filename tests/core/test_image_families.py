"""An image family's lookup (core.services.images), on both databases: the newest usable image of
the family, whatever the project's other families hold, read from the family's newest few first and
from the whole family only when those are all deprecated; the same for a public project's family
read ahead with an insert's names (an instance's boot disk of ``projects/P/global/images/family/F``)."""

from __future__ import annotations

import pytest

from core.errors import NotFound
from core.resources import store
from core.resources.context import Call
from core.services import images
from core.services.instances.reads import names_taken

PUBLIC = "cos-cloud"  # a seeded public image project without images
PROJECT, ZONE, REGION = "demo-project", "zones/us-central1-a", "us-central1"


def _family(session, project: str, family: str, count: int, first: int = 0) -> list[str]:
    """``count`` READY images of ``family`` in ``project``, created one second apart from
    ``first`` on: their names, oldest first."""
    names = [f"{family}-{first + i:02d}" for i in range(count)]
    for i, name in enumerate(names):
        images.seed_public_image(session, project, name, family, 10, 1.9e9 + first + i, "an image")
    session.flush()
    return names


def _deprecate(session, project: str, names: list[str]) -> None:
    for i, name in enumerate(names):
        res = store.find(session, project, "images", "global", name)
        body = store.body_of(res)
        body["deprecated"] = {"state": ("DEPRECATED", "OBSOLETE", "DELETED")[i % 3]}
        store.save(res, body)
    session.flush()


def _newest(session, project: str, family: str) -> str:
    return images.from_family(session, project, family).name


def test_the_newest_usable_image_of_the_family_whatever_the_others(session):
    a = _family(session, PROJECT, "fam-a", 3, first=0)
    _family(session, PROJECT, "fam-b", 20, first=10)  # newer, of another family
    _family(session, PROJECT, "fam-a-x", 2, first=40)  # a family whose name starts with the other's
    assert _newest(session, PROJECT, "fam-a") == a[-1]
    _deprecate(session, PROJECT, a[-1:])
    assert _newest(session, PROJECT, "fam-a") == a[-2]
    _deprecate(session, PROJECT, a[:-1])
    with pytest.raises(NotFound):
        images.from_family(session, PROJECT, "fam-a")


def test_a_family_whose_newest_few_are_deprecated_is_read_whole(session):
    names = _family(session, PROJECT, "hist", images.FEW + 5)
    _deprecate(session, PROJECT, names[-(images.FEW + 2):])  # the newest FEW and two more
    assert _newest(session, PROJECT, "hist") == names[-(images.FEW + 3)]
    _deprecate(session, PROJECT, names)
    with pytest.raises(NotFound):
        images.from_family(session, PROJECT, "hist")


@pytest.mark.parametrize("deprecated", [0, images.FEW - 1, images.FEW, images.FEW + 3])
def test_a_public_familys_boot_image_read_ahead_is_the_newest_usable_one(session, deprecated):
    """The insert's first read takes the family's newest FEW usable images; the boot disk's lookup
    takes its answer from them, or reads the whole family when none of them will do."""
    names = _family(session, PUBLIC, "hist", images.FEW + 5)
    _family(session, PUBLIC, "other", 30, first=100)  # newer images of another family
    _deprecate(session, PUBLIC, names[len(names) - deprecated:] if deprecated else [])
    call = Call(session, PROJECT, "user")
    image = f"projects/{PUBLIC}/global/images/family/hist"
    names_taken(call, ZONE, REGION, "vm-1", ["vm-1"], None, image)
    ahead = images._read_ahead(session, PUBLIC, "hist")
    assert ahead is not None and [r.name for r in ahead] == names[::-1][:images.FEW]  # newest first
    found = images.resolve(session, image, PROJECT, "sourceImage")
    assert found.name == names[len(names) - deprecated - 1]
    # and without the read ahead (a disk's insert): the same
    session.info.pop("gstack.images.read_ahead")
    assert images.resolve(session, image, PROJECT, "sourceImage").name == found.name


def test_a_public_familys_images_are_nobodys_when_the_project_is_not_public(session):
    _family(session, PROJECT, "mine", 2)
    call = Call(session, "another-project", "user")
    image = f"projects/{PROJECT}/global/images/family/mine"
    names_taken(call, ZONE, REGION, "vm-1", ["vm-1"], None, image)
    assert images._read_ahead(session, PROJECT, "mine") == []
    assert images._public_family(session, PROJECT, "mine") is None
