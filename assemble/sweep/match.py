"""Parameter counts and FLOPs of a spec on the meta device (nothing allocated), and ``match: params``:
a variant's FFN hidden width (or else its d_model) adjusted so its parameter count is within
TOLERANCE of the base's."""

from __future__ import annotations

from typing import Callable

from stackform.specs import Spec, SpecError
from stackform.specs.sweep import Setting

TOLERANCE = 0.02


def meta_model(spec: Spec):
    from stackform.assemble.build import assemble

    return assemble(spec, device="meta")


def count_params(spec: Spec) -> int:
    """Parameters of the spec's model, tied weights once, built on the meta device."""
    return meta_model(spec).num_parameters()


def forward_flops_per_token(spec: Spec) -> int:
    """Forward FLOPs per token at the training context (``stackform inspect``'s count)."""
    from stackform.assemble.inspect import block_rows

    context = spec.train.seq_len or spec.model.max_len
    return sum(row.flops for row in block_rows(meta_model(spec), context))


def within(n: int, target: int) -> bool:
    return abs(n - target) <= TOLERANCE * target


def _sets(settings: list[Setting], dotted: str, inner: str | None = None) -> bool:
    """Whether a setting fixes ``dotted`` (itself, a parent of it, or a block value holding ``inner``)."""
    for s in settings:
        if s.dotted == dotted or dotted.startswith(s.dotted + ".") and (
                isinstance(s.value, dict) and inner in s.value):
            return True
        if s.dotted.startswith(dotted + "."):
            return True
    return False


Build = Callable[[list[Setting]], Spec]  # extra settings -> the validated spec (SpecError if it does not fit)


def _try(build: Build, extra: list[Setting]) -> tuple[Spec, int] | None:
    try:
        spec = build(extra)
    except SpecError:
        return None
    return spec, count_params(spec)


def _by_ffn(build: Build, target: int, where: tuple) -> list[Setting] | None:
    """model.ffn.hidden: the count is affine in it, so two counts give the width to try."""
    points = [_try(build, [Setting("model.ffn.hidden", h, where)]) for h in (64, 128)]
    if None in points or points[1][1] == points[0][1]:
        return None
    slope = (points[1][1] - points[0][1]) / 64
    hidden = max(1, round(64 + (target - points[0][1]) / slope))
    for h in (hidden, hidden - 1, hidden + 1):
        extra = [Setting("model.ffn.hidden", h, where)]
        got = _try(build, extra)
        if got is not None and within(got[1], target):
            return extra
    return None


def _by_d_model(build: Build, spec: Spec, target: int, where: tuple) -> tuple[int, list[Setting]] | None:
    """model.d_model: the multiple of n_heads (one that validates: rotary needs an even head_dim, ...)
    whose count is closest to the target, found by bisection (the count grows with d_model)."""
    step = spec.model.n_heads
    candidates = list(range(step, 4 * spec.model.d_model + 1, step))
    counts: dict[int, int | None] = {}

    def count(i: int) -> int | None:  # the count at candidate i, or at the next one that validates
        for j in range(i, min(i + 4, len(candidates))):
            if j not in counts:
                got = _try(build, [Setting("model.d_model", candidates[j], where)])
                counts[j] = got[1] if got else None
            if counts[j] is not None:
                return counts[j]
        return None

    lo, hi = 0, len(candidates) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        got = count(mid)
        if got is not None and got < target:
            lo = mid + 1
        else:
            hi = mid
    near = [i for i in range(max(0, lo - 4), min(len(candidates), lo + 4)) if count(i) is not None and i in counts
            and counts[i] is not None]
    if not near:
        return None
    best = min(near, key=lambda i: abs(counts[i] - target))
    return abs(counts[best] - target), [Setting("model.d_model", candidates[best], where)]


def match_params(spec: Spec, settings: list[Setting], target: int, build: Build, where: tuple) -> list[Setting] | None:
    """Extra settings that bring ``spec`` within 2% of ``target`` parameters: [] when it is already,
    None when the FFN width and d_model (those the sweep's own settings leave free) cannot: the
    FFN width alone, else d_model and then the FFN width, else d_model alone."""
    if within(count_params(spec), target):
        return []
    ffn_free = not _sets(settings, "model.ffn.hidden", "hidden")
    if ffn_free:
        found = _by_ffn(build, target, where)
        if found is not None:
            return found
    if _sets(settings, "model.d_model"):
        return None
    by_d = _by_d_model(build, spec, target, where)
    if by_d is None:
        return None
    distance, d_setting = by_d
    if ffn_free:
        fine = _by_ffn(lambda extra: build([*d_setting, *extra]), target, where)
        if fine is not None:
            return [*d_setting, *fine]
    return d_setting if distance <= TOLERANCE * target else None
