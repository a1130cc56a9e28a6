"""The whole IAL pipeline on one command (``python -m ial_pipeline``): see ``__main__``."""
