"""Stage 1: stream offsets into ``annotations`` partitions and the data tree."""
