"""crisiswatch kernel: data model, config, clock, pipeline stages, collectors, storage, server."""
