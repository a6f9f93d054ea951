"""2-D maps of a bundle's embeddings: PCA and UMAP projections computed by the build, read by the app."""
