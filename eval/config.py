"""Settings of ``python -m eval.qa_eval``: one dataclass, one default per setting.

Defaults of the parser and of the backends live in their own option dataclasses
(:class:`~eval.address_parser.ParserConfig`, :class:`~eval.backends.hf.HFOptions`,
:class:`~eval.backends.openai.OpenAIOptions`); the fields here refer to them instead of repeating them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from eval.address_parser import ParserConfig
from eval.backends.base import DEFAULT_PROMPT
from eval.backends.hf import HFOptions
from eval.backends.openai import OpenAIOptions
from ial_core.config import option, option_from


@dataclass
class QAEvalConfig:
    # ---- what is scored
    data: str | None = option(None, "built dataset folder: references from --split, gazetteer from its "
                                "streets and sub-streets")
    split: str = option("test", "dataset split to score")
    references: str | None = option(None, 'JSONL of {"id","street","district","city"[,"cross_street",'
                                      '"lat","lon","image"]} instead of --data')
    gazetteer: str | None = option(None, "city.json, an OSM extract (.osm.pbf) or a dataset folder; "
                                     "None: the --data folder's")
    limit: int | None = option(None, "score a seeded random subset of N items (smoke runs)")
    # ---- who answers
    backend: str | None = option(None, "one run: hf | openai | answers | addressclip (with --model, "
                                   "--answers or --addressclip-run)")
    model: str | None = option(None, "hf: LLaVA model folder; openai: the served model name")
    answers: list[str] = option(default_factory=list, action="extend",
                                help="answers JSONL file(s) for --backend answers; repeat for "
                                     "several runs")
    addressclip_run: str | None = option(None, "AddressCLIP run directory for --backend addressclip")
    run: list[str] = option(default_factory=list, action="extend",
                            help="NAME=BACKEND:TARGET, repeatable: hf:MODEL_DIR, "
                                 "openai:MODEL[@BASE_URL], answers:FILE.jsonl, addressclip:RUN_DIR "
                                 "(NAME= is optional)")
    baselines: bool = option(True, "also score the majority and random baselines")
    # ---- generation
    prompt: str = option(DEFAULT_PROMPT, "question asked with every image")
    prompts: str | None = option(None, "a named question set of data_gen.questions instead of --prompt: "
                                   "design, poster, train, heldout (address phrasings training "
                                   "never sees), heldout_unanswerable; each item gets one phrasing, "
                                   "chosen by its id")
    candidates: str | None = option(None, "candidate-aware answering: JSON of AddressCLIP's top streets "
                                      "per image (python -m addressclip.candidates); each question "
                                      "is preceded by its image's list, as in training")
    max_new_tokens: int = option(64, "longest answer generated (hf, openai)")
    batch_size: int = option_from(HFOptions, "batch_size")
    device: str = option_from(HFOptions, "device")
    dtype: str = option_from(HFOptions, "dtype")
    base_url: str = option_from(OpenAIOptions, "base_url")
    api_key: str | None = option_from(OpenAIOptions, "api_key")
    concurrency: int = option_from(OpenAIOptions, "concurrency")
    timeout_s: float = option_from(OpenAIOptions, "timeout_s")
    max_retries: int = option_from(OpenAIOptions, "max_retries")
    backoff_s: float = option_from(OpenAIOptions, "backoff_s")
    addressclip_checkpoint: str = option("latest", "AddressCLIP checkpoint: latest, init, step_N or a "
                                               "folder")
    # ---- parsing and scoring
    fuzzy_cutoff: float = option_from(ParserConfig, "fuzzy_cutoff")
    min_fuzzy_chars: int = option_from(ParserConfig, "min_fuzzy_chars")
    bootstrap: int = option(1000, "bootstrap resamples for the 95%% intervals (0: none)")
    seed: int = option(0, "seed of --limit, the random baseline and the bootstrap")
    # ---- output
    out: str = option("runs/helsinki/qa_eval", "output folder: report.json, report.md, runs/NAME.jsonl")
    fresh: bool = option(False, "ignore answers stored by an earlier run in --out and ask again")
    keep_items: bool = option(True, "per-item answers and parsed fields in report.json")

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
