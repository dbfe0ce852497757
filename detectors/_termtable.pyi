# Types of the C extension detectors/_termtable.c (its docstrings say what each does).
def fold(
    counts: dict[str, float], terms: dict[str, int], bound: float, grow: float, max_tracked: int
) -> float: ...
def candidates(
    counts: dict[str, float],
    terms: dict[str, int],
    n: int,
    min_count: int,
    untracked: float,
    scale: float,
    denom: float,
) -> tuple[int, list[tuple[float, float, float, float, str]]]: ...
