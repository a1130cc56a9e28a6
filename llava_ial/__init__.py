"""llava_ial."""
