"""addressclip."""
