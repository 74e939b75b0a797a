"""What leaves the catalogue: files that other tools read."""
