"""What every stage uses: configuration parsing, input errors, safe paths, the image reader, atomic
file and folder writes, checkpoint-file checks and the training launch recipe.

The stages (``data_gen``, ``addressclip``, ``llava_ial``, ``eval``, ``ial_pipeline``, ``ial_app``)
import from here and not from each other for these, so each stage owns only its own domain.
"""
