"""The base of every params.yaml section: unknown keys, infinities and NaNs are errors; no defaults."""
from typing import Literal

from pydantic import BaseModel, ConfigDict

# The Bible repairs a user may opt into (pipeline/preparation/cleaning.py implements each).
REPAIR_NAMES = ("verse_marker_stripped", "brackets_removed", "backticks_replaced")
RepairName = Literal[REPAIR_NAMES]
# The drop filters a source opts into (the Bible's and WMT'14's; a user's corpus only when named).
DROP_NAMES = ("markup",)
DropName = Literal[DROP_NAMES]


class Section(BaseModel):
    """Fields have no defaults: params.yaml is the one place a value is written, so a key missing
    there is an error, never a value that silently differs from the file."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
