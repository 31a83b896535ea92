"""Where versions live: the `Store` protocol (`base`) and its three implementations —
`local` (a git repository: `git` adapter, `tags`, SQL `index`), `http` (a registry
server) and `bundle` (a published MLflow model's copy)."""
