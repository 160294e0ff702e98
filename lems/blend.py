"""Deprecated: import from :mod:`lems.policies` (:mod:`lems.policies.blend`). This module re-exports its names for
one release and warns on import."""

from __future__ import annotations

import warnings

from lems.policies.blend import (
    BlendedPolicy,
    fit_blend_weights,
    fit_blended_policy,
    simplex_min_second_moment,
)

warnings.warn("lems.blend is deprecated; import from lems.policies", DeprecationWarning, stacklevel=2)

__all__ = ["BlendedPolicy", "fit_blend_weights", "fit_blended_policy", "simplex_min_second_moment"]
