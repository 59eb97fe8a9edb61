"""Authoring: the denormalized puzzle and treasure fields, and hunt files (DESIGN section 8b).

The admin and the hunt file commands share these functions, so both keep the same invariants.
"""

from .export import dump_hunt, dump_spec
from .flags import refresh_puzzle_flags, rules_present, treasure_code_key
from .hunt_files import HuntFileError, parse_hunt_file
from .simulate import TimelineEntry, format_timeline, parse_pace, simulate
from .spec import HuntSpec, hunt_to_spec
from .store import load_hunt_file, save_hunt_spec

__all__ = [
    "HuntFileError",
    "HuntSpec",
    "TimelineEntry",
    "dump_hunt",
    "dump_spec",
    "format_timeline",
    "hunt_to_spec",
    "load_hunt_file",
    "parse_hunt_file",
    "parse_pace",
    "refresh_puzzle_flags",
    "rules_present",
    "save_hunt_spec",
    "simulate",
    "treasure_code_key",
]
