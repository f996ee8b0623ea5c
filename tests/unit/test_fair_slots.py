"""The probe slots' scheduler, on its own: capacity, one line per namespace, freed slots
handed round the namespaces in turn, and keys that go away."""

from __future__ import annotations

from destination_operator.engine.slots import FairSlots

Key = tuple[str, str]


def slots(capacity: int) -> tuple[FairSlots[Key], list[Key]]:
    """Slots grouped by namespace, and the keys handed a freed slot, in order."""
    handed: list[Key] = []
    return FairSlots(capacity, group=lambda key: key[0], on_grant=handed.append), handed


def test_no_more_keys_hold_a_slot_than_its_capacity() -> None:
    fair, handed = slots(3)
    keys = [("team", f"d{i}") for i in range(5)]
    assert [fair.take(key) for key in keys] == [True, True, True, False, False]
    assert fair.free == 0 and fair.waiting == 2
    assert fair.in_line() == keys[3:]  # first come, first served
    assert not fair.take(keys[3])  # asking again does not queue it twice
    assert fair.in_line() == keys[3:] and handed == []


def test_a_freed_slot_is_handed_to_the_next_in_line_and_kept_for_it() -> None:
    fair, handed = slots(1)
    first, second = ("team", "a"), ("team", "b")
    assert fair.take(first) and not fair.take(second)
    fair.release()
    assert handed == [second] and fair.granted == {second} and fair.free == 0
    assert not fair.take(("team", "newcomer"))  # the handed slot is not up for grabs
    assert fair.take(second)  # the key it was handed to takes it
    assert fair.granted == frozenset()


def test_a_slot_nobody_waits_for_is_free_again() -> None:
    fair, handed = slots(2)
    assert fair.take(("team", "a"))
    fair.release()
    assert fair.free == 2 and handed == []


def test_freed_slots_go_round_the_namespaces_in_turn() -> None:
    """One namespace with many keys in line delays another's by one turn, not by its
    whole line."""
    fair, handed = slots(1)
    busy = [("busy", f"d{i}") for i in range(5)]
    quiet = ("quiet", "q")
    assert fair.take(busy[0])
    for key in (*busy[1:], quiet):  # the quiet namespace's one comes in last
        assert not fair.take(key)
    assert fair.in_line() == [*busy[1:], quiet]
    for _ in range(5):
        fair.release()
        assert fair.take(handed[-1])  # it uses the slot it was handed
    assert handed == [busy[1], quiet, busy[2], busy[3], busy[4]]


def test_a_waiting_key_that_goes_away_leaves_its_line() -> None:
    fair, handed = slots(1)
    first, second, third = ("team", "a"), ("other", "b"), ("team", "c")
    assert fair.take(first)
    assert not fair.take(second) and not fair.take(third)
    fair.forget(second)  # its namespace's line is now empty: the namespace leaves the round
    assert fair.in_line() == [third] and fair.waiting == 1
    fair.release()
    assert handed == [third]


def test_a_slot_handed_to_a_key_that_went_away_is_not_lost() -> None:
    fair, handed = slots(1)
    first, second, third = ("team", "a"), ("team", "b"), ("team", "c")
    assert fair.take(first)
    assert not fair.take(second) and not fair.take(third)
    fair.release()  # the first probe ends: the slot goes to the second
    assert fair.granted == {second} and fair.in_line() == [third]
    fair.forget(second)  # gone before it used the slot: the third gets it
    assert fair.granted == {third} and fair.in_line() == [] and handed == [second, third]
    fair.pass_on(third)  # handed a slot, then decided not to use it: nobody waits
    assert fair.granted == frozenset() and fair.free == 1


def test_pass_on_without_a_handed_slot_changes_nothing() -> None:
    fair, handed = slots(1)
    assert fair.take(("team", "a"))
    fair.pass_on(("team", "a"))  # it holds a slot it took: that is not a handed one
    assert fair.free == 0 and handed == []
    fair.forget(("team", "nobody"))
    assert fair.free == 0 and fair.waiting == 0
