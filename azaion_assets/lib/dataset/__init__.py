"""Dated datasets: the stable split by video, slices, quarantine, and forming."""
