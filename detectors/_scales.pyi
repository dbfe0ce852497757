# Types of the C extension detectors/_scales.c (its docstrings say what each does).
from array import array

def evidence(
    scale: array[float],
    pending: array[float],
    alpha: array[float],
    first: int,
    weights: array[float],
    x: float,
    mu: float,
    c: float,
) -> tuple[float, int]: ...
def learn(scale: array[float], pending: array[float], rate: float, spread: bool) -> None: ...
