"""The core: the manifest (pydantic), references (semver), units (pint), the safe
expression parser, lowering, semantic checks and file integrity. Nothing here imports
a layer above it, nor torch in the modules `registry list` needs."""
