"""The one settings schema, the data tree it locates, and the files rendered from it."""
