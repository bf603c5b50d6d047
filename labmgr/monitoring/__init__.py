"""Monitoring: the short, downsampled history of the metrics agents sample at 1 Hz."""
