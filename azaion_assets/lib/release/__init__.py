"""The champion pair, encrypted, split, and shipped to the Azaion API and CDN."""
