"""Shared pieces of the QA-evaluation tests: a gazetteer, tiny LLaVA folders and a local
OpenAI-compatible server (the fixtures ``pittsburgh_json`` and ``small_dataset`` are in
``tests/qa/conftest.py``).

- ``PITTSBURGH``: the small gazetteer of the parser tests' Pittsburgh answers.
- ``build_tiny_llava(dir, answer=...)``: a LlavaForConditionalGeneration from config (CLIP vision
  tower + Llama, tiny) with a word-level tokenizer, ``<image>`` special token, chat template and
  LlavaProcessor, saved as a Hugging Face folder. With ``answer`` its language model is a fixed
  bigram chain (attention and MLP outputs zeroed, one-hot embeddings, ``lm_head`` maps each word to
  the next), so greedy decoding writes exactly ``answer``: end-to-end tests then see a real address
  come out of the hf backend. Without it the weights are random (image-dependent output).
- ``FakeChatServer``: ``http.server`` on 127.0.0.1 in a thread, answering like vLLM's
  ``/v1/chat/completions`` or misbehaving on request (errors, dropped connections, slowness).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from eval.backends.base import DEFAULT_PROMPT

PITTSBURGH = {
    "city": "Pittsburgh",
    "streets": ["Grant Street", "Fifth Avenue", "Forbes Avenue", "Smithfield Street", "Liberty Avenue",
                "Penn Avenue", "East Carson Street", "Craig Street"],
    "districts": ["Downtown", "Oakland", "South Side Flats", "Strip District"],
}

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | upper }}: "
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %} {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def build_tiny_llava(path: Path, *, answer: str | None = None, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
    words = list(dict.fromkeys(f"USER: ASSISTANT: {DEFAULT_PROMPT} {answer or ''} The address of "
                               "this photo might be Kluuvi, Helsinki.".split()))
    vocab = {w: i for i, w in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")         # joins words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>",
                                   extra_special_tokens={"image_token": "<image>"})
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 16},
                                           crop_size={"height": 16, "width": 16}),
        tokenizer=fast, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)
    hidden = 64
    assert len(vocab) <= hidden, "the bigram construction needs one hidden unit per word"
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=16, patch_size=8),
        text_config=LlamaConfig(hidden_size=hidden, intermediate_size=128, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=2, vocab_size=len(vocab),
                                max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
                                pad_token_id=0, tie_word_embeddings=False),
        image_token_index=vocab["<image>"], vision_feature_layer=-2,
        vision_feature_select_strategy="default")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    if answer is not None:
        _make_bigram_chain(model, vocab, ["ASSISTANT:", *answer.split(), "</s>"])
    model.generation_config.pad_token_id = 0
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return Path(path)


def _make_bigram_chain(model, vocab: dict[str, int], chain: list[str]) -> None:
    import torch

    lm = model.model.language_model
    with torch.no_grad():
        for layer in lm.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        lm.embed_tokens.weight.zero_()
        lm.embed_tokens.weight[:, :len(vocab)] = torch.eye(len(vocab))
        head = model.lm_head.weight
        head.zero_()
        head[vocab["</s>"], :len(vocab)] = 1.0          # every other word ends the answer
        for here, nxt in zip(chain, chain[1:]):
            head[:, vocab[here]] = 0.0
            head[vocab[nxt], vocab[here]] = 10.0


class FakeChatServer:
    """A local stand-in for vLLM's chat endpoint. ``behaviour(request_json, attempt) -> action``:
    ``("ok", text)``, ``("status", code, body)``, ``("raw", body_bytes)``, ``("drop",)`` (close the
    connection without replying) or ``("sleep", seconds, text)``. ``attempt`` counts the requests
    seen for the same image."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.requests: list[dict] = []
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = body["messages"][0]["content"][0]["image_url"]["url"]
                with server.lock:
                    server.requests.append({"path": self.path, "body": body,
                                            "auth": self.headers.get("Authorization")})
                    server.attempts[key] = attempt = server.attempts.get(key, 0) + 1
                action = server.behaviour(body, attempt)
                if action[0] == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if action[0] == "sleep":
                    time.sleep(action[1])
                    action = ("ok", action[2])
                if action[0] == "ok":
                    payload = json.dumps({"choices": [{"index": 0, "message": {
                        "role": "assistant", "content": action[1]}}]}).encode()
                    code = 200
                elif action[0] == "status":
                    code, payload = action[1], action[2].encode()
                else:
                    code, payload = 200, action[1]
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass   # the client gave up (timeout)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
