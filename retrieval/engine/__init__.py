"""The query engine: the Engine, its query cache, the bundle's cases, search, filters, facets and limits."""
