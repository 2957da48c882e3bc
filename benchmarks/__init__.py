"""lspilot benchmarks: see benchmarks/README.md."""
