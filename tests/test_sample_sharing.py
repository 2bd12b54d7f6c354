"""Samples kept compactly: a field equal to the previous sample's points at its object."""

from dataclasses import dataclass, field

from llmtop.collectors.gpu_reading import GpuReading, GpuSample
from llmtop.collectors.sample_sharing import share_unchanged, shared


def fresh(text: str) -> str:
    return "".join(list(text))  # a new string object, as a reader makes one each tick


def gpu(t: float, used: int, name: str = "AMD Radeon RX 7600 XT") -> GpuSample:
    reading = GpuReading(
        key=fresh("drm:0000:03:00.0"),
        name=fresh(name),
        backend=fresh("amd-sysfs"),
        dedicated_used=used,
        dedicated_total=int(str(17163091968)),
        reasons={"ollama": fresh("fdinfo not readable")},
    )
    return GpuSample(t, (reading,), ())


def test_equal_fields_point_at_the_previous_objects_and_changed_ones_keep_their_own():
    before, after = gpu(1.0, 9_000_000_000), gpu(1.25, 9_100_000_000)
    kept = share_unchanged(before, after)
    assert kept == gpu(1.25, 9_100_000_000)  # the values are unchanged
    old, new = before.gpus[0], kept.gpus[0]
    assert new is not old  # its memory changed
    assert new.name is old.name and new.key is old.key and new.backend is old.backend
    assert new.dedicated_total is old.dedicated_total and new.reasons is old.reasons
    assert new.dedicated_used == 9_100_000_000 and kept.t == 1.25


def test_a_part_that_did_not_change_at_all_is_the_previous_object():
    before, after = gpu(1.0, 9_000_000_000), gpu(1.25, 9_000_000_000)
    kept = share_unchanged(before, after)
    assert kept.gpus is before.gpus  # the whole tuple of readings is the one before
    assert kept is after and kept.t == 1.25  # the sample itself is new (its time)


def test_values_of_another_type_or_shape_are_not_shared():
    @dataclass(frozen=True)
    class Reading:
        t: float
        value: object
        parts: tuple[int, ...] = ()
        notes: dict[str, str] = field(default_factory=dict)

    before = Reading(1.0, 1.0, (1, 2))
    after = share_unchanged(before, Reading(2.0, 1, (1, 2, 3)))
    assert type(after.value) is int and after.parts == (1, 2, 3)  # 1 == 1.0, but an int stays an int
    assert share_unchanged(None, before) is before
    assert shared(float("nan"), 5) == 5
    renamed = share_unchanged(gpu(1.0, 1), gpu(2.0, 1, name="Radeon 780M"))
    assert renamed.gpus[0].name == "Radeon 780M"
