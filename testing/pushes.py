"""Frames a test captures instead of pushing them: `Pushed` collects (group, frame) pairs."""


class Pushed(list):
    """What hunts.events.send_frames was given, in order; `commit()` runs the on-commit callbacks of its
    block (pushes happen only after commit)."""

    def __init__(self, capture_on_commit):
        super().__init__()
        self._capture = capture_on_commit

    def commit(self):
        return self._capture(execute=True)

    def kinds(self, group: str | None = None) -> list[str]:
        return [frame["type"] for g, frame in self if group is None or g == group]

    def groups(self) -> list[tuple[str, str]]:
        return [(g, frame["type"]) for g, frame in self]
