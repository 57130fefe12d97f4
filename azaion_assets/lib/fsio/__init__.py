"""Files that survive crashes: durable writes, locks, SQLite stores, hardlinked copies."""
