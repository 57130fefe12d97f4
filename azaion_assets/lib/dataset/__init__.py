"""Dated datasets: classes, labels, the stable split by video, and forming."""
