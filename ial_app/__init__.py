"""The web app: ``python -m ial_app --model RUN_OR_FULL_EXPORT [--llava DIR | --llava-server URL]``.

A photo in, the city's top-5 addresses with calibrated probabilities (or "not from this city"), a
map of the predicted sub-streets and LLaVA-IAL's answer to an editable question out. Modules:
``app`` (the Gradio page and its handlers), ``uploads`` (refusing bad uploads with a message),
``map_svg`` (the offline map), ``llava`` (local or served LLaVA-IAL), ``__main__`` (the CLI).
"""
