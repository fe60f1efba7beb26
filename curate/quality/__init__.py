"""Quality signals for the `score` step, one signal family per module; each names its source."""
