"""trusted(Model) builds what Model.model_construct builds: same values, order, fields-set, JSON."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from skyplan.config.models import LinkSpec
from skyplan.construct import trusted
from skyplan.plan.model import Action, ResourceChange
from skyplan.state.model import ResourceState, ResourceStatus

STATUS = ResourceStatus(phase="INIT", since="2026-12-01T00:00:00Z")
CASES = [
    (ResourceState, dict(type="cluster", name="a", attributes={"subnets": ["10.0.0.0/24"]}, status=STATUS, created="x")),
    (ResourceState, dict(name="a", type="link", attributes={"source": "a", "target": "b"}, status=STATUS, created="x",
                         pending="create", schema_version=2, managed_by="skyctl")),
    (ResourceState, dict(type="cluster", name="a", managed_by="file", attributes={}, computed={"address": "100.64.0.1"},
                         status=STATUS, created="x", pending=None, moved_from=None, schema_version=0)),
    (ResourceChange, dict(address="link.l", type="link", name="l", action=Action.CREATE, after={"source": "a", "target": "b"})),
    (ResourceChange, dict(address="link.l", type="link", name="l", action=Action.DELETE, before={"source": "a"}, reason="gone",
                          action_reason="delete_because_no_resource_config")),
    (LinkSpec, dict(name="m.a.b", source="a", target="b")),  # a mesh's link: its one default filled in
]


@pytest.mark.parametrize(("model", "values"), CASES)
def test_the_same_instance_as_model_construct(model, values) -> None:
    built, expected = trusted(model)(**values), model.model_construct(**dict(values))
    assert list(built.__dict__.items()) == list(expected.__dict__.items())  # order too: JSON follows it
    assert built.model_fields_set == expected.model_fields_set
    assert built.model_dump_json() == expected.model_dump_json()
    assert built.model_dump_json(exclude_unset=True) == expected.model_dump_json(exclude_unset=True)
    assert built == expected


def test_default_factories_give_each_instance_its_own_value() -> None:
    new = trusted(ResourceState)
    one, two = (new(type="cluster", name=n, attributes={}, status=STATUS, created="x") for n in "ab")
    assert one.computed == {} and one.computed is not two.computed


def test_a_mutable_plain_default_is_copied_for_each_instance() -> None:
    class Frozen(BaseModel, frozen=True):
        name: str
        tags: list[str] = ["a"]
        note: str = "kept"

    new = trusted(Frozen)
    one, two = new(name="x"), new(name="y")
    assert one.tags == ["a"] and one.tags is not two.tags and one.note == "kept"
    assert list(one.__dict__) == ["name", "tags", "note"] and one == Frozen.model_construct(name="x")


def test_an_unknown_field_is_refused_rather_than_dropped() -> None:
    with pytest.raises(TypeError, match="no field colour"):
        trusted(ResourceState)(type="cluster", name="a", attributes={}, status=STATUS, created="x", colour="red")


def test_a_model_with_aliases_is_refused() -> None:
    class Aliased(BaseModel):
        value: int = Field(alias="v")

    with pytest.raises(TypeError, match="use model_construct"):
        trusted(Aliased)


def test_a_copy_with_changes_leaves_the_fields_set_of_its_siblings_alone() -> None:
    new = trusted(ResourceState)
    one, two = (new(type="cluster", name=n, attributes={}, status=STATUS, created="x") for n in "ab")
    copied = one.model_copy(update={"pending": "update"})
    assert "pending" in copied.model_fields_set
    assert "pending" not in one.model_fields_set and "pending" not in two.model_fields_set


@pytest.mark.parametrize(("model", "values"), [case for case in CASES if case[0] is ResourceState])
def test_whole_builds_what_trusted_builds_from_every_field(model, values) -> None:
    from skyplan.construct import whole

    every = model.model_construct(**dict(values)).__dict__  # each field, in order, defaults filled in
    built, expected = whole(model)(dict(every)), trusted(model)(**every)
    assert list(built.__dict__.items()) == list(expected.__dict__.items())
    assert built.model_fields_set == expected.model_fields_set == set(model.__pydantic_fields__)
    assert built.model_dump_json(indent=2) == expected.model_dump_json(indent=2)
    assert built == expected


def test_whole_refuses_what_trusted_refuses() -> None:
    from skyplan.construct import whole

    class Aliased(BaseModel):
        value: int = Field(alias="v")

    with pytest.raises(TypeError, match="use model_construct"):
        whole(Aliased)
