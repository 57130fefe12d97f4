"""The champion pair on disk, encrypted, split, and shipped to the Azaion API and CDN."""
