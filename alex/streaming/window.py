"""A session's most recent frames, numbered in publication order; the oldest fall off past a bound."""

from __future__ import annotations

Frame = tuple[tuple[int, ...], str, bytes]  # (sort key of the event id, event id, encoded SSE frame)


class Window:
    """Frames numbered from `base`; keeps between `size` and 2 x `size` of the newest (trimmed in bulk)."""

    __slots__ = ("frames", "base", "size")

    def __init__(self, size: int):
        self.frames: list[Frame] = []
        self.base = 0  # the number of frames[0]
        self.size = size

    @property
    def head(self) -> int:
        """The number the next frame will get."""
        return self.base + len(self.frames)

    def append(self, frame: Frame) -> None:
        """Add the newest frame; drop the oldest once twice the size is held."""
        self.frames.append(frame)
        if len(self.frames) >= 2 * self.size:
            dropped = len(self.frames) - self.size
            del self.frames[:dropped]
            self.base += dropped

    def since(self, number: int) -> list[Frame]:
        """The frames numbered `number` and later (`number` must be >= base)."""
        return self.frames[number - self.base:]
