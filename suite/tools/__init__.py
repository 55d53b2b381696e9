"""Commands beside the experiments: `bench` (speed figures) and `simulate` (the paper's norm dynamics)."""
