"""Settings of ``python -m eval.qa_eval``: one dataclass, one default per setting.

Defaults of the parser and of the backends live in their own option dataclasses
(:class:`~eval.address_parser.ParserConfig`, :class:`~eval.backends.hf.HFOptions`,
:class:`~eval.backends.openai.OpenAIOptions`); the fields here refer to them instead of repeating them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from eval.address_parser import ParserConfig
from eval.backends.base import DEFAULT_PROMPT
from eval.backends.hf import HFOptions
from eval.backends.openai import OpenAIOptions

BACKENDS = ("hf", "openai", "answers", "addressclip")


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


def _from(cls, name: str):
    """A field with the default and help of ``cls.name``."""
    f = {x.name: x for x in fields(cls)}[name]
    return field(default=f.default, metadata=dict(f.metadata))


@dataclass
class QAEvalConfig:
    # ---- what is scored
    data: str | None = _f(None, "built dataset folder: references from --split, gazetteer from its "
                                "streets and sub-streets")
    split: str = _f("test", "dataset split to score")
    references: str | None = _f(None, 'JSONL of {"id","street","district","city"[,"cross_street",'
                                      '"lat","lon","image"]} instead of --data')
    gazetteer: str | None = _f(None, "city.json, an OSM extract (.osm.pbf) or a dataset folder; "
                                     "None: the --data folder's")
    limit: int | None = _f(None, "score a seeded random subset of N items (smoke runs)")
    # ---- who answers
    backend: str | None = _f(None, "one run: hf | openai | answers | addressclip (with --model, "
                                   "--answers or --addressclip-run)")
    model: str | None = _f(None, "hf: LLaVA model folder; openai: the served model name")
    answers: list[str] = field(default_factory=list, metadata={
        "help": "answers JSONL file(s) for --backend answers; repeat for several runs",
        "action": "extend"})
    addressclip_run: str | None = _f(None, "AddressCLIP run directory for --backend addressclip")
    run: list[str] = field(default_factory=list, metadata={
        "help": "NAME=BACKEND:TARGET, repeatable: hf:MODEL_DIR, openai:MODEL[@BASE_URL], "
                "answers:FILE.jsonl, addressclip:RUN_DIR (NAME= is optional)",
        "action": "extend"})
    baselines: bool = _f(True, "also score the majority and random baselines")
    # ---- generation
    prompt: str = _f(DEFAULT_PROMPT, "question asked with every image")
    prompts: str | None = _f(None, "a named question set of data_gen.questions instead of --prompt: "
                                   "design, poster, train, heldout (address phrasings training "
                                   "never sees), heldout_unanswerable; each item gets one phrasing, "
                                   "chosen by its id")
    candidates: str | None = _f(None, "candidate-aware answering: JSON of AddressCLIP's top streets "
                                      "per image (python -m addressclip.candidates); each question "
                                      "is preceded by its image's list, as in training")
    max_new_tokens: int = _f(64, "longest answer generated (hf, openai)")
    batch_size: int = _from(HFOptions, "batch_size")
    device: str = _from(HFOptions, "device")
    dtype: str = _from(HFOptions, "dtype")
    base_url: str = _from(OpenAIOptions, "base_url")
    api_key: str | None = _from(OpenAIOptions, "api_key")
    concurrency: int = _from(OpenAIOptions, "concurrency")
    timeout_s: float = _from(OpenAIOptions, "timeout_s")
    max_retries: int = _from(OpenAIOptions, "max_retries")
    backoff_s: float = _from(OpenAIOptions, "backoff_s")
    addressclip_checkpoint: str = _f("latest", "AddressCLIP checkpoint: latest, init, step_N or a "
                                               "folder")
    # ---- parsing and scoring
    fuzzy_cutoff: float = _from(ParserConfig, "fuzzy_cutoff")
    min_fuzzy_chars: int = _from(ParserConfig, "min_fuzzy_chars")
    bootstrap: int = _f(1000, "bootstrap resamples for the 95%% intervals (0: none)")
    seed: int = _f(0, "seed of --limit, the random baseline and the bootstrap")
    # ---- output
    out: str = _f("runs/helsinki/qa_eval", "output folder: report.json, report.md, runs/NAME.jsonl")
    fresh: bool = _f(False, "ignore answers stored by an earlier run in --out and ask again")
    keep_items: bool = _f(True, "per-item answers and parsed fields in report.json")

    def parser_config(self) -> ParserConfig:
        return ParserConfig(fuzzy_cutoff=self.fuzzy_cutoff, min_fuzzy_chars=self.min_fuzzy_chars)

    def hf_options(self) -> HFOptions:
        return HFOptions(batch_size=self.batch_size, device=self.device, dtype=self.dtype)

    def openai_options(self, base_url: str | None = None) -> OpenAIOptions:
        return OpenAIOptions(base_url=base_url or self.base_url, api_key=self.api_key,
                             concurrency=self.concurrency, timeout_s=self.timeout_s,
                             max_retries=self.max_retries, backoff_s=self.backoff_s)

    def public(self) -> dict:
        """The settings as recorded in the report (the API key is never written)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["api_key"] = "(set)" if self.api_key else None
        return out
