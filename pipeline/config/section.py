"""The base of every params.yaml section: unknown keys, infinities and NaNs are errors; no defaults."""
from typing import Literal

from pydantic import BaseModel, ConfigDict

# The Bible repairs a user may opt into (pipeline/preparation/cleaning.py implements each).
REPAIR_NAMES = ("verse_marker_stripped", "brackets_removed", "backticks_replaced")
RepairName = Literal[REPAIR_NAMES]


class Section(BaseModel):
    """Fields have no defaults: params.yaml is the one place a value is written, so a key missing
    there is an error, never a value that silently differs from the file."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
