"""The MLflow pieces: experiment `tracking`, the published model's `pyfunc`, and
`publish` (writing the bundle and registering the model)."""
