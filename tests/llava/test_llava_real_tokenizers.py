"""Stage two on Llama-family tokenizers and other towers: BOS, new template tokens under LoRA, an
instruct LM's own template, SigLIP, and the recipe defaults (LoRA learning rates, model_max_length).

The BOS model is a tiny random Llama whose tokenizer is a real Llama-2-style sentencepiece model
(mistral-common's ``tokenizer.model.v1``) that prepends ``<s>``, as Llama, Mistral and Vicuna do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from llava_ial import export, train
from llava_ial.compose import ComposeConfig, compose, compose_to_dir
from llava_ial.config import parse_args
from llava_ial.data import IGNORE_INDEX, ConversationDataset
from llava_ial.inference import DEFAULT_QUESTION, load_for_inference
from llava_ial.layout import read_meta
from llava_ial.template import TURN_END, encode_prompts, user_message
from llava_ial.testing import make_siglip_vision_dir

QUIET = ["--report_to", "none", "--disable_tqdm", "True", "--dataloader_num_workers", "0",
         "--per_device_train_batch_size", "4", "--logging_steps", "1", "--save_strategy", "no"]


def dataset_of(model_dir, conversations, **kw):
    from transformers import AutoProcessor
    processor = AutoProcessor.from_pretrained(model_dir)
    config = json.loads((Path(model_dir) / "config.json").read_text())
    return processor, ConversationDataset(conversations / "instruct_train.json", processor,
                                          image_token_id=config["image_token_index"],
                                          n_image_tokens=config["image_seq_length"], limit=8, **kw)


def prompt_ids(ids: torch.Tensor, labels: torch.Tensor) -> list[int]:
    """The training ids in front of the first learned token (the prompt the model answers)."""
    first = int((labels != IGNORE_INDEX).nonzero()[0])
    return ids[:first].tolist()


def test_bos_tokenizer_training_and_inference_see_the_same_prompt(bos_stack):
    """A Llama tokenizer adds BOS when called; training renders the chat template. Both must give
    one BOS, and the prompt inference feeds (inference.py, the hf eval backend, the export probe)
    must be exactly the prompt training learned to answer."""
    from eval.backends.hf import HFBackend, HFOptions
    dataset, conversations, model_dir = bos_stack
    processor, data = dataset_of(model_dir, conversations)
    tokenizer = processor.tokenizer
    assert tokenizer("a")["input_ids"][0] == tokenizer.bos_token_id       # the real thing adds BOS
    ids, labels = data.encoded[0]
    assert ids[0] == tokenizer.bos_token_id and int((ids == tokenizer.bos_token_id).sum()) == 1
    question = json.loads((conversations / "instruct_train.json").read_text())[0]
    question = question["conversations"][0]["value"].split("\n", 1)[1]
    text = processor.apply_chat_template([user_message(question)], add_generation_prompt=True)
    image = Image.new("RGB", (40, 30))
    ours = encode_prompts(processor, [image], [text])["input_ids"][0].tolist()
    assert ours == prompt_ids(ids, labels)
    backend = HFBackend(model_dir, max_new_tokens=4, options=HFOptions(device="cpu"))
    backend.processor = processor
    theirs = backend.encode([image], [text])["input_ids"][0].tolist()
    assert theirs == ours


def test_lora_trains_the_new_chatml_tokens(bos_stack, tmp_path):
    """<|im_end|> is new to a Llama vocabulary; under LoRA its embedding and lm_head rows must
    learn (else the model never learns to stop), and the merged export keeps them."""
    _, conversations, model_dir = bos_stack
    new = read_meta(model_dir)["new_token_ids"]
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.convert_tokens_to_ids(TURN_END) in new and len(new) == 2
    out = train.train(["--model", str(model_dir), "--conversations",
                       str(conversations / "instruct_train.json"), "--output_dir", str(tmp_path / "run"),
                       "--lora", "True", "--lora_r", "4", "--lora_alpha", "8", "--max_steps", "3",
                       "--learning_rate", "1e-2", *QUIET])
    export.export(out, tmp_path / "merged")
    before = load_file(str(model_dir / "model.safetensors"))
    after = load_file(str(tmp_path / "merged" / "model.safetensors"))
    old = tokenizer.convert_tokens_to_ids("hello")
    for key in ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight"):
        for tid in new:
            assert not torch.equal(before[key][tid], after[key][tid]), (key, tid)
        assert torch.equal(before[key][old], after[key][old])      # the rest stays frozen


def test_own_instruct_template_is_kept_and_learned(stack, bos_llama, tmp_path):
    """--chat_template own keeps the LM's template (no ChatML tokens added); the answer and its EOS
    are learned although the template has no {% generation %} blocks."""
    dataset, st = stack
    model_dir = compose_to_dir(ComposeConfig(vision=st.vision, lm=bos_llama, out=tmp_path / "own",
                                             chat_template="own"))
    assert read_meta(model_dir)["new_token_ids"] == []
    processor, data = dataset_of(model_dir, st.conversations)
    sample = json.loads((st.conversations / "instruct_train.json").read_text())[0]
    ids, labels = data.encoded[0]
    learned = processor.tokenizer.decode(ids[labels != IGNORE_INDEX])
    assert learned.strip() == sample["conversations"][1]["value"] + processor.tokenizer.eos_token
    text = processor.apply_chat_template([user_message("Where?")], add_generation_prompt=True)
    assert text.startswith("<s>[INST] <image>\nWhere? [/INST]")
    model = train.train(["--model", str(model_dir), "--conversations",
                         str(st.conversations / "instruct_train.json"), "--output_dir",
                         str(tmp_path / "run"), "--max_steps", "1", *QUIET])
    assert read_meta(model)["kind"] == "full"


def test_siglip_tower_image_tokens_agree(stack, tmp_path):
    """SigLIP has no CLS token: compose, the processor and the model must count the same number of
    image tokens, and a forward pass and a few training steps must run."""
    _, st = stack
    vision = make_siglip_vision_dir(tmp_path / "siglip")
    model_dir = compose_to_dir(ComposeConfig(vision=vision, lm=st.lm, out=tmp_path / "llava"))
    config = json.loads((model_dir / "config.json").read_text())
    assert config["vision_feature_select_strategy"] == "full" and config["image_seq_length"] == 16
    model, processor = load_for_inference(model_dir)
    text = processor.apply_chat_template([user_message(DEFAULT_QUESTION)], add_generation_prompt=True)
    inputs = encode_prompts(processor, [Image.new("RGB", (50, 40))], [text])
    n = int((inputs["input_ids"] == config["image_token_index"]).sum())
    assert n == config["image_seq_length"]
    model(**inputs)                       # the image features fill the image tokens exactly
    out = train.train(["--model", str(model_dir), "--conversations",
                       str(st.conversations / "instruct_train.json"), "--output_dir",
                       str(tmp_path / "run"), "--max_steps", "2", *QUIET])
    assert read_meta(out)["summary"]["global_step"] == 2


def test_lora_learning_rates_follow_the_llava_recipe():
    args = ["--model", "M", "--conversations", "C.json"]
    *_, targs = parse_args([*args, "--lora", "True"])
    assert targs.learning_rate == 2e-4 and targs.projector_lr == 2e-5
    *_, targs = parse_args(args)
    assert targs.learning_rate == 2e-5 and targs.projector_lr is None
    *_, targs = parse_args([*args, "--lora", "True", "--learning_rate", "1e-3"])
    assert targs.learning_rate == 1e-3 and targs.projector_lr is None
    *_, targs = parse_args([*args, "--stage", "pretrain"])
    assert targs.learning_rate == 1e-3


def test_model_max_length_fits_a_real_towers_image_tokens(stack):
    """Unset, model_max_length comes from the data: CLIP-L/336's 576 image tokens plus the text."""
    _, st = stack
    from transformers import AutoProcessor
    _, dargs, _, _ = parse_args(["--model", "M", "--conversations", "C.json"])
    processor = AutoProcessor.from_pretrained(st.model)
    config = json.loads((st.model / "config.json").read_text())
    data = ConversationDataset(st.conversations / "instruct_train.json", processor,
                               image_token_id=config["image_token_index"], n_image_tokens=576,
                               max_length=dargs.model_max_length, limit=4)
    assert 576 < data.stats.max_length < 700
    assert int((data.encoded[0][1] != IGNORE_INDEX).sum()) > 0


