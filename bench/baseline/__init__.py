"""The bare baselines: the least a Channels consumer and a DRF view can do for the same traffic."""
