"""Environment fixes the toolkit installs into its own virtual environment (see torchvision_ops)."""