def test_compose_refuses_an_lm_vllm_cannot_serve(stack, tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from llava_ial.compose import ComposeError
    _, st = stack
    lm = tmp_path / "gpt2"
    GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=2048)).save_pretrained(lm)
    from transformers import AutoTokenizer
    AutoTokenizer.from_pretrained(st.lm).save_pretrained(lm)
    with pytest.raises(ComposeError, match="transformer"):
        compose(ComposeConfig(vision=st.vision, lm=lm, out=tmp_path / "x"))


@pytest.mark.slow
def test_qlora_on_the_bos_llama_trains_the_new_tokens(bos_stack, tmp_path):
    """QLoRA (4-bit LM body, bitsandbytes on CPU) with the new ChatML rows trained beside it."""
    _, conversations, model_dir = bos_stack
    out = train.train(["--model", str(model_dir), "--conversations",
                       str(conversations / "instruct_train.json"), "--output_dir", str(tmp_path / "run"),
                       "--lora", "True", "--lora_r", "4", "--lora_alpha", "8", "--bits", "4",
                       "--max_steps", "2", "--learning_rate", "1e-2", "--optim", "adamw_torch", *QUIET])
    assert read_meta(out)["bits"] == 4
    export.export(out, tmp_path / "merged", tolerance=float("inf"))
    before = load_file(str(model_dir / "model.safetensors"))
    after = load_file(str(tmp_path / "merged" / "model.safetensors"))
    tid = read_meta(model_dir)["new_token_ids"][-1]
    key = "language_model.lm_head.weight"
    assert not torch.equal(before[key][tid], after[key][tid])


def test_a_float32_projector_loads_into_a_bf16_model(stack, tmp_path):
    """A pretrain run's float32 projector into a model loaded in bf16 (--bf16 under ZeRO-3): the copy
    is exact up to the one rounding into bf16, and that must pass the load check."""
    from safetensors.torch import save_file

    from llava_ial.model import load_llava, load_projector, projector_state_dict
    _, st = stack
    state = {k: v + 1e-3 * torch.randn_like(v) for k, v in
             projector_state_dict(load_llava(st.model)).items()}
    save_file(state, str(tmp_path / "projector.safetensors"))
    model = load_llava(st.model, dtype=torch.bfloat16)
    assert load_projector(model, tmp_path / "projector.safetensors") == 0.0
    loaded = model.model.multi_modal_projector.linear_1.weight
    assert loaded.dtype == torch.bfloat16
    assert torch.equal(loaded, state["linear_1.weight"].to(torch.bfloat16))


def test_pretrain_refuses_to_tune_the_tower_it_would_drop(stack, tmp_path):
    _, st = stack
    with pytest.raises(ValueError, match="tune_vision_tower"):
        train.train(["--model", str(st.model), "--stage", "pretrain", "--tune_vision_tower", "True",
                     "--conversations", str(st.conversations / "pretrain_train.json"),
                     "--output_dir", str(tmp_path / "run"), *QUIET])
