"""The one error a bad configuration raises, naming every variable and the rule it broke.

Apart from the schema, so that the sources, the commands and the Dagster layer raise and catch
one error; ``describe_invalid`` words pydantic's errors without echoing a value (a secret).
"""

from __future__ import annotations

from pydantic import ValidationError

from azaion_assets.lib.config.fields import problem


class ConfigError(Exception):
    """The configuration is missing variables or holds invalid ones; lists every problem.

    ``absent`` names the fields no source provided, when validation stopped before the scoped
    checks could run, so that a caller can still report the missing secrets in the same breath.
    ``invalid`` maps each field whose value failed validation to its problems.
    """

    def __init__(
        self,
        problems: list[str],
        absent: set[str] | None = None,
        invalid: dict[str, list[str]] | None = None,
    ):
        self.problems = problems
        self.absent = absent
        self.invalid = invalid
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))

    def summary(self) -> str:
        """Every problem on one line, for a sensor's skip reason (the UI shows one line)."""
        return "; ".join(self.problems)


def describe_invalid(exc: ValidationError) -> dict[str, list[str]]:
    """Pydantic's errors as problems per field (``VARIABLE: rule``), never echoing the value."""
    invalid: dict[str, list[str]] = {}
    for err in exc.errors(include_input=False, include_url=False):
        name = str(err["loc"][0]) if err["loc"] else "?"
        invalid.setdefault(name.lower(), []).append(f"{name.upper()}: {problem(err)}")
    return invalid
