"""Question-answering evaluation of image address localization: free-form answers (LLaVA-IAL, served
models, answer files, AddressCLIP's top-1) parsed against a city gazetteer and scored side by side.

Entry point: ``python -m eval.qa_eval`` (or ``python eval/qa_eval.py``); the parser alone:
:class:`eval.address_parser.AddressParser`.
"""
