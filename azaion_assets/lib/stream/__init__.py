"""The annotation stream: the rstream client, offset ranges, and the message contract."""
