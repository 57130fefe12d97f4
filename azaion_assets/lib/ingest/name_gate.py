"""Which new names a group may store: the part of the portable-name policy that needs the state.

The decoder holds back an event that names an unportable name (``portable_names.held_back``);
here, with the group's names loaded, it is applied after all if every such name is stored
already: names stored before the policy stay readable, editable and deletable. A name that is
new and collides with a different stored name, or with a new name earlier in the same group, by
case or Unicode form (``fold``) or by looking alike (``confusables``), is rejected with a reason
naming the first and the code points where they differ. An event is judged
whole: a bulk message with one refused new name is quarantined, as the decoder does for an
unsafe name, so a bulk is never half applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from azaion_assets.lib.ingest.ingest_state import NameState
from azaion_assets.lib.stream.confusables import confusable, differences, look
from azaion_assets.lib.stream.events import AnnotationEvent, BulkEvent, Decoded, Rejected
from azaion_assets.lib.stream.portable_names import fold, unportable

COLLISION = "name collision"
Event = AnnotationEvent | BulkEvent


def candidate(event: Event | Rejected) -> Event | None:
    """The event a decoded message asks to apply: itself, or the one a rejection holds back."""
    return event.held if isinstance(event, Rejected) else event


def names_of(event: Event) -> tuple[str, ...]:
    return (event.name,) if isinstance(event, AnnotationEvent) else event.names


def admit(
    decoded: Iterable[Decoded],
    states: Mapping[str, NameState],
    holders: Callable[[Iterable[str]], dict[str, list[str]]],
) -> list[Decoded]:
    """Each message of a group, with its event admitted or rejected by the names it would store.

    ``states``: the committed logs of the group's names (a stored name has a log); ``holders``:
    the stored names under each fold, asked once for the whole group.
    """
    items = list(decoded)
    new = {n for d in items if (e := candidate(d.event)) for n in names_of(e) if not states[n].log}
    looks = {n: look(n) for n in new}
    stored = holders(looks.values())
    claimed: dict[str, list[str]] = {}  # look -> the new names this group admitted under it
    out = []
    for item in items:
        event = candidate(item.event)
        if event is None:  # rejected for a reason that no stored name can pardon
            out.append(item)
            continue
        fresh = [n for n in dict.fromkeys(names_of(event)) if n in new]
        refusal = _refusal(fresh, looks, stored, claimed)
        if refusal is None:
            for name in fresh:
                claimed.setdefault(looks[name], []).append(name)
            out.append(item if event is item.event else Decoded(event, item.notes))
        else:
            reason, name = refusal
            out.append(Decoded(Rejected(reason, event.status, name, held=event), item.notes))
    return out


def _refusal(
    fresh: list[str],
    looks: Mapping[str, str],
    stored: Mapping[str, list[str]],
    claimed: Mapping[str, list[str]],
) -> tuple[str, str] | None:
    """Why one of an event's new names may not be stored, and which; None if all may."""
    for name in fresh:
        reason = unportable(name)
        if reason:
            return reason, name
        alike = [*stored.get(looks[name], ()), *claimed.get(looks[name], ())]
        first = next((s for s in alike if confusable(name, s)), None)
        if first is None:
            continue
        how = (
            "differs only by case or Unicode form from"
            if fold(name) == fold(first)
            else "looks like (its TR39 skeleton is that of)"
        )
        return f"{COLLISION}: {how} stored {first!r}: {differences(name, first)}", name
    return None
