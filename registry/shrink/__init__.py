"""Shrinking what does not distil: pruned, int8, lower-precision and student variants.

`shrink_registered` writes a variant of a registered network as a normal module
folder (`provenance.derived_from`, the method and its settings), measured side by
side with its teacher; `registry.shrink.methods` holds the methods themselves.

Example:
    >>> request = ShrinkRequest.parse(prune=0.5, structured=True)
    >>> shrink_registered(loader, resolved, request, root=root, commit=None, out=root / "modules")
"""

from registry.shrink.variant import ShrinkReport, ShrinkRequest, shrink_registered

__all__ = ["ShrinkReport", "ShrinkRequest", "shrink_registered"]
