"""Dataset loading internals behind `suite.data` (specs, decoding, cache, subsets)."""
