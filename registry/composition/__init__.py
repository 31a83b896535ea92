"""The builder: compose registered modules and trainable blocks into new networks."""

from registry.composition.builder import Builder
from registry.composition.graph import Plan, build_plan
from registry.composition.spec import ComposeSpec, load_spec, parse_spec

__all__ = ["Builder", "ComposeSpec", "Plan", "build_plan", "load_spec", "parse_spec"]
